"""SGDR: cosine annealing with warm restarts, a real-valued T_mult, peak decay and warm-up.

Reference: Loshchilov & Hutter 2017, "SGDR: Stochastic Gradient Descent with Warm Restarts",
eq. (5). torch's ``CosineAnnealingWarmRestarts`` takes only an integer ``T_mult`` and has no
peak decay; this class equals it for an integer ``T_mult`` and ``decay=1`` (tested).
"""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from ..checks import NONNEGATIVE, Interval, check_int, check_number
from .warmup import with_warmup

__all__ = ["SGDR", "sgdr"]

_DECAY = Interval(0.0, 1.0, lo_open=True)


class SGDR(LRScheduler):
    r"""Cosine annealing with warm restarts, stepped once per optimizer step.

    .. math::
        S_i = \operatorname{round}\Big(T_0 \frac{T_{mult}^i - 1}{T_{mult} - 1}\Big)
              \ (S_i = i T_0 \text{ if } T_{mult} = 1),\quad T_i = S_{i+1} - S_i     \tag{1}
        \eta_e = \eta_{min} + (\gamma^i \eta_0 - \eta_{min})
                 \tfrac12\big(1 + \cos(\pi \tfrac{e - S_i}{T_i})\big),\ S_i \le e < S_{i+1}  \tag{2}

    Cycle :math:`i` starts at step :math:`S_i` with the peak :math:`\gamma^i \eta_0`
    (:math:`\gamma` = ``decay``). Cycle lengths are whole steps, rounded on the cumulative
    boundaries (1) so the rounding never accumulates, so a restart always lands on the peak; for an
    integer ``T_mult`` no rounding happens. The LR is a closed form of the step, so ``state_dict``
    holds only the step count. Momentum is not touched.

    Args:
        optimizer: any torch optimizer; :math:`\eta_0` is each group's LR.
        T_0: the first cycle's length in steps (>= 1).
        T_mult: growth of the cycle length, a real number >= 1.
        decay: the peak's factor per cycle, :math:`\gamma \in (0, 1]`.
        eta_min: the LR at the end of each cycle (>= 0).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        T_0: int,
        *,
        T_mult: float = 1.0,
        decay: float = 1.0,
        eta_min: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        self.T_0 = check_int("T_0", T_0, Interval(1.0))
        self.T_mult = check_number("T_mult", T_mult, Interval(1.0))
        self.decay = check_number("decay", decay, _DECAY)
        self.eta_min = check_number("eta_min", eta_min, NONNEGATIVE)
        super().__init__(optimizer, last_epoch)

    def _start(self, i: int) -> int:
        """:math:`S_i`, the first step of cycle ``i`` (1)."""
        if self.T_mult == 1.0:
            return i * self.T_0
        return round(self.T_0 * (self.T_mult**i - 1.0) / (self.T_mult - 1.0))

    def cycle(self, e: int) -> tuple[int, int, int]:
        """``(i, e - S_i, T_i)``: the cycle of step ``e``, the position in it, and its length."""
        if self.T_mult == 1.0:
            i = e // self.T_0
        else:  # invert (1) in closed form, then fix the rounding by at most a step either way
            i = int(math.log(e * (self.T_mult - 1.0) / self.T_0 + 1.0, self.T_mult))
            while self._start(i + 1) <= e:
                i += 1
            while self._start(i) > e:
                i -= 1
        start = self._start(i)
        return i, e - start, self._start(i + 1) - start

    def get_lr(self) -> list[float]:
        """The LRs of step ``last_epoch`` (2)."""
        i, t, length = self.cycle(self.last_epoch)
        cos = 0.5 * (1.0 + math.cos(math.pi * t / length))
        return [
            self.eta_min + (base * self.decay**i - self.eta_min) * cos for base in self.base_lrs
        ]

    _get_closed_form_lr = get_lr  # what SequentialLR calls when a warm-up hands over


def sgdr(
    optimizer: Optimizer,
    *,
    total_steps: int,
    T_0: int | None = None,
    T_mult: float = 2.0,
    decay: float = 1.0,
    eta_min: float = 0.0,
    warmup_steps: int = 0,
) -> LRScheduler:
    """SGDR over a run of ``total_steps``, optionally after a linear warm-up (see ``with_warmup``).

    ``T_0`` defaults to ``(total_steps - warmup_steps) // 7``, so that with the paper's
    ``T_mult=2`` three cycles (1 + 2 + 4 = 7) fill the run and it ends at an LR minimum.
    """
    check_int("warmup_steps", warmup_steps, Interval(0.0, total_steps - 1.0))
    steps = total_steps - warmup_steps
    T_0 = max(1, steps // 7) if T_0 is None else T_0
    after = SGDR(optimizer, T_0, T_mult=T_mult, decay=decay, eta_min=eta_min)
    return with_warmup(optimizer, after, warmup_steps) if warmup_steps else after
