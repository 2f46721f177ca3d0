"""RMSProp (optionally centered, optionally with momentum).

Reference: Tieleman & Hinton 2012, Lecture 6.5 of "Neural Networks for Machine Learning";
Graves 2013, "Generating Sequences With Recurrent Neural Networks", eqs. (38)-(41) (centered).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from . import _checks as c
from .base import Optimizer, hyperparameters, split_options, weight_decay, zeros
from .kernels import _scalars

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    r"""RMSProp, torch.optim's convention.

    .. math::
        v_t = \alpha v_{t-1} + (1-\alpha) g_t^2                                   \tag{1}
        \bar g_t = \alpha \bar g_{t-1} + (1-\alpha) g_t \text{ (centered)}         \tag{2}
        d_t = \sqrt{v_t - \bar g_t^2} + \epsilon \text{ (centered) or } \sqrt{v_t} + \epsilon \tag{3}
        b_t = \mu b_{t-1} + g_t / d_t,\ \theta_t = \theta_{t-1} - \eta b_t \text{ (momentum)} \tag{4}
        \theta_t = \theta_{t-1} - \eta\, g_t / d_t \text{ (no momentum)}           \tag{5}

    Epsilon is outside the square root (torch; TF puts it inside). ``weight_decay`` is L2.
    """

    _checks = {
        "lr": c.nonnegative,
        "alpha": c.unit,
        "eps": c.nonnegative,
        "weight_decay": c.nonnegative,
        "momentum": c.fraction,
        "centered": c.flag,
        "maximize": c.flag,
    }

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float | torch.Tensor = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        *,
        maximize: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(params, hyperparameters(locals()), **split_options(options))

    def _init_state(self, group, p, state):
        zeros(state, p, "square_avg")
        if group["momentum"] > 0:
            zeros(state, p, "momentum_buffer")
        if group["centered"]:
            zeros(state, p, "grad_avg")

    _compiled = True

    def _reference(self, group, p, g, state, t):
        alpha, lr = group["alpha"], group["lr"]
        g = weight_decay(group, p, g)
        v = state["square_avg"].mul_(alpha).addcmul_(g, g, value=1 - alpha)  # (1)
        if group["centered"]:
            gbar = state["grad_avg"].lerp_(g, 1 - alpha)  # (2)
            denom = v.addcmul(gbar, gbar, value=-1).sqrt_()
        else:
            denom = v.sqrt()
        denom.add_(group["eps"])  # (3)
        if group["momentum"] > 0:
            buf = state["momentum_buffer"].mul_(group["momentum"]).addcdiv_(g, denom)  # (4)
            p.add_(buf, alpha=-lr)
        else:
            p.addcdiv_(g, denom, value=-lr)  # (5)

    def _fused(self, group, params, grads, states, kernels, **amp):
        _scalars.add_one(states)
        kernels.rmsprop(
            params=params,
            grads=grads,
            square_avg=[s["square_avg"] for s in states],
            grad_avg=[s["grad_avg"] for s in states] if group["centered"] else [],
            momentum_buffer=[s["momentum_buffer"] for s in states] if group["momentum"] > 0 else [],
            lr=group["lr"],
            alpha=group["alpha"],
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            momentum=group["momentum"],
            maximize=group["maximize"],
            **amp,
        )
