"""SGD, SGD with momentum (SGDM), Nesterov (NAG), and SGDW with decoupled weight decay.

References:
    Robbins & Monro 1951 (SGD); Polyak 1964 (momentum); Sutskever et al. 2013, "On the importance
    of initialization and momentum in deep learning" (Nesterov momentum as in torch);
    Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization", Algorithm 1 (SGDW).
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import compress
from typing import Any

import torch

from . import _checks as c
from . import _kernels
from ._validate import HyperparameterError
from .base import Optimizer, hyperparameters, split_options, zeros

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

    def _reference(self, group, p, g, state, t):
        lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
        decoupled = group["decoupled_weight_decay"]
        if wd != 0 and not decoupled:
            g = g.add(p, alpha=wd)
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
        if wd != 0 and decoupled:
            p.mul_(1 - lr * wd)
        p.add_(g, alpha=-lr)  # (3)

    def _fused(self, group, params, grads, states):
        decoupled = group["weight_decay"] != 0 and group["decoupled_weight_decay"]
        if decoupled and _kernels.unavailable_reason() is None:
            kernels = _kernels.kernels()  # SGDW: the one path without a second pass over p
        else:
            kernels = _kernels.ready()  # never builds: torch's fused SGD has the same math
        if kernels is None:
            self._torch_fused(group, params, grads, states)
        else:
            self._kernel(kernels, group, params, grads, states)

    @staticmethod
    def _kernel(kernels, group, params, grads, states):
        """Decay, momentum and step in one pass over memory (descentlab's ``momentum_sgd``).

        Faster than torch's fused SGD on many tensors: its threads share out the elements of
        all the tensors, not each tensor in turn (docs/speed.md).
        """
        first = _first_steps(group, params, states, kernels.advance_steps)
        lr, wd = float(group["lr"]), group["weight_decay"]
        decoupled = group["decoupled_weight_decay"]
        kernels.momentum_sgd(
            params,
            grads,
            [s["momentum_buffer"] for s in states] if group["momentum"] != 0 else [],
            [lr] * len(params),
            first,
            group["momentum"],
            group["dampening"],
            group["nesterov"],
            0.0 if decoupled else wd,
            1 - lr * wd if decoupled else 1.0,
            group["maximize"],
        )

    @staticmethod
    def _torch_fused(group, params, grads, states):
        """torch's fused SGD, where the compiled kernels are not built (decoupled decay: a
        second pass over p)."""
        first = _first_steps(group, params, states, _kernels.advance_steps)
        wd, decoupled = group["weight_decay"], group["decoupled_weight_decay"]
        if wd != 0 and decoupled:
            torch._foreach_mul_(params, 1 - group["lr"] * wd)
        mu = group["momentum"]
        calls = [(first[0], params, grads, states)]
        if 0 < first.count(True) < len(first):  # torch's kernel takes one first-step flag per call
            calls = []
            for flag in (True, False):
                keep = [f is flag for f in first]
                calls.append((flag, *(list(compress(x, keep)) for x in (params, grads, states))))
        for is_first, ps, gs, ss in calls:
            torch._fused_sgd_(
                ps,
                gs,
                [s["momentum_buffer"] for s in ss] if mu != 0 else [],
                weight_decay=0.0 if decoupled else wd,
                momentum=mu,
                lr=group["lr"],
                dampening=group["dampening"],
                nesterov=group["nesterov"],
                maximize=group["maximize"],
                is_first_step=is_first,
            )


def _first_steps(group, params, states, advance) -> list[bool]:
    """Advance the step counters; which tensors take their first momentum step (b_1 = g_1)."""
    first = [t == 1 for t in advance([s["step"] for s in states])]
    if group["momentum"] != 0:
        for i, s in enumerate(states):
            if "momentum_buffer" not in s:  # momentum switched on after the first step
                s["momentum_buffer"] = torch.zeros_like(params[i])
                first[i] = True
    return first


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
