"""Adam, AMSGrad and AdamW.

References:
    Kingma & Ba 2015, "Adam: A Method for Stochastic Optimization", Algorithm 1;
    Reddi, Kale & Kumar 2018, "On the Convergence of Adam and Beyond" (AMSGrad);
    Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization", Algorithm 2 (AdamW).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from . import _checks as c
from .elementwise import DECAY_FLAGS, Elementwise, lerp, maximum, sqrt

__all__ = ["Adam", "AdamW"]


class Adam(Elementwise):
    r"""Adam (optionally AMSGrad, optionally with decoupled weight decay), torch.optim's convention.

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t                                   \tag{1}
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2                                 \tag{2}
        \hat v_t = \max(\hat v_{t-1}, v_t) \text{ (AMSGrad) or } v_t              \tag{3}
        \theta_t = \theta_{t-1} - \frac{\eta}{1-\beta_1^t}\,
                   \frac{m_t}{\sqrt{\hat v_t} / \sqrt{1-\beta_2^t} + \epsilon}          \tag{4}

    Epsilon is added outside the square root of the bias-corrected second moment (the paper and
    torch; Keras/TF use an "epsilon hat" form that differs by a time-varying epsilon). AMSGrad takes
    the running max over the *raw* :math:`v_t` and bias-corrects afterwards (torch; optax's default
    takes the max of the bias-corrected :math:`v_t`, the paper has no bias correction).
    ``weight_decay`` is L2 (added to :math:`g_t`) unless ``decoupled_weight_decay=True``, then
    :math:`\theta \leftarrow \theta(1-\eta\lambda)` before (4), as :class:`AdamW`.

    On CUDA, and on a CPU where descentlab's kernels are not built, the step is torch's fused
    Adam kernel (the same math); elsewhere the kernels generated from the rule below.
    """

    hyperparameters = {
        "lr": 1e-3,
        "betas": (0.9, 0.999),
        "eps": 1e-8,
        "weight_decay": 0.0,
        "amsgrad": False,
        "decoupled_weight_decay": False,
    }
    checks = c.ADAM_LIKE
    state_tensors = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    derived = DECAY_FLAGS
    state_when = {"max_exp_avg_sq": "amsgrad"}

    @staticmethod
    def scalars(h: Any, t: torch.Tensor) -> dict[str, Any]:
        """The step size ``-lr / (1 - beta1^t)`` and ``sqrt(1 - beta2^t)`` of (4), per tensor."""
        b1, b2 = h.betas
        return {"step_size": -h.lr / (1 - b1**t), "bc2_sqrt": (1 - b2**t).sqrt()}

    def update(x, h):
        if h.decay:
            x.param = x.param * (1 - h.lr * h.weight_decay)  # decoupled weight decay
        g = x.grad + h.weight_decay * x.param if h.l2 else x.grad  # L2
        x.exp_avg = lerp(x.exp_avg, g, 1 - h.betas[0])  # (1)
        x.exp_avg_sq = x.exp_avg_sq * h.betas[1] + (1 - h.betas[1]) * g * g  # (2)
        if h.amsgrad:
            x.max_exp_avg_sq = maximum(x.max_exp_avg_sq, x.exp_avg_sq)  # (3)
            v = x.max_exp_avg_sq
        else:
            v = x.exp_avg_sq
        x.param = x.param + h.step_size * (x.exp_avg / (sqrt(v) / h.bc2_sqrt + h.eps))  # (4)

    def _torch_fused(self, group: dict[str, Any]) -> bool:
        return True

    def _torch_step(self, group, params, grads, states, **amp):
        kernel = torch._fused_adamw_ if group["decoupled_weight_decay"] else torch._fused_adam_
        b1, b2 = group["betas"]
        kernel(
            params,
            grads,
            [s["exp_avg"] for s in states],
            [s["exp_avg_sq"] for s in states],
            [s["max_exp_avg_sq"] for s in states] if group["amsgrad"] else [],
            [s["step"] for s in states],
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
