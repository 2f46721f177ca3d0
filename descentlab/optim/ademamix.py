"""AdEMAMix: Adam with a mixture of a fast and a slow exponential moving average of gradients.

Reference: Pagliardini, Ablin & Grangier 2024, "The AdEMAMix Optimizer: Better, Faster, Older"
(arXiv 2409.03137), Algorithm 1, with the warm-ups of alpha and beta3 of its Section 3.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..checks import HyperparameterError
from . import _checks as c
from .elementwise import Elementwise, sqrt

__all__ = ["AdEMAMix"]


def _betas3(name: str, value: Any) -> Any:
    """Three decay rates, each in [0, 1)."""
    if not isinstance(value, (tuple, list)) or len(value) != 3:
        raise HyperparameterError(f"Invalid {name}: {value!r}; expected (beta1, beta2, beta3)")
    for i, beta in enumerate(value):
        c.fraction(f"{name}[{i}]", beta)
    return value


class AdEMAMix(Elementwise):
    r"""AdEMAMix, the paper's Algorithm 1 (and the authors' code's order of operations).

    .. math::
        m_1 = \beta_1 m_1 + (1-\beta_1) g_t,\quad
        m_2 = \beta_3(t)\, m_2 + (1-\beta_3(t))\, g_t,\quad
        \nu = \beta_2 \nu + (1-\beta_2) g_t^2                                         \tag{1}
        \theta_t = \theta_{t-1} - \eta \Big(
            \frac{m_1/(1-\beta_1^t) + \alpha(t)\, m_2}{\sqrt{\nu}/\sqrt{1-\beta_2^t} + \epsilon}
            + \lambda \theta_{t-1}\Big)                                                  \tag{2}
        \alpha(t) = \min(t\alpha/T, \alpha),\quad
        \beta_3(t) = \min\Big(\exp\frac{\ln\beta_1 \ln\beta_3}
            {(1-t/T)\ln\beta_3 + (t/T)\ln\beta_1}, \beta_3\Big)                           \tag{3}

    The slow average :math:`m_2` has no bias correction. ``t_alpha_beta3`` is :math:`T`, the
    warm-up of :math:`\alpha` and :math:`\beta_3` (3) (0: none, the paper's default; it then
    needs :math:`\beta_1 > 0`); the paper suggests :math:`T` equal to the run's length.
    ``weight_decay`` is decoupled as in AdamW (:math:`\eta\lambda\theta`, inside (2)).
    Defaults as the paper's: ``betas=(0.9, 0.999, 0.9999)``, ``alpha=5``.
    """

    hyperparameters = {
        "lr": 1e-3,
        "betas": (0.9, 0.999, 0.9999),
        "alpha": 5.0,
        "t_alpha_beta3": 0.0,
        "eps": 1e-8,
        "weight_decay": 0.0,
    }
    checks = {
        "lr": c.nonnegative,
        "betas": _betas3,
        "alpha": c.nonnegative,
        "t_alpha_beta3": c.nonnegative,
        "eps": c.nonnegative,
        "weight_decay": c.nonnegative,
    }
    state_tensors = ("exp_avg", "exp_avg_sq", "exp_avg_slow")

    def _check_combination(self, group: dict[str, Any]) -> None:
        if group["t_alpha_beta3"] > 0 and group["betas"][0] <= 0:
            raise HyperparameterError(
                f"Invalid betas={group['betas']!r} with t_alpha_beta3="
                f"{group['t_alpha_beta3']!r}: the warm-up of beta3 (3) needs beta1 in (0, 1)"
            )

    @staticmethod
    def scalars(h: Any, t: torch.Tensor) -> dict[str, Any]:
        """The bias corrections of (2) and the warmed-up alpha(t), beta3(t) of (3)."""
        b1, b2, b3 = h.betas
        alpha, beta3 = h.alpha + 0 * t, b3 + 0 * t
        if h.t_alpha_beta3 > 0:
            s = t / h.t_alpha_beta3
            alpha = torch.clamp(s * h.alpha, max=h.alpha)  # (3)
            if 0 < b1 < b3:
                lb1, lb3 = math.log(b1), math.log(b3)
                beta3 = torch.clamp(((lb1 * lb3) / ((1 - s) * lb3 + s * lb1)).exp(), max=b3)
        return {
            "bc1": 1 - b1**t,
            "sqrt_bc2": (1 - b2**t).sqrt(),
            "alpha_t": alpha,
            "beta3_t": beta3,
        }

    def update(x, h):
        g = x.grad
        x.exp_avg = x.exp_avg * h.betas[0] + (1 - h.betas[0]) * g  # (1)
        x.exp_avg_slow = x.exp_avg_slow * h.beta3_t + (1 - h.beta3_t) * g  # (1)
        x.exp_avg_sq = x.exp_avg_sq * h.betas[1] + (1 - h.betas[1]) * g * g  # (1)
        d = sqrt(x.exp_avg_sq) / h.sqrt_bc2 + h.eps
        u = (x.exp_avg / h.bc1 + h.alpha_t * x.exp_avg_slow) / d  # (2)
        x.param = x.param - h.lr * (u + h.weight_decay * x.param)  # (2)
