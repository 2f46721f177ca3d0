"""Adagrad.

Reference: Duchi, Hazan & Singer 2011, "Adaptive Subgradient Methods for Online Learning and
Stochastic Optimization" (diagonal form), with torch.optim's learning-rate decay.
"""

from __future__ import annotations

from typing import Any

import torch

from . import _checks as c
from .elementwise import Elementwise, sqrt

__all__ = ["Adagrad"]


class Adagrad(Elementwise):
    r"""Adagrad, torch.optim's convention.

    .. math::
        \eta_t = \eta / (1 + (t-1)\,\delta)                                      \tag{1}
        s_t = s_{t-1} + g_t^2, \quad s_0 = \text{initial\_accumulator\_value}    \tag{2}
        \theta_t = \theta_{t-1} - \eta_t\, g_t / (\sqrt{s_t} + \epsilon)           \tag{3}

    ``weight_decay`` is L2 (added to :math:`g_t`); epsilon is outside the square root.
    ``initial_accumulator_value`` is read per parameter group (torch.optim.Adagrad fills every
    accumulator from the constructor's value and ignores a group's own). On CUDA, and on a CPU
    where descentlab's kernels are not built, the step is torch's fused Adagrad kernel.
    """

    hyperparameters = {
        "lr": 1e-2,
        "lr_decay": 0.0,
        "weight_decay": 0.0,
        "initial_accumulator_value": 0.0,
        "eps": 1e-10,
    }
    checks = {
        "lr": c.nonnegative,
        "lr_decay": c.nonnegative,
        "weight_decay": c.nonnegative,
        "initial_accumulator_value": c.nonnegative,
        "eps": c.nonnegative,
    }
    state_tensors = ("sum",)
    derived = {"l2": lambda h: h.weight_decay != 0}

    @staticmethod
    def scalars(h: Any, t: torch.Tensor) -> dict[str, Any]:
        """The decayed learning rate (1), per tensor."""
        return {"clr": h.lr / (1 + (t - 1) * h.lr_decay)}  # (1)

    def update(x, h):
        g = x.grad + h.weight_decay * x.param if h.l2 else x.grad  # L2
        x.sum = x.sum + g * g  # (2)
        x.param = x.param - h.clr * (g / (sqrt(x.sum) + h.eps))  # (3)

    def _init_state(self, group, p, state):
        super()._init_state(group, p, state)
        value = group["initial_accumulator_value"]
        if value:  # s_0 (2); each real component of a complex tensor accumulates its own
            state["sum"].fill_(complex(value, value) if p.is_complex() else value)

    def _torch_fused(self, group: dict[str, Any]) -> bool:
        return True

    def _torch_step(self, group, params, grads, states, **amp):
        torch._fused_adagrad_(
            params,
            grads,
            [s["sum"] for s in states],
            [s["step"] for s in states],
            lr=group["lr"],
            lr_decay=group["lr_decay"],
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=group["maximize"],
            **amp,
        )
