"""Linear warm-up: a prefix before any schedule (Goyal et al.) and the untuned rule (Ma & Yarats).

References:
    Goyal et al. 2017, "Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour", section 2.2
    (gradual warm-up);
    Ma & Yarats 2021 (arXiv 2019), "On the adequacy of untuned warmup for adaptive optimization",
    section 5 (untuned linear warm-up over 2 / (1 - beta2) steps).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LinearLR, LRScheduler, SequentialLR

from ..checks import HYPERPARAMETERS, HyperparameterError, check_betas

__all__ = ["warmup_untuned", "with_warmup"]


def with_warmup(optimizer: Optimizer, after: LRScheduler, warmup_steps: int) -> LRScheduler:
    r"""Prefix ``after`` with a linear warm-up of ``warmup_steps`` steps.

    At step :math:`e < W` the LR is :math:`\eta (e + 1) / W`, where :math:`\eta` is the LR that
    ``after`` starts with (for ``onecycle`` and ``cyclic`` that is their lowest LR, not the
    optimizer's); from step :math:`W` on, ``after`` runs from its own step 0. So the first update
    uses :math:`\eta / W` (never a wasted step at LR 0) and step :math:`W - 1` reaches
    :math:`\eta`. Momentum is left as ``after`` set it at its step 0.

    ``after`` must already be built on ``optimizer`` (for its own run length, total minus
    :math:`W`). This is torch's ``SequentialLR([LinearLR(1/W, 1, W-1), after], [W])``; the result
    saves and loads both parts with ``state_dict``.
    """
    linear = LinearLR(optimizer, start_factor=1.0 / warmup_steps, total_iters=warmup_steps - 1)
    return SequentialLR(optimizer, [linear, after], milestones=[warmup_steps])


def _beta2(optimizer: Optimizer, group: dict) -> float:
    betas = group.get("betas", optimizer.defaults.get("betas"))
    if betas is None:
        raise HyperparameterError(
            f"warmup-untuned reads beta2 from the optimizer's betas, but "
            f"{type(optimizer).__name__} has none; use an Adam-style optimizer or 'warmup'"
        )
    check_betas("betas", betas)
    return float(betas[1])


def _untuned(rate: float) -> Callable[[int], float]:
    # Update t = e + 1 gets omega_t = min(1, t (1 - beta2) / 2) (Ma & Yarats, section 5).
    return lambda e: min(1.0, (e + 1) * rate)


def warmup_untuned(optimizer: Optimizer, *, total_steps: int) -> LRScheduler:
    r"""Untuned linear warm-up: :math:`\eta_t = \eta \min(1, t (1 - \beta_2) / 2)`, t from 1.

    :math:`\beta_2` is read per parameter group (``group["betas"]``, else
    ``optimizer.defaults["betas"]``), so groups with different betas warm up over different
    lengths; the LR stays at :math:`\eta` afterwards. With the usual :math:`\beta_2 = 0.999`
    that is 2000 steps, so ``total_steps`` must be at least that (else ``ValueError``).
    """
    rates = [(1.0 - _beta2(optimizer, g)) / 2.0 for g in optimizer.param_groups]
    longest = 1.0 / min(rates)
    if math.ceil(longest - 1e-9) > total_steps:  # 2/(1-0.999) is 1999.99... in floating point
        raise HYPERPARAMETERS.fail(
            "total_steps",
            total_steps,
            f"warmup-untuned warms up over 2/(1-beta2) = {longest:g} steps, so the valid range "
            f"is integers in [{math.ceil(longest - 1e-9)}, inf) (or use 'warmup' with a shorter "
            "warmup_steps)",
        )
    return LambdaLR(optimizer, [_untuned(r) for r in rates])
