"""Run real optimizer objects on a 2-D function and record their paths.

Any ``torch.optim.Optimizer`` works: a registry name (``descentlab.create``), a torch.optim class,
or a factory ``params -> optimizer``. The point is a single 2-element parameter; each step
computes ``f(x, y)``, back-propagates and calls ``optimizer.step()``, exactly as in training.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..optim import REGISTRY, create
from ..optim.registry import resolve
from .functions2d import LR_FAMILY, Function2D, get

__all__ = ["OptimizerSpec", "Trajectory", "default_lr", "trajectories"]

Factory = Callable[[list[torch.Tensor]], torch.optim.Optimizer]
OptimizerSpec = str | type[torch.optim.Optimizer] | Factory


@dataclass(frozen=True)
class Trajectory:
    """One optimizer's path: ``xy[k]`` is the point after ``k`` steps (``xy[0]`` the start).

    After a non-finite value the path stops: ``xy`` and ``loss`` are NaN from there on and
    ``diverged_at`` is that step (``None`` if it never diverged).
    """

    label: str
    xy: np.ndarray
    loss: np.ndarray
    lr: float | None
    diverged_at: int | None = None

    @property
    def steps(self) -> int:
        """The number of steps run."""
        return len(self.xy) - 1


def default_lr(function: Function2D | str, name: str) -> float:
    """The default learning rate of registry optimizer ``name`` (wrapped names too) on ``function``.

    Each function sets one rate per optimizer family (:data:`~.functions2d.LR_FAMILY`).
    """
    fn = get(function) if isinstance(function, str) else function
    _, entry = resolve(name)
    family = LR_FAMILY.get(entry.name)
    if family is None or family not in fn.lrs:
        raise ValueError(f"no default learning rate for {name!r} on {fn.name!r}; pass lrs={{...}}")
    return fn.lrs[family]


def _label(spec: OptimizerSpec, i: int) -> str:
    if isinstance(spec, str):
        return spec
    return getattr(spec, "__name__", f"optimizer {i}")


def _build(
    fn: Function2D, label: str, spec: OptimizerSpec, params: list[torch.Tensor], lr: float | None
) -> tuple[torch.optim.Optimizer, float | None]:
    if isinstance(spec, str):
        lr = default_lr(fn, spec) if lr is None else lr
        extra: dict[str, Any] = {}
        if resolve(spec)[1].name in ("adabound", "amsbound"):
            extra["final_lr"] = fn.lrs["sgd"]  # its SGD limit: the function's SGD rate
        # The readable per-tensor path: on one 2-element tensor the fused kernels gain nothing.
        return create(spec, params, lr=lr, impl="forloop", **extra), lr
    if isinstance(spec, type) and issubclass(spec, torch.optim.Optimizer):
        key = spec.__name__.lower()
        if lr is None and key in REGISTRY:
            lr = default_lr(fn, key)
        if lr is None:
            raise ValueError(f"no default learning rate for {label!r}; pass lrs={{{label!r}: ...}}")
        return spec(params, lr=lr), lr
    if callable(spec):
        opt = spec(params)
        return opt, float(opt.param_groups[0]["lr"]) if lr is None else lr
    raise TypeError(f"cannot build an optimizer from {spec!r}")


def _specs(
    optimizers: Sequence[OptimizerSpec] | Mapping[str, OptimizerSpec],
) -> list[tuple[str, OptimizerSpec]]:
    if isinstance(optimizers, Mapping):
        return list(optimizers.items())
    if isinstance(optimizers, str):
        optimizers = [s.strip() for s in optimizers.split(",") if s.strip()]
    return [(_label(s, i), s) for i, s in enumerate(optimizers)]


def trajectories(
    function: Function2D | str,
    optimizers: Sequence[OptimizerSpec] | Mapping[str, OptimizerSpec],
    *,
    steps: int = 300,
    start: tuple[float, float] | None = None,
    lrs: Mapping[str, float] | None = None,
) -> list[Trajectory]:
    """Run each optimizer from ``start`` for ``steps`` steps on ``function``.

    Args:
        function: a :class:`Function2D` or its name in :data:`~.functions2d.FUNCTIONS`.
        optimizers: registry names (``"adam"``, ``"lookahead(sgdm)"``; or one comma-separated
            string), torch.optim classes, factories ``params -> optimizer``, or a mapping from labels
            to any of these.
        steps: optimizer steps per path.
        start: the start point (default: the function's).
        lrs: learning rates by label, overriding the function's defaults (registry names and
            torch.optim classes; a factory sets its own).

    Returns:
        One :class:`Trajectory` per optimizer, in order.

    Example::

        >>> paths = trajectories("rosenbrock", ["sgdm", "adam", torch.optim.Adam], steps=10)
        >>> paths[1].xy.shape
        (11, 2)
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    fn = get(function) if isinstance(function, str) else function
    x0 = fn.start if start is None else start
    lrs = dict(lrs or {})
    out = []
    for label, spec in _specs(optimizers):
        point = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
        opt, lr = _build(fn, label, spec, [point], lrs.get(label))
        xy = np.full((steps + 1, 2), np.nan)
        loss = np.full(steps + 1, np.nan)
        diverged = None
        for k in range(steps + 1):
            opt.zero_grad()
            value = fn.f(point[0], point[1])
            xy[k], loss[k] = point.detach().numpy(), float(value.detach())
            if not (math.isfinite(loss[k]) and np.isfinite(xy[k]).all()):
                xy[k], loss[k], diverged = np.nan, np.nan, k
                break
            if k == steps:
                break
            value.backward()
            opt.step()
        out.append(Trajectory(label, xy, loss, lr, diverged))
    return out
