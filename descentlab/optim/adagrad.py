"""Adagrad.

Reference: Duchi, Hazan & Singer 2011, "Adaptive Subgradient Methods for Online Learning and
Stochastic Optimization" (diagonal form), with torch.optim's learning-rate decay.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from . import _checks as c
from .base import Optimizer, hyperparameters, split_options, weight_decay
from .kernels import _scalars, foreach

__all__ = ["Adagrad", "decayed_lr"]


class Adagrad(Optimizer):
    r"""Adagrad, torch.optim's convention.

    .. math::
        \eta_t = \eta / (1 + (t-1)\,\delta)                                      \tag{1}
        s_t = s_{t-1} + g_t^2, \quad s_0 = \text{initial\_accumulator\_value}    \tag{2}
        \theta_t = \theta_{t-1} - \eta_t\, g_t / (\sqrt{s_t} + \epsilon)           \tag{3}

    ``weight_decay`` is L2 (added to :math:`g_t`); epsilon is outside the square root.
    ``initial_accumulator_value`` is read per parameter group (torch.optim.Adagrad fills every
    accumulator from the constructor's value and ignores a group's own).
    """

    _checks = {
        "lr": c.nonnegative,
        "lr_decay": c.nonnegative,
        "weight_decay": c.nonnegative,
        "initial_accumulator_value": c.nonnegative,
        "eps": c.nonnegative,
        "maximize": c.flag,
    }

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float | torch.Tensor = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        *,
        maximize: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(params, hyperparameters(locals()), **split_options(options))

    def _init_state(self, group, p, state):
        value = group["initial_accumulator_value"]
        if p.is_complex():  # each real component accumulates its own squares (as torch)
            value = complex(value, value)
        state["sum"] = torch.full_like(p, value, memory_format=torch.preserve_format)

    def _torch_fused(self, group):
        return True

    def _reference(self, group, p, g, state, t):
        g = weight_decay(group, p, g)
        clr = group["lr"] / (1 + (t - 1) * group["lr_decay"])  # (1)
        s = state["sum"].addcmul_(g, g, value=1)  # (2)
        p.addcdiv_(g, s.sqrt().add_(group["eps"]), value=-clr)  # (3)

    def _fused(self, group, params, grads, states, kernels, **amp):
        sums = [s["sum"] for s in states]
        if kernels is not None or torch.compiler.is_compiling():  # (torch's: no fake kernel)
            (kernels or foreach).adagrad(
                params,
                grads,
                sums,
                clr=decayed_lr(group, _scalars.advance(states)),
                eps=group["eps"],
                weight_decay=group["weight_decay"],
                maximize=group["maximize"],
                **amp,
            )
            return
        steps = [s["step"] for s in states]
        _scalars.add_one(states)  # torch's kernels read the incremented counters
        torch._fused_adagrad_(
            params,
            grads,
            sums,
            steps,
            lr=group["lr"],
            lr_decay=group["lr_decay"],
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=group["maximize"],
            **amp,
        )


def decayed_lr(group: dict[str, Any], t: torch.Tensor) -> torch.Tensor:
    """Adagrad's decayed learning rate (1): ``lr / (1 + (t - 1) lr_decay)``."""
    return group["lr"] / (1 + (t - 1) * group["lr_decay"])
