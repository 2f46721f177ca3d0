"""NAdam: Adam with Nesterov momentum.

Reference: Dozat 2016, "Incorporating Nesterov Momentum into Adam", Algorithm 2, with the momentum
schedule mu_t = beta1 (1 - 0.5 * 0.96^(t psi)) (torch.optim's convention).
"""

from __future__ import annotations

from typing import Any

import torch

from . import _checks as c
from .elementwise import DECAY_FLAGS, Elementwise, lerp, sqrt

__all__ = ["NAdam"]


class NAdam(Elementwise):
    r"""NAdam, torch.optim's convention (Dozat's momentum schedule).

    .. math::
        \mu_t = \beta_1 (1 - \tfrac12\, 0.96^{t\psi})                              \tag{1}
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2                                 \tag{2}
        \theta_t = \theta_{t-1} - \eta \Big[\frac{(1-\mu_t) g_t}{1-\prod_{i\le t}\mu_i}
                 + \frac{\mu_{t+1} m_t}{1-\prod_{i\le t+1}\mu_i}\Big]
                 \Big/ \Big(\sqrt{v_t/(1-\beta_2^t)} + \epsilon\Big)                 \tag{3}

    Warning: the lecture's (and optax's) Nadam uses a constant :math:`\beta_1` in place of
    :math:`\mu_t`; ``momentum_decay=0`` does *not* give that form (it gives
    :math:`\mu_t = \beta_1/2`). The running product :math:`\prod \mu_i` is kept in float32 state
    ``mu_product`` (a scalar state: 0-d per tensor), as torch keeps it, so that state dicts are
    interchangeable.
    ``weight_decay`` is L2 unless ``decoupled_weight_decay=True`` (then :math:`\theta(1-\eta\lambda)`).
    """

    hyperparameters = {
        "lr": 2e-3,
        "betas": (0.9, 0.999),
        "eps": 1e-8,
        "weight_decay": 0.0,
        "momentum_decay": 4e-3,
        "decoupled_weight_decay": False,
    }
    checks = {**c.ADAM_LIKE, "momentum_decay": c.nonnegative}
    state_tensors = ("exp_avg", "exp_avg_sq")
    scalar_state = {"mu_product": 1.0}
    derived = DECAY_FLAGS

    @staticmethod
    def scalars(h: Any, t: torch.Tensor, s: Any) -> dict[str, Any]:
        """The momentum schedule (1), the product of the momenta (float32, as torch keeps it)
        and the two step sizes of (3), per tensor."""
        b1, b2, psi = h.betas[0], h.betas[1], h.momentum_decay
        mu = b1 * (1.0 - 0.5 * 0.96 ** (t * psi))  # (1)
        mu_next = b1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))
        product = s.mu_product * mu.to(s.mu_product.dtype)  # rounded as torch's in-place mul
        prod = product.to(t.dtype)
        return {
            "mu_product": product,
            "c_grad": -h.lr * (1.0 - mu) / (1.0 - prod),
            "c_avg": -h.lr * mu_next / (1.0 - prod * mu_next),
            "bc2": 1 - b2**t,
        }

    def update(x, h):
        if h.decay:
            x.param = x.param * (1 - h.lr * h.weight_decay)  # decoupled weight decay
        g = x.grad + h.weight_decay * x.param if h.l2 else x.grad  # L2
        x.exp_avg = lerp(x.exp_avg, g, 1 - h.betas[0])  # (2)
        x.exp_avg_sq = x.exp_avg_sq * h.betas[1] + (1 - h.betas[1]) * g * g  # (2)
        d = sqrt(x.exp_avg_sq / h.bc2) + h.eps
        x.param = x.param + h.c_grad * (g / d)  # (3), first term
        x.param = x.param + h.c_avg * (x.exp_avg / d)  # (3), second term
