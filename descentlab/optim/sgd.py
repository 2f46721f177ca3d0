"""SGD, SGD with momentum (SGDM), Nesterov (NAG), and SGDW with decoupled weight decay.

References:
    Robbins & Monro 1951 (SGD); Polyak 1964 (momentum); Sutskever et al. 2013, "On the importance
    of initialization and momentum in deep learning" (Nesterov momentum as in torch);
    Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization", Algorithm 1 (SGDW).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from ..checks import HyperparameterError
from . import _checks as c
from .elementwise import DECAY_FLAGS, Elementwise, where
from .kernels import _scalars, rules

__all__ = ["SGD", "SGDW"]


class SGD(Elementwise):
    r"""Stochastic gradient descent with optional (Nesterov) momentum, torch.optim's convention.

    With :math:`g_t = \nabla f(\theta_{t-1}) + \lambda\theta_{t-1}` (L2, when not decoupled):

    .. math::
        b_1 = g_1,\quad b_t = \mu b_{t-1} + (1-\tau) g_t                      \tag{1}
        d_t = g_t + \mu b_t \text{ (Nesterov)}, \quad d_t = b_t \text{ (otherwise)} \tag{2}
        \theta_t = \theta_{t-1} - \eta\, d_t                                    \tag{3}

    With ``decoupled_weight_decay=True`` (SGDW, Loshchilov & Hutter Alg. 1 with torch.optim.AdamW's
    ``lr * weight_decay`` scaling) the decay leaves the gradient and acts on the weights:
    :math:`\theta_t = \theta_{t-1} - \eta\lambda\theta_{t-1} - \eta d_t`.

    The lecture writes momentum as :math:`v_t = \mu v_{t-1} - \eta g_t,\ \theta_t = \theta_{t-1} + v_t`;
    it equals (1)-(3) for a constant learning rate (torch's form lets a schedule act at once).
    Momentum switched on after the first step starts its buffer then (:math:`b = g`), as torch.

    Example:
        >>> opt = SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)  # doctest: +SKIP
    """

    hyperparameters = {
        "lr": 1e-3,
        "momentum": 0.0,
        "dampening": 0.0,
        "weight_decay": 0.0,
        "nesterov": False,
        "decoupled_weight_decay": False,
    }
    checks = {
        "lr": c.nonnegative,
        "momentum": c.fraction,
        "dampening": c.unit,
        "weight_decay": c.nonnegative,
    }
    state_tensors = ("momentum_buffer",)
    derived = {**DECAY_FLAGS, "heavy_ball": lambda h: h.momentum != 0}
    state_when = {"momentum_buffer": "heavy_ball"}
    # torch.optim.SGD keeps no step counter: its saved momentum buffer has taken a first step.
    _missing_step = 1.0

    @staticmethod
    def scalars(h: Any, t: torch.Tensor) -> dict[str, Any]:
        """The step counts (a buffer's first step is the first), as they are: no tensor op."""
        return {"count": t}

    def update(x, h):
        if h.decay:
            x.param = x.param * (1 - h.lr * h.weight_decay)  # decoupled weight decay
        g = x.grad + h.weight_decay * x.param if h.l2 else x.grad  # L2
        if h.heavy_ball:
            b = x.momentum_buffer * h.momentum + (1 - h.dampening) * g
            x.momentum_buffer = where(h.count > 1, b, g)  # (1)
            d = g + h.momentum * x.momentum_buffer if h.nesterov else x.momentum_buffer  # (2)
        else:
            d = g
        x.param = x.param - h.lr * d  # (3)

    def _check_combination(self, group: dict[str, Any]) -> None:
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise HyperparameterError(
                f"Invalid nesterov=True with momentum={group['momentum']!r} and "
                f"dampening={group['dampening']!r}; Nesterov needs momentum in (0, 1) and "
                "dampening = 0"
            )

    def _torch_fused(self, group: dict[str, Any]) -> bool:
        # torch's kernel takes one first-step flag per call: with dampening 0 the first step
        # b_1 = g_1 is the general one from a zero buffer, so the flag (a host read) is not needed
        decoupled = group["weight_decay"] != 0 and group["decoupled_weight_decay"]
        return not decoupled and (group["momentum"] == 0 or group["dampening"] == 0)

    def _reference(self, group, p, g, state, t):
        if group["momentum"] != 0 and "momentum_buffer" not in state:  # momentum switched on
            state["momentum_buffer"] = torch.zeros_like(p)
            t = 1  # b_1 = g_1 now
        super()._reference(group, p, g, state, t)

    def _torch_step(self, group, params, grads, states, **amp):
        torch._fused_sgd_(
            params,
            grads,
            [s["momentum_buffer"] for s in states] if group["momentum"] != 0 else [],
            weight_decay=group["weight_decay"],
            momentum=group["momentum"],
            lr=group["lr"],
            dampening=group["dampening"],
            nesterov=group["nesterov"],
            maximize=group["maximize"],
            is_first_step=False,
            **amp,
        )

    def _fused(self, group, params, grads, states, kernels, **amp):
        """The rule's kernel (descentlab's is faster than torch's fused SGD on many tensors: its
        threads share out the elements of all the tensors, not each tensor in turn;
        docs/speed.md), else torch's fused SGD."""
        fresh = _buffers(group, params, states)
        if not any(fresh):
            super()._fused(group, params, grads, states, kernels, **amp)
            return
        t = _scalars.advance(states)  # momentum switched on after the first step: b_1 = g_1
        t = torch.where(torch.tensor(fresh, device=t.device), 1.0, t)
        self._rule_step(group, params, grads, states, kernels or rules.Foreach, t, amp)


def _buffers(group, params, states) -> list[bool]:
    """Create the momentum buffers that momentum switched on after the first step lacks;
    which tensors got one."""
    if group["momentum"] == 0:
        return []
    fresh = ["momentum_buffer" not in s for s in states]
    if any(fresh):
        for p, s, new in zip(params, states, fresh):
            if new:
                s["momentum_buffer"] = torch.zeros_like(p)
    return fresh


class SGDW(SGD):
    """SGD(M) with decoupled weight decay (SGDW / SGDWM): ``SGD(decoupled_weight_decay=True)``."""

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float | torch.Tensor = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 5e-4,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(
            params,
            lr,
            momentum,
            dampening,
            weight_decay,
            nesterov,
            decoupled_weight_decay=True,
            maximize=maximize,
            **options,
        )
