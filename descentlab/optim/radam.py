"""RAdam: Adam with a rectified variance of the adaptive learning rate.

Reference: Liu et al. 2020, "On the Variance of the Adaptive Learning Rate and Beyond",
Algorithm 2, with torch.optim's threshold rho_t > 5 and SGD-with-momentum steps before it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from . import _checks as c
from .base import Optimizer, hyperparameters, split_options, weight_decay, zeros
from .kernels import _scalars

__all__ = ["RAdam", "rectified"]


class RAdam(Optimizer):
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

    _checks = {
        "lr": c.nonnegative,
        "betas": c.betas,
        "eps": c.nonnegative,
        "weight_decay": c.nonnegative,
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
        decoupled_weight_decay: bool = False,
        *,
        maximize: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(params, hyperparameters(locals()), **split_options(options))

    _compiled = True

    def _init_state(self, group, p, state):
        zeros(state, p, "exp_avg", "exp_avg_sq")

    @staticmethod
    def rectification(beta2: float, t: int) -> float | None:
        """:math:`r_t` of (2), or ``None`` below the threshold :math:`\\rho_t \\le 5`
        (:func:`rectified`, which the fast paths take for all tensors at once)."""
        r = rectified({"betas": (0.0, beta2)}, _scalars.at(t))[1].item()
        return None if r < 0 else r

    def _reference(self, group, p, g, state, t):
        lr, (b1, b2) = group["lr"], group["betas"]
        g = weight_decay(group, p, g)
        m = state["exp_avg"].lerp_(g, 1 - b1)
        v = state["exp_avg_sq"].mul_(b2).addcmul_(g, g, value=1 - b2)
        m_hat = m / (1 - b1**t)
        r = self.rectification(b2, t)
        if r is None:
            p.add_(m_hat * lr, alpha=-1.0)  # (3), SGD with momentum
        else:
            adaptive = math.sqrt(1 - b2**t) / v.sqrt().add_(group["eps"])
            p.add_(m_hat * lr * adaptive * r, alpha=-1.0)  # (3)

    def _fused(self, group, params, grads, states, kernels, **amp):
        bc1, rect, adapt = rectified(group, _scalars.advance(states))
        l2, decay = _scalars.decay(group)
        b1, b2 = group["betas"]
        kernels.radam(
            params=params,
            grads=grads,
            exp_avg=[s["exp_avg"] for s in states],
            exp_avg_sq=[s["exp_avg_sq"] for s in states],
            bc1=bc1,
            rect=rect,
            adapt=adapt,
            lr=group["lr"],
            beta1=b1,
            beta2=b2,
            eps=group["eps"],
            l2_weight_decay=l2,
            decay=decay,
            maximize=group["maximize"],
            **amp,
        )


def rectified(
    group: dict[str, Any], t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """RAdam's ``1 - beta1^t``, the rectification r_t of (2) (-1 where rho_t <= 5: an SGD step)
    and ``sqrt(1 - beta2^t)``."""
    b1, b2 = group["betas"]
    rho_inf = 2 / (1 - b2) - 1
    bc2 = 1 - b2**t
    rho = rho_inf - 2 * t * b2**t / bc2  # (1)
    # (rho - 4) (rho - 2) < 0 only where rho <= 5 is thrown away: clamp so no NaN is computed
    ratio = (rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho)
    rect = torch.where(rho > 5.0, ratio.clamp(min=0).sqrt(), -1.0)  # (2)
    return 1 - b1**t, rect, bc2.sqrt()
