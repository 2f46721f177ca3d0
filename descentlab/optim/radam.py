"""RAdam: Adam with a rectified variance of the adaptive learning rate.

Reference: Liu et al. 2020, "On the Variance of the Adaptive Learning Rate and Beyond",
Algorithm 2, with torch.optim's threshold rho_t > 5 and SGD-with-momentum steps before it.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch

from . import _checks as c
from .elementwise import DECAY_FLAGS, Elementwise, lerp, sqrt, where
from .kernels import _scalars

__all__ = ["RAdam"]


class RAdam(Elementwise):
    r"""RAdam, torch.optim's convention (the authors' code with ``degenerated_to_sgd=True``).

    .. math::
        m_t, v_t \text{ as in Adam};\quad \rho_\infty = \tfrac{2}{1-\beta_2} - 1,\quad
        \rho_t = \rho_\infty - \tfrac{2 t \beta_2^t}{1-\beta_2^t}                   \tag{1}
        r_t = \sqrt{\tfrac{(\rho_t-4)(\rho_t-2)\rho_\infty}{(\rho_\infty-4)(\rho_\infty-2)\rho_t}} \tag{2}
        \theta_t = \theta_{t-1} - \eta\, \hat m_t\, r_t \tfrac{\sqrt{1-\beta_2^t}}{\sqrt{v_t}+\epsilon}
        \ \text{if } \rho_t > 5, \text{ else } \theta_{t-1} - \eta\, \hat m_t          \tag{3}

    With :math:`\beta_2 = 0.999` the first rectified step is :math:`t = 6`. The paper's threshold is
    :math:`\rho_t > 4`; the authors' current code skips the update below it by default.
    Epsilon is added to :math:`\sqrt{v_t}` (not to the bias-corrected one).
    ``weight_decay`` is L2 unless ``decoupled_weight_decay=True``.
    """

    hyperparameters = {
        "lr": 1e-3,
        "betas": (0.9, 0.999),
        "eps": 1e-8,
        "weight_decay": 0.0,
        "decoupled_weight_decay": False,
    }
    checks = c.ADAM_LIKE
    state_tensors = ("exp_avg", "exp_avg_sq")
    derived = DECAY_FLAGS

    @staticmethod
    def scalars(h: Any, t: torch.Tensor) -> dict[str, Any]:
        """``1 - beta1^t``, the rectification r_t of (2) (-1 where rho_t <= 5: an SGD step)
        and ``sqrt(1 - beta2^t)``, per tensor."""
        b1, b2 = h.betas
        rho_inf = 2 / (1 - b2) - 1
        bc2 = 1 - b2**t
        rho = rho_inf - 2 * t * b2**t / bc2  # (1)
        # (rho - 4) (rho - 2) < 0 only where rho <= 5 is thrown away: clamped, no NaN computed
        ratio = (rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho)
        rect = torch.where(rho > 5.0, ratio.clamp(min=0).sqrt(), -1.0)  # (2)
        return {"bc1": 1 - b1**t, "rect": rect, "adapt": bc2.sqrt()}

    def update(x, h):
        if h.decay:
            x.param = x.param * (1 - h.lr * h.weight_decay)  # decoupled weight decay
        g = x.grad + h.weight_decay * x.param if h.l2 else x.grad  # L2
        x.exp_avg = lerp(x.exp_avg, g, 1 - h.betas[0])
        x.exp_avg_sq = x.exp_avg_sq * h.betas[1] + (1 - h.betas[1]) * g * g
        m_hat = x.exp_avg / h.bc1
        adaptive = h.adapt / (sqrt(x.exp_avg_sq) + h.eps)
        step = where(h.rect > 0, m_hat * h.lr * adaptive * h.rect, m_hat * h.lr)  # (3)
        x.param = x.param - step

    @staticmethod
    def rectification(beta2: float, t: int) -> float | None:
        """:math:`r_t` of (2), or ``None`` below the threshold :math:`\\rho_t \\le 5`."""
        h = SimpleNamespace(betas=(0.0, beta2))
        r = float(RAdam.scalars(h, _scalars.at(t))["rect"][0])
        return None if r < 0 else r
