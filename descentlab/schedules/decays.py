"""The usual decays (constant, step, exponential, cosine) as per-step torch schedulers.

Each is torch.optim.lr_scheduler's own class with defaults chosen from the run length, so that
``create(name, optimizer, total_steps=n)`` gives a sensible curve without further arguments.

Reference: Loshchilov & Hutter 2017, "SGDR: Stochastic Gradient Descent with Warm Restarts"
(cosine annealing, eq. 5, without restarts).
"""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    ExponentialLR,
    LambdaLR,
    LRScheduler,
    StepLR,
)

from ..checks import NONNEGATIVE, Interval, check_int, check_number

__all__ = ["constant", "cosine", "exponential", "step"]

_DECAY = Interval(0.0, 1.0, lo_open=True)  # (0, 1]: a factor that never raises the LR


def _one(_: int) -> float:
    return 1.0


def constant(optimizer: Optimizer, *, total_steps: int) -> LRScheduler:
    """The optimizer's LR at every step (``LambdaLR`` with factor 1)."""
    return LambdaLR(optimizer, _one)


def step(
    optimizer: Optimizer, *, total_steps: int, step_size: int | None = None, gamma: float = 0.1
) -> LRScheduler:
    """Multiply the LR by ``gamma`` every ``step_size`` steps (``StepLR``).

    Args:
        step_size: steps between drops (>= 1); by default ``total_steps // 3``, so the LR drops
            twice, at a third and at two thirds of the run.
        gamma: the factor of each drop, in (0, 1].
    """
    step_size = max(1, total_steps // 3) if step_size is None else step_size
    check_int("step_size", step_size, Interval(1.0))
    return StepLR(optimizer, step_size, check_number("gamma", gamma, _DECAY))


def exponential(
    optimizer: Optimizer, *, total_steps: int, gamma: float | None = None
) -> LRScheduler:
    """Multiply the LR by ``gamma`` every step (``ExponentialLR``).

    Args:
        gamma: the per-step factor, in (0, 1]; by default ``0.01 ** (1 / total_steps)``, so the
            LR falls to a hundredth of its initial value over the run.
    """
    gamma = 0.01 ** (1.0 / total_steps) if gamma is None else gamma
    return ExponentialLR(optimizer, check_number("gamma", gamma, _DECAY))


def cosine(optimizer: Optimizer, *, total_steps: int, eta_min: float = 0.0) -> LRScheduler:
    r"""Cosine annealing from the LR to ``eta_min`` over the run (``CosineAnnealingLR``).

    :math:`\eta_t = \eta_{min} + (\eta_0 - \eta_{min})(1 + \cos(\pi t / T))/2`, ``T = total_steps``.

    Args:
        eta_min: the final LR (>= 0).
    """
    eta_min = check_number("eta_min", eta_min, NONNEGATIVE)
    return CosineAnnealingLR(optimizer, T_max=total_steps, eta_min=eta_min)
