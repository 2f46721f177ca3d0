"""The lecture's 2-D test functions, written in torch, with their known minima.

Each :class:`Function2D` is data: the function, the box it is drawn on, a start point that makes
the optimizers' differences visible, its known minima (and saddle points), and default learning
rates per optimizer family that make the picture sensible on it (see :data:`LR_FAMILY`).

References:
    Rosenbrock 1960, "An automatic method for finding the greatest or least value of a function";
    Beale 1958, "On an iterative method for finding a local minimum of a function of more than one
    variable"; Himmelblau 1972, "Applied Nonlinear Programming";
    Keskar et al. 2017, "On Large-Batch Training for Deep Learning: Generalization Gap and Sharp
    Minima" (the sharp/flat picture, their Figure 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch

__all__ = ["FUNCTIONS", "LR_FAMILY", "Function2D", "get"]

Point = tuple[float, float]


@dataclass(frozen=True)
class Function2D:
    """A 2-D test function and what is known about it.

    Attributes:
        name: registry name.
        title: the name shown in figures.
        f: ``f(x, y)`` on tensors (broadcasting), differentiable with torch.autograd.
        xlim, ylim: the box the contour plot shows.
        start: the default start point of the trajectories.
        minima: the known minima (global and local), marked on the plots.
        saddles: known saddle points, marked too.
        lrs: default learning rate per optimizer family (keys of :data:`LR_FAMILY`'s values).
        log_levels: draw contour levels on a log scale (steep valleys: Rosenbrock, Beale).
    """

    name: str
    title: str
    f: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    xlim: Point
    ylim: Point
    start: Point
    minima: tuple[Point, ...]
    lrs: Mapping[str, float]
    saddles: tuple[Point, ...] = ()
    log_levels: bool = False
    description: str = field(default="", compare=False)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.f(x, y)

    def min_value(self) -> float:
        """The lowest value over the known minima."""
        return min(float(self.f(torch.tensor(a), torch.tensor(b))) for a, b in self.minima)


# Every registry optimizer falls in one family whose default LR a function sets. Adagrad's steps
# shrink like 1/sqrt(t), so it gets its own (larger) rate; RMSprop (no bias correction, no
# momentum) is less stable than Adam at the same rate, so it has its own too. The Adam-like methods
# take steps of about lr per coordinate whatever the gradient scale, the SGD-like ones lr * gradient.
LR_FAMILY: dict[str, str] = {
    "sgd": "sgd",
    "sgdw": "sgd",
    "sgdm": "sgdm",
    "nag": "sgdm",
    "sgdwm": "sgdm",
    "adagrad": "adagrad",
    "rmsprop": "rmsprop",
    "adam": "adam",
    "amsgrad": "adam",
    "adamw": "adam",
    "nadam": "adam",
    "radam": "adam",
    "adabound": "adam",
    "amsbound": "adam",
    "swats": "adam",
    "adopt": "adam",
    "ademamix": "adam",
    "lion": "adam",  # sign steps: lr per coordinate
    "schedule-free-adamw": "adam",
    "schedule-free-sgd": "sgdm",
}


def _quadratic(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # 0.5 (u^2 + 25 w^2) in axes rotated by 45 degrees: condition number 25, and the valley is not
    # aligned with the coordinates, so a diagonal preconditioner (Adam) cannot undo it.
    u, w = (x + y) / math.sqrt(2), (x - y) / math.sqrt(2)
    return 0.5 * (u**2 + 25.0 * w**2)


def _saddle(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # A saddle at the origin (Hessian diag(1, -1)) between two minima (0, +-1) of value -1/4.
    return 0.5 * x**2 + 0.25 * y**4 - 0.5 * y**2


def _rosenbrock(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (1 - x) ** 2 + 100.0 * (y - x**2) ** 2


def _beale(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


def _himmelblau(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2


_FLAT, _SHARP, _WIDTH2 = (-1.0, 0.5), (1.5, -0.5), 0.02


def _sharp_flat(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # 0.5 |z-A|^2 |z-B|^2 / (w^2 + |z-B|^2): zero with zero gradient exactly at A and B. Away from
    # B it is the broad bowl 0.5 |z-A|^2 (curvature 1 at the flat minimum A); within about w of B
    # it drops into a narrow well of curvature |A-B|^2 / w^2 = 7.25 / 0.02 = 362.5 (sharp minimum B).
    da = (x - _FLAT[0]) ** 2 + (y - _FLAT[1]) ** 2
    db = (x - _SHARP[0]) ** 2 + (y - _SHARP[1]) ** 2
    return 0.5 * da * db / (_WIDTH2 + db)


FUNCTIONS: dict[str, Function2D] = {
    fn.name: fn
    for fn in (
        Function2D(
            "quadratic",
            "Ill-conditioned quadratic (condition number 25, rotated 45°)",
            _quadratic,
            (-3.0, 3.0),
            (-3.0, 3.0),
            (-2.5, -1.5),
            ((0.0, 0.0),),
            {"sgd": 0.07, "sgdm": 0.02, "adagrad": 0.5, "rmsprop": 0.05, "adam": 0.05},
            description="0.5 (u² + 25 w²), u = (x+y)/√2, w = (x−y)/√2",
        ),
        Function2D(
            "saddle",
            "Saddle point between two minima",
            _saddle,
            (-2.0, 2.0),
            (-1.6, 1.6),
            (-1.8, 1e-3),
            ((0.0, 1.0), (0.0, -1.0)),
            {"sgd": 0.05, "sgdm": 0.01, "adagrad": 0.3, "rmsprop": 0.02, "adam": 0.02},
            saddles=((0.0, 0.0),),
            description="x²/2 + y⁴/4 − y²/2; saddle at (0, 0), minima at (0, ±1)",
        ),
        Function2D(
            "rosenbrock",
            "Rosenbrock",
            _rosenbrock,
            (-2.0, 2.0),
            (-1.0, 3.0),
            (-1.2, 1.0),
            ((1.0, 1.0),),
            {"sgd": 1.5e-3, "sgdm": 3e-4, "adagrad": 1.0, "rmsprop": 0.02, "adam": 0.1},
            log_levels=True,
            description="(1 − x)² + 100 (y − x²)²",
        ),
        Function2D(
            "beale",
            "Beale",
            _beale,
            (-4.5, 4.5),
            (-4.5, 4.5),
            (1.0, 1.5),
            ((3.0, 0.5),),
            {"sgd": 5e-3, "sgdm": 1e-3, "adagrad": 0.5, "rmsprop": 0.05, "adam": 0.05},
            log_levels=True,
            description="(1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)²",
        ),
        Function2D(
            "himmelblau",
            "Himmelblau",
            _himmelblau,
            (-5.0, 5.0),
            (-5.0, 5.0),
            (-0.5, -0.5),
            (
                (3.0, 2.0),
                (-2.805118086952745, 3.131312518250573),
                (-3.779310253377747, -3.283185991286170),
                (3.584428340330492, -1.848126526964404),
            ),
            {"sgd": 5e-3, "sgdm": 1e-3, "adagrad": 1.0, "rmsprop": 0.05, "adam": 0.1},
            saddles=(
                (0.086677504, 2.884254701),
                (-3.073025751, -0.081353044),
                (3.385154184, 0.073851879),
                (-0.127961343, -1.953714980),
            ),
            log_levels=True,
            description="(x² + y − 11)² + (x + y² − 7)²; four minima of value 0",
        ),
        Function2D(
            "sharp_flat",
            "One sharp and one flat minimum",
            _sharp_flat,
            (-3.0, 3.0),
            (-2.0, 2.0),
            (1.9, -0.2),  # near the sharp well: large SGD steps leave it, adaptive ones stay
            (_FLAT, _SHARP),
            {"sgd": 0.05, "sgdm": 0.01, "adagrad": 0.5, "rmsprop": 0.02, "adam": 0.05},
            log_levels=True,
            description=(
                "½|z−A|²|z−B|²/(0.02 + |z−B|²): flat minimum A = (−1, 0.5) (curvature 1), "
                "sharp minimum B = (1.5, −0.5) (curvature 362.5)"
            ),
        ),
    )
}


def get(name: str) -> Function2D:
    """The function called ``name``; a ``ValueError`` lists the known names otherwise."""
    try:
        return FUNCTIONS[name]
    except KeyError:
        raise ValueError(f"Unknown function {name!r}; known: {', '.join(FUNCTIONS)}") from None
