"""Adam, AMSGrad and AdamW.

References:
    Kingma & Ba 2015, "Adam: A Method for Stochastic Optimization", Algorithm 1;
    Reddi, Kale & Kumar 2018, "On the Convergence of Adam and Beyond" (AMSGrad);
    Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization", Algorithm 2 (AdamW).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from . import _checks as c
from .base import Optimizer, hyperparameters, split_options, weight_decay, zeros
from .kernels import _scalars, foreach

__all__ = ["Adam", "AdamW", "bias_corrections"]


class Adam(Optimizer):
    r"""Adam (optionally AMSGrad, optionally with decoupled weight decay), torch.optim's convention.

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t                                   \tag{1}
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2                                 \tag{2}
        \hat v_t = \max(\hat v_{t-1}, v_t) \text{ (AMSGrad) or } v_t              \tag{3}
        \theta_t = \theta_{t-1} - \frac{\eta}{1-\beta_1^t}\,
                   \frac{m_t}{\sqrt{\hat v_t / (1-\beta_2^t)} + \epsilon}             \tag{4}

    Epsilon is added outside the square root of the bias-corrected second moment (the paper and
    torch; Keras/TF use an "epsilon hat" form that differs by a time-varying epsilon). AMSGrad takes
    the running max over the *raw* :math:`v_t` and bias-corrects afterwards (torch; optax's default
    takes the max of the bias-corrected :math:`v_t`, the paper has no bias correction).
    ``weight_decay`` is L2 (added to :math:`g_t`) unless ``decoupled_weight_decay=True``, then
    :math:`\theta \leftarrow \theta(1-\eta\lambda)` before (4), as :class:`AdamW`.
    """

    _checks = {
        "lr": c.nonnegative,
        "betas": c.betas,
        "eps": c.nonnegative,
        "weight_decay": c.nonnegative,
        "amsgrad": c.flag,
        "decoupled_weight_decay": c.flag,
        "maximize": c.flag,
    }

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float | torch.Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        decoupled_weight_decay: bool = False,
        maximize: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(params, hyperparameters(locals()), **split_options(options))

    def _init_state(self, group, p, state):
        zeros(state, p, "exp_avg", "exp_avg_sq")
        if group["amsgrad"]:
            zeros(state, p, "max_exp_avg_sq")

    def _torch_fused(self, group):
        return True

    def _reference(self, group, p, g, state, t):
        lr, (b1, b2), eps = group["lr"], group["betas"], group["eps"]
        g = weight_decay(group, p, g)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m.lerp_(g, 1 - b1)  # (1)
        v.mul_(b2).addcmul_(g, g, value=1 - b2)  # (2)
        if group["amsgrad"]:
            v = torch.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])  # (3)
        denom = (v.sqrt() / math.sqrt(1 - b2**t)).add_(eps)
        p.addcdiv_(m, denom, value=-lr / (1 - b1**t))  # (4)

    def _fused(self, group, params, grads, states, kernels, **amp):
        b1, b2 = group["betas"]
        lists = (
            params,
            grads,
            [s["exp_avg"] for s in states],
            [s["exp_avg_sq"] for s in states],
            [s["max_exp_avg_sq"] for s in states] if group["amsgrad"] else [],
        )
        if kernels is not None or torch.compiler.is_compiling():  # (torch's has no fake kernel)
            bc1, bc2 = bias_corrections(group, _scalars.advance(states))
            l2, decay = _scalars.decay(group)
            kernels = kernels or foreach
            kernels.adam(
                *lists,
                bc1=bc1,
                bc2=bc2,
                lr=group["lr"],
                beta1=b1,
                beta2=b2,
                eps=group["eps"],
                l2_weight_decay=l2,
                decay=decay,
                amsgrad=group["amsgrad"],
                maximize=group["maximize"],
                **amp,
            )
            return
        steps = [s["step"] for s in states]
        _scalars.add_one(states)  # torch's kernels read the incremented counters
        kernel = torch._fused_adamw_ if group["decoupled_weight_decay"] else torch._fused_adam_
        kernel(
            *lists,
            steps,
            amsgrad=group["amsgrad"],
            lr=group["lr"],
            beta1=b1,
            beta2=b2,
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=group["maximize"],
            **amp,
        )


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): ``Adam(decoupled_weight_decay=True)``."""

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float | torch.Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            decoupled_weight_decay=True,
            maximize=maximize,
            **options,
        )


def bias_corrections(group: dict[str, Any], t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Adam's bias corrections ``1 - beta1^t`` and ``1 - beta2^t``."""
    b1, b2 = group["betas"]
    return 1 - b1**t, 1 - b2**t
