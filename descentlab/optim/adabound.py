"""AdaBound and AMSBound: Adam whose per-element step is clipped into bounds that close in on SGD.

Reference: Luo, Xiong, Liu & Sun 2019, "Adaptive Gradient Methods with Dynamic Bound of Learning
Rate" (ICLR), Algorithm 2, as implemented in the authors' package ``adabound``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from . import _checks as c
from .base import Optimizer, hyperparameters, split_options, weight_decay, zeros
from .kernels import _scalars

__all__ = ["AdaBound", "step_bounds"]


class AdaBound(Optimizer):
    r"""AdaBound (``amsbound=True``: AMSBound), the authors' package's convention.

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2 \ (\text{AMSBound: } \max(\hat v_{t-1}, v_t)) \tag{1}
        \alpha^*_t = \alpha^* \cdot \eta_t / \eta_0                                            \tag{2}
        l_t = \alpha^*_t \big(1 - \tfrac{1}{\gamma t + 1}\big),\quad
        u_t = \alpha^*_t \big(1 + \tfrac{1}{\gamma t}\big)                                    \tag{3}
        \theta_t = \theta_{t-1} - \operatorname{clip}\Big(
            \frac{\eta_t \sqrt{1-\beta_2^t}/(1-\beta_1^t)}{\sqrt{v_t} + \epsilon}, l_t, u_t\Big) m_t \tag{4}

    :math:`\alpha^*` is ``final_lr``, :math:`\eta_0` the group's learning rate when it was added
    (kept in the group as ``base_lr``, so a learning-rate schedule scales the bounds too, and groups
    added later with ``add_param_group`` get theirs; the authors' package skips such groups).
    The paper's extra :math:`1/\sqrt t` factor is not in the authors' code, nor here.
    ``weight_decay`` is L2 (added to :math:`g_t`).
    """

    _checks = {
        "lr": c.nonnegative,  # a schedule may take it to 0; the initial lr (base_lr) must be > 0
        "betas": c.betas,
        "final_lr": c.positive,
        "gamma": c.positive,
        "eps": c.nonnegative,
        "weight_decay": c.nonnegative,
        "amsbound": c.flag,
        "maximize": c.flag,
    }

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float | torch.Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        final_lr: float = 0.1,
        gamma: float = 1e-3,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsbound: bool = False,
        *,
        maximize: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(params, hyperparameters(locals()), **split_options(options))

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group; its current ``lr`` becomes its ``base_lr`` (eta_0 of eq. 2)."""
        if "base_lr" not in param_group:
            lr = param_group.get("lr", self.defaults["lr"])
            param_group["base_lr"] = float(c.positive("lr", lr))  # the bounds divide by it
        super().add_param_group(param_group)

    def _check_combination(self, group: dict[str, Any]) -> None:
        c.positive("base_lr", group["base_lr"])

    _compiled = True

    def _init_state(self, group, p, state):
        zeros(state, p, "exp_avg", "exp_avg_sq")
        if group["amsbound"]:
            zeros(state, p, "max_exp_avg_sq")

    @staticmethod
    def bounds(group: dict[str, Any], t: int) -> tuple[float, float, float]:
        """The step size of (4) before clipping, and the bounds (3) at step ``t``
        (:func:`step_bounds`, which the fast paths take for all tensors at once)."""
        step_size, lower, upper = step_bounds(group, _scalars.at(t))
        return step_size.item(), lower.item(), upper.item()

    def _reference(self, group, p, g, state, t):
        b1, b2 = group["betas"]
        g = weight_decay(group, p, g)
        m = state["exp_avg"].mul_(b1).add_(g, alpha=1 - b1)  # (1)
        v = state["exp_avg_sq"].mul_(b2).addcmul_(g, g, value=1 - b2)
        if group["amsbound"]:
            v = torch.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
        step_size, lower, upper = self.bounds(group, t)
        eta = torch.full_like(v, step_size).div_(v.sqrt().add_(group["eps"]))
        p.sub_(eta.clamp_(lower, upper).mul_(m))  # (4)

    def _fused(self, group, params, grads, states, kernels, **amp):
        step_size, lower, upper = step_bounds(group, _scalars.advance(states))
        b1, b2 = group["betas"]
        kernels.adabound(
            params=params,
            grads=grads,
            exp_avg=[s["exp_avg"] for s in states],
            exp_avg_sq=[s["exp_avg_sq"] for s in states],
            max_exp_avg_sq=[s["max_exp_avg_sq"] for s in states] if group["amsbound"] else [],
            step_size=step_size,
            lower=lower,
            upper=upper,
            beta1=b1,
            beta2=b2,
            eps=group["eps"],
            l2_weight_decay=group["weight_decay"],
            maximize=group["maximize"],
            **amp,
        )


def step_bounds(
    group: dict[str, Any], t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """AdaBound's step size of (4) before clipping and the bounds (3)."""
    lr, (b1, b2) = group["lr"], group["betas"]
    final_lr = group["final_lr"] * lr / group["base_lr"]  # (2)
    lower = final_lr * (1 - 1 / (group["gamma"] * t + 1))  # (3)
    upper = final_lr * (1 + 1 / (group["gamma"] * t))
    return lr * (1 - b2**t).sqrt() / (1 - b1**t), lower, upper
