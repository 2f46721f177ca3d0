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
from .base import Optimizer, hyperparameters, split_options, weight_decay, zeros
from .kernels import _scalars, foreach

__all__ = ["SGD", "SGDW"]


class SGD(Optimizer):
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

    Example:
        >>> opt = SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)  # doctest: +SKIP
    """

    _checks = {
        "lr": c.nonnegative,
        "momentum": c.fraction,
        "dampening": c.unit,
        "weight_decay": c.nonnegative,
        "nesterov": c.flag,
        "decoupled_weight_decay": c.flag,
        "maximize": c.flag,
    }
    # torch.optim.SGD keeps no step counter: its saved momentum buffer has taken a first step.
    _missing_step = 1.0

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float | torch.Tensor = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        decoupled_weight_decay: bool = False,
        maximize: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(params, hyperparameters(locals()), **split_options(options))

    def _check_combination(self, group: dict[str, Any]) -> None:
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise HyperparameterError(
                f"Invalid nesterov=True with momentum={group['momentum']!r} and "
                f"dampening={group['dampening']!r}; Nesterov needs momentum in (0, 1) and "
                "dampening = 0"
            )

    def _init_state(self, group: dict[str, Any], p: torch.Tensor, state: dict[str, Any]) -> None:
        if group["momentum"] != 0:
            zeros(state, p, "momentum_buffer")

    _compiled = True

    def _torch_fused(self, group):
        # torch's kernel takes one first-step flag per call: with dampening 0 the first step
        # b_1 = g_1 is the general one from a zero buffer, so the flag (a host read) is not needed
        decoupled = group["weight_decay"] != 0 and group["decoupled_weight_decay"]
        return not decoupled and (group["momentum"] == 0 or group["dampening"] == 0)

    def _build(self, group):
        return not self._torch_fused(group)  # else torch's fused SGD has the same math

    def _reference(self, group, p, g, state, t):
        lr, mu = group["lr"], group["momentum"]
        g = weight_decay(group, p, g)
        if mu != 0:
            buf = state.get("momentum_buffer")
            if buf is None:  # momentum switched on after the first step
                buf = state["momentum_buffer"] = torch.zeros_like(p)
                t = 1
            if t == 1:
                buf.copy_(g)  # (1): b_1 = g_1
            else:
                buf.mul_(mu).add_(g, alpha=1 - group["dampening"])  # (1)
            g = g.add(buf, alpha=mu) if group["nesterov"] else buf  # (2)
        p.add_(g, alpha=-lr)  # (3)

    def _fused(self, group, params, grads, states, kernels, **amp):
        """Decay, momentum and step in one pass over memory (descentlab's ``momentum_sgd``,
        faster than torch's fused SGD on many tensors: its threads share out the elements of
        all the tensors, not each tensor in turn; docs/speed.md), else torch's fused SGD."""
        fresh = _buffers(group, params, states)
        if kernels is None and not torch.compiler.is_compiling():  # (torch's: no fake kernel)
            _scalars.add_one(states)
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
            return
        t = _scalars.advance(states)
        first = _scalars.first_steps(t)
        if any(fresh):  # momentum switched on after the first step: b_1 = g_1 now
            first = torch.maximum(first, torch.tensor(fresh, dtype=t.dtype).to(t.device))
        l2, decay = _scalars.decay(group)
        (kernels or foreach).momentum_sgd(
            params=params,
            grads=grads,
            momentum_buffer=[s["momentum_buffer"] for s in states] if group["momentum"] else [],
            lr=torch.zeros_like(t) + group["lr"],
            first=first,
            momentum=group["momentum"],
            dampening=group["dampening"],
            nesterov=group["nesterov"],
            l2_weight_decay=l2,
            decay=decay,
            maximize=group["maximize"],
            **amp,
        )


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
