"""NAdam: Adam with Nesterov momentum.

Reference: Dozat 2016, "Incorporating Nesterov Momentum into Adam", Algorithm 2, with the momentum
schedule mu_t = beta1 (1 - 0.5 * 0.96^(t psi)) (torch.optim's convention).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from . import _checks as c
from . import _kernels
from .base import Optimizer, hyperparameters, split_options, zeros

__all__ = ["NAdam"]


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

    def _init_state(self, group, p, state):
        state["mu_product"] = torch.tensor(1.0, dtype=torch.float32)
        zeros(state, p, "exp_avg", "exp_avg_sq")

    @staticmethod
    def coefficients(
        group: dict[str, Any], t: int, mu_product: torch.Tensor
    ) -> tuple[float, float]:
        """Advance ``mu_product`` to step ``t`` in place and return the two step sizes of (3)."""
        b1, psi, lr = group["betas"][0], group["momentum_decay"], group["lr"]
        mu = b1 * (1.0 - 0.5 * 0.96 ** (t * psi))  # (1)
        mu_next = b1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))
        mu_product *= mu
        prod = mu_product.item()
        return -lr * (1.0 - mu) / (1.0 - prod), -lr * mu_next / (1.0 - prod * mu_next)

    def _reference(self, group, p, g, state, t):
        lr, (b1, b2), wd = group["lr"], group["betas"], group["weight_decay"]
        if wd != 0:
            if group["decoupled_weight_decay"]:
                p.mul_(1 - lr * wd)
            else:
                g = g.add(p, alpha=wd)
        c_grad, c_avg = self.coefficients(group, t, state["mu_product"])
        m = state["exp_avg"].lerp_(g, 1 - b1)  # (2)
        v = state["exp_avg_sq"].mul_(b2).addcmul_(g, g, value=1 - b2)
        denom = v.div(1 - b2**t).sqrt().add_(group["eps"])
        p.addcdiv_(g, denom, value=c_grad)  # (3), first term
        p.addcdiv_(m, denom, value=c_avg)  # (3), second term

    def _fused_available(self) -> bool:
        return _kernels.available(self)

    def _fused(self, group, params, grads, states):
        k = _kernels.kernels()
        steps = k.advance_steps([s["step"] for s in states])
        b1, b2 = group["betas"]
        lr, wd, decoupled = (
            float(group["lr"]),
            group["weight_decay"],
            group["decoupled_weight_decay"],
        )
        # Tensors with the same step and mu_product advance alike: advance one of each kind
        # with NAdam.coefficients and copy its new mu_product to the others (one C++ call
        # instead of two torch ops per tensor).
        mus = [s["mu_product"] for s in states]
        kinds: dict[tuple[float, float], list[int]] = {}
        for i, key in enumerate(zip(steps, k.read_scalars(mus))):
            kinds.setdefault(key, []).append(i)
        coefficients: list[tuple[float, float]] = [(0.0, 0.0)] * len(states)
        advanced = [0.0] * len(states)
        for (t, _), idx in kinds.items():
            first = idx[0]
            pair = self.coefficients(group, int(t), mus[first])
            value = mus[first].item()
            for i in idx:
                coefficients[i], advanced[i] = pair, value
        k.write_scalars(mus, advanced)
        k.nadam(
            params,
            grads,
            [s["exp_avg"] for s in states],
            [s["exp_avg_sq"] for s in states],
            [c_grad for c_grad, _ in coefficients],
            [c_avg for _, c_avg in coefficients],
            [1 - b2**t for t in steps],
            b1,
            b2,
            group["eps"],
            0.0 if decoupled else wd,
            1 - lr * wd if decoupled else 1.0,
            group["maximize"],
        )
