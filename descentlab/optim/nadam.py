"""NAdam: Adam with Nesterov momentum.

Reference: Dozat 2016, "Incorporating Nesterov Momentum into Adam", Algorithm 2, with the momentum
schedule mu_t = beta1 (1 - 0.5 * 0.96^(t psi)) (torch.optim's convention).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from . import _checks as c
from .base import Optimizer, hyperparameters, split_options, weight_decay, zeros
from .kernels import _scalars

__all__ = ["NAdam", "step_sizes"]


class NAdam(Optimizer):
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
    ``mu_product``, as torch keeps it, so that state dicts are interchangeable.
    ``weight_decay`` is L2 unless ``decoupled_weight_decay=True`` (then :math:`\theta(1-\eta\lambda)`).
    """

    _float32_state = ("mu_product",)
    _checks = {
        "lr": c.nonnegative,
        "betas": c.betas,
        "eps": c.nonnegative,
        "weight_decay": c.nonnegative,
        "momentum_decay": c.nonnegative,
        "decoupled_weight_decay": c.flag,
        "maximize": c.flag,
    }

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float | torch.Tensor = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum_decay: float = 4e-3,
        decoupled_weight_decay: bool = False,
        *,
        maximize: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(params, hyperparameters(locals()), **split_options(options))

    _compiled = True

    def _init_state(self, group, p, state):
        state["mu_product"] = torch.tensor(1.0, dtype=torch.float32, device=p.device)
        zeros(state, p, "exp_avg", "exp_avg_sq")

    @staticmethod
    def coefficients(
        group: dict[str, Any], t: int, mu_product: torch.Tensor
    ) -> tuple[float, float]:
        """Advance ``mu_product`` to step ``t`` in place and return the two step sizes of (3)
        (:func:`step_sizes`, which the fast paths take for all tensors at once)."""
        c_grad, c_avg = step_sizes(group, _scalars.at(t, mu_product.device), [mu_product])
        return c_grad.item(), c_avg.item()

    def _reference(self, group, p, g, state, t):
        b1, b2 = group["betas"]
        g = weight_decay(group, p, g)
        c_grad, c_avg = self.coefficients(group, t, state["mu_product"])
        m = state["exp_avg"].lerp_(g, 1 - b1)  # (2)
        v = state["exp_avg_sq"].mul_(b2).addcmul_(g, g, value=1 - b2)
        denom = v.div(1 - b2**t).sqrt().add_(group["eps"])
        p.addcdiv_(g, denom, value=c_grad)  # (3), first term
        p.addcdiv_(m, denom, value=c_avg)  # (3), second term

    def _fused(self, group, params, grads, states, kernels, **amp):
        t = _scalars.advance(states)
        c_grad, c_avg = step_sizes(
            group, t, [s["mu_product"] for s in states], amp.get("found_inf")
        )
        l2, decay = _scalars.decay(group)
        b1, b2 = group["betas"]
        kernels.nadam(
            params=params,
            grads=grads,
            exp_avg=[s["exp_avg"] for s in states],
            exp_avg_sq=[s["exp_avg_sq"] for s in states],
            c_grad=c_grad,
            c_avg=c_avg,
            bc2=1 - b2**t,
            beta1=b1,
            beta2=b2,
            eps=group["eps"],
            l2_weight_decay=l2,
            decay=decay,
            maximize=group["maximize"],
            **amp,
        )


def step_sizes(
    group: dict[str, Any],
    t: torch.Tensor,
    mu_product: list[torch.Tensor],
    found_inf: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """NAdam's momentum schedule (1): advance each ``mu_product`` (float32, as torch keeps it) in
    place (not where GradScaler's ``found_inf`` is set: that step changes nothing), and return
    the two step sizes of (3) per tensor."""
    b1, psi, lr = group["betas"][0], group["momentum_decay"], group["lr"]
    mu = b1 * (1.0 - 0.5 * 0.96 ** (t * psi))  # (1)
    mu_next = b1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))
    if found_inf is not None:
        mu = torch.where(found_inf.to(mu.device) != 0, 1.0, mu)
    module = _scalars.cpu_kernels(mu_product[0]) if mu_product[0].dtype == torch.float32 else None
    if module is not None:
        prod = module.scale_scalars(mu_product, mu)
    else:
        torch._foreach_mul_(mu_product, mu.to(mu_product[0].dtype).unbind())
        prod = torch.stack(mu_product).to(t.dtype)
    return -lr * (1.0 - mu) / (1.0 - prod), -lr * mu_next / (1.0 - prod * mu_next)
