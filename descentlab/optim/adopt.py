"""ADOPT: Adam that converges for any beta2, by normalising the gradient with the previous
second moment and momentum after the normalisation.

Reference: Taniguchi et al. 2024, "ADOPT: Modified Adam Can Converge with Any beta2 with the
Optimal Rate" (NeurIPS), Algorithm 2 (with clipping), as the authors' package ``torch-adopt``
implements it.
"""

from __future__ import annotations

from typing import Any

import torch

from . import _checks as c
from .elementwise import DECAY_FLAGS, Elementwise, clamp, lerp, maximum, sqrt, where

__all__ = ["ADOPT"]


class ADOPT(Elementwise):
    r"""ADOPT, the authors' package's convention (``torch-adopt``).

    .. math::
        v_0 = g_0^2 \quad\text{(the first step only sets } v\text{; no update)}           \tag{1}
        \hat g_t = \operatorname{clip}\big(g_t / \max(\sqrt{v_{t-1}}, \epsilon),\ c_t\big),
        \quad c_t = t^{1/4}                                                               \tag{2}
        m_t = \beta_1 m_{t-1} + (1-\beta_1)\, \hat g_t                                    \tag{3}
        \theta_t = \theta_{t-1} - \eta\, m_t                                              \tag{4}
        v_t = \beta_2 v_{t-1} + (1-\beta_2)\, g_t^2                                       \tag{5}

    :math:`t` counts the updates (the first call is :math:`t = 0`). Unlike Adam, the gradient is
    divided by the *previous* second moment before the momentum, and there is no bias
    correction. Defaults as the authors': ``betas=(0.9, 0.9999)``, ``eps=1e-6``. ``clip=False``
    drops the clipping (their ``clip_lambda=None``); the authors' package takes a function of
    the step, ADOPT here only their default :math:`t^{1/4}`. ``weight_decay`` is L2 unless
    ``decoupled_weight_decay=True`` (the authors' ``decouple``: :math:`\theta(1-\eta\lambda)`
    before the update, none on the first step).
    """

    hyperparameters = {
        "lr": 1e-3,
        "betas": (0.9, 0.9999),
        "eps": 1e-6,
        "weight_decay": 0.0,
        "decoupled_weight_decay": False,
        "clip": True,
    }
    checks = c.ADAM_LIKE
    state_tensors = ("exp_avg", "exp_avg_sq")
    derived = DECAY_FLAGS

    @staticmethod
    def scalars(h: Any, t: torch.Tensor) -> dict[str, Any]:
        """Whether this is the first call, and the clipping bound c_t of (2) (t counts from 0)."""
        return {"first": (t == 1).to(t.dtype), "bound": (t - 1) ** 0.25}

    def update(x, h):
        g = x.grad + h.weight_decay * x.param if h.l2 else x.grad  # L2
        start = h.first > 0
        normed = g / maximum(sqrt(x.exp_avg_sq), h.eps)  # (2)
        if h.clip:
            normed = clamp(normed, -h.bound, h.bound)  # (2)
        m = lerp(x.exp_avg, normed, 1 - h.betas[0])  # (3)
        p = x.param * (1 - h.lr * h.weight_decay) if h.decay else x.param  # decoupled decay
        x.param = where(start, x.param, p - h.lr * m)  # (4)
        x.exp_avg = where(start, x.exp_avg, m)
        v = x.exp_avg_sq * h.betas[1] + (1 - h.betas[1]) * g * g  # (5)
        x.exp_avg_sq = where(start, x.exp_avg_sq + g * g, v)  # (1), (5)
