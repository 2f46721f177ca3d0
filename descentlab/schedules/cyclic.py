"""Cyclical LRs (Smith 2017) and the 1cycle policy (Smith 2018), as torch's own classes.

References:
    Smith 2017, "Cyclical Learning Rates for Training Neural Networks", section 3.1 (triangular,
    triangular2, exp_range) and 3.3 (choosing the bounds from an LR range test);
    Smith 2018, "A disciplined approach to neural network hyper-parameters: Part 1", section 4.1
    (1cycle: up, down, then annihilation; momentum moves opposite to the LR).
"""

from __future__ import annotations

from typing import Literal

from torch.optim import Optimizer
from torch.optim.lr_scheduler import CyclicLR, LRScheduler, OneCycleLR

from ..checks import (
    HYPERPARAMETERS,
    POSITIVE,
    UNIT_OPEN_RIGHT,
    HyperparameterError,
    Interval,
    check_bool,
    check_choice,
    check_int,
    check_number,
)

__all__ = ["cyclic", "onecycle", "uses_momentum"]


def uses_momentum(optimizer: Optimizer) -> bool:
    """Whether every group has a momentum to cycle: Adam's ``betas`` or a ``momentum`` > 0."""
    return all("betas" in g or g.get("momentum", 0) > 0 for g in optimizer.param_groups)


def _check_momentum_range(
    optimizer: Optimizer, cycle: bool, base_momentum: float, max_momentum: float
) -> None:
    check_bool("cycle_momentum", cycle)
    if not cycle:
        return
    if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
        raise HyperparameterError(
            f"Invalid cycle_momentum=True: {type(optimizer).__name__} has neither 'momentum' "
            "nor 'betas' in its defaults"
        )
    check_number("base_momentum", base_momentum, UNIT_OPEN_RIGHT)
    check_number("max_momentum", max_momentum, Interval(base_momentum, 1.0, hi_open=True))


def cyclic(
    optimizer: Optimizer,
    *,
    total_steps: int,
    base_lr: float | None = None,
    max_lr: float | None = None,
    step_size_up: int | None = None,
    mode: Literal["triangular", "triangular2", "exp_range"] = "triangular",
    gamma: float = 1.0,
    cycle_momentum: bool = False,
    base_momentum: float = 0.8,
    max_momentum: float = 0.9,
) -> LRScheduler:
    r"""Cyclical LR between ``base_lr`` and ``max_lr`` (torch's ``CyclicLR``).

    .. math::
        c = \lfloor 1 + e / (2s) \rfloor,\ x = |e/s - 2c + 1|,\
        \eta_e = \eta_{base} + (\eta_{max} - \eta_{base}) \max(0, 1 - x)\, \sigma    \tag{1}

    with :math:`\sigma = 1` (triangular), :math:`1/2^{c-1}` (triangular2) or
    :math:`\gamma^e` (exp_range).

    Args:
        base_lr, max_lr: the bounds; by default ``max_lr`` is each group's LR and ``base_lr`` a
            quarter of it (Smith 2017, section 3.3: a third to a quarter of the maximum).
        step_size_up: steps of the rising half cycle (>= 1); by default ``total_steps // 8``, so
            the run holds four whole cycles.
        mode: ``"triangular"``, ``"triangular2"`` or ``"exp_range"``.
        gamma: the per-step factor of ``exp_range``, in (0, 1].
        cycle_momentum: ``False`` by default (Smith 2017 keeps momentum fixed; torch's default is
            ``True``); with ``True`` the momentum (Adam's beta1) runs from ``max_momentum`` down
            to ``base_momentum`` as the LR rises.
    """
    lrs = [g["lr"] for g in optimizer.param_groups]
    max_lr = lrs if max_lr is None else [check_number("max_lr", max_lr, POSITIVE)] * len(lrs)
    base_lr = [m / 4 for m in max_lr] if base_lr is None else [base_lr] * len(lrs)
    for lo, hi in zip(base_lr, max_lr):
        check_number("base_lr", lo, Interval(0.0, hi))
    step_size_up = max(1, total_steps // 8) if step_size_up is None else step_size_up
    check_int("step_size_up", step_size_up, Interval(1.0))
    check_choice("mode", mode, ("triangular", "triangular2", "exp_range"))
    check_number("gamma", gamma, Interval(0.0, 1.0, lo_open=True))
    _check_momentum_range(optimizer, cycle_momentum, base_momentum, max_momentum)
    return CyclicLR(
        optimizer,
        base_lr=base_lr,
        max_lr=max_lr,
        step_size_up=step_size_up,
        mode=mode,
        gamma=gamma,
        cycle_momentum=cycle_momentum,
        base_momentum=base_momentum,
        max_momentum=max_momentum,
    )


def onecycle(
    optimizer: Optimizer,
    *,
    total_steps: int,
    max_lr: float | None = None,
    pct_start: float = 0.45,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    three_phase: bool = True,
    anneal_strategy: Literal["linear", "cos"] = "linear",
    cycle_momentum: bool | None = None,
    base_momentum: float = 0.85,
    max_momentum: float = 0.95,
) -> LRScheduler:
    """The 1cycle policy (torch's ``OneCycleLR``), by default as in Smith 2018.

    Smith's form (``three_phase=True``, ``anneal_strategy="linear"``, ``pct_start=0.45``): the LR
    rises linearly from ``max_lr / div_factor`` to ``max_lr`` over 45% of the run, falls back over
    another 45%, then anneals to ``max_lr / (div_factor * final_div_factor)`` in the last 10%;
    momentum (Adam's beta1) falls from ``max_momentum`` to ``base_momentum`` while the LR rises and
    comes back while it falls. torch's defaults (fastai's two-phase cosine form) are
    ``three_phase=False, anneal_strategy="cos", pct_start=0.3``.

    ``cycle_momentum=None`` (default) cycles momentum when every group has one to cycle (Adam-style
    betas or ``momentum > 0``); torch's default ``True`` would switch momentum *on* for plain SGD.
    Like torch's class it raises if stepped more than ``total_steps`` times: build it for the
    whole run and resume it with ``load_state_dict``, never for the remaining steps.

    Args:
        max_lr: the peak; by default each group's LR.
    """
    max_lrs = [g["lr"] for g in optimizer.param_groups] if max_lr is None else max_lr
    if max_lr is not None:
        check_number("max_lr", max_lr, POSITIVE)
    check_bool("three_phase", three_phase)
    # three phases: up and down take pct_start each, so pct_start <= 0.5
    top = Interval(0.0, 0.5, lo_open=True) if three_phase else Interval(0.0, 1.0, True, True)
    check_number("pct_start", pct_start, top)
    if pct_start * total_steps < 2:  # torch divides by the rising phase's length minus one
        raise HYPERPARAMETERS.fail(
            "pct_start",
            pct_start,
            f"with total_steps={total_steps} the rising phase must last at least 2 steps, "
            f"so the valid range is [{2 / total_steps:g}, {top.hi:g}]",
        )
    check_number("div_factor", div_factor, Interval(1.0))
    check_number("final_div_factor", final_div_factor, Interval(1.0))
    check_choice("anneal_strategy", anneal_strategy, ("linear", "cos"))
    cycle = uses_momentum(optimizer) if cycle_momentum is None else cycle_momentum
    _check_momentum_range(optimizer, cycle, base_momentum, max_momentum)
    return OneCycleLR(
        optimizer,
        max_lr=max_lrs,
        total_steps=total_steps,
        pct_start=float(pct_start),
        anneal_strategy=anneal_strategy,
        cycle_momentum=cycle,
        base_momentum=base_momentum,
        max_momentum=max_momentum,
        div_factor=div_factor,
        final_div_factor=final_div_factor,
        three_phase=three_phase,
    )
