"""AdaBound and AMSBound: Adam whose per-element step is clipped into bounds that close in on SGD.

Reference: Luo, Xiong, Liu & Sun 2019, "Adaptive Gradient Methods with Dynamic Bound of Learning
Rate" (ICLR), Algorithm 2, as implemented in the authors' package ``adabound``.
"""

from __future__ import annotations

from typing import Any

import torch

from . import _checks as c
from .elementwise import Elementwise, clamp, maximum, sqrt
from .kernels import _scalars

__all__ = ["AdaBound"]


class AdaBound(Elementwise):
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

    hyperparameters = {
        "lr": 1e-3,
        "betas": (0.9, 0.999),
        "final_lr": 0.1,
        "gamma": 1e-3,
        "eps": 1e-8,
        "weight_decay": 0.0,
        "amsbound": False,
    }
    checks = {
        "lr": c.nonnegative,  # a schedule may take it to 0; the initial lr (base_lr) must be > 0
        "betas": c.betas,
        "final_lr": c.positive,
        "gamma": c.positive,
        "eps": c.nonnegative,
        "weight_decay": c.nonnegative,
        "base_lr": c.positive,  # not a constructor argument: set when a group is added
    }
    state_tensors = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    state_when = {"max_exp_avg_sq": "amsbound"}
    derived = {"l2": lambda h: h.weight_decay != 0}

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group; its current ``lr`` becomes its ``base_lr`` (eta_0 of eq. 2)."""
        if "base_lr" not in param_group:
            lr = param_group.get("lr", self.defaults["lr"])
            param_group["base_lr"] = float(c.positive("lr", lr))  # the bounds divide by it
        super().add_param_group(param_group)

    def _check_combination(self, group: dict[str, Any]) -> None:
        c.positive("base_lr", group["base_lr"])

    @staticmethod
    def scalars(h: Any, t: torch.Tensor) -> dict[str, Any]:
        """The step size of (4) before clipping, and the bounds (3), per tensor."""
        lr, (b1, b2) = h.lr, h.betas
        final_lr = h.final_lr * lr / getattr(h, "base_lr", lr)  # (2)
        lower = final_lr * (1 - 1 / (h.gamma * t + 1))  # (3)
        upper = final_lr * (1 + 1 / (h.gamma * t))
        return {"step_size": lr * (1 - b2**t).sqrt() / (1 - b1**t), "lower": lower, "upper": upper}

    def update(x, h):
        g = x.grad + h.weight_decay * x.param if h.l2 else x.grad  # L2
        x.exp_avg = x.exp_avg * h.betas[0] + (1 - h.betas[0]) * g  # (1)
        v = x.exp_avg_sq * h.betas[1] + (1 - h.betas[1]) * g * g
        x.exp_avg_sq = v
        if h.amsbound:
            v = maximum(x.max_exp_avg_sq, v)
            x.max_exp_avg_sq = v
        eta = clamp(h.step_size / (sqrt(v) + h.eps), h.lower, h.upper)
        x.param = x.param - eta * x.exp_avg  # (4)

    @classmethod
    def bounds(cls, group: dict[str, Any], t: int) -> tuple[float, float, float]:
        """The step size of (4) before clipping, and the bounds (3) at step ``t``."""
        out = cls.scalars(_Group(group), _scalars.at(t))
        return tuple(float(out[k].reshape(-1)[0]) for k in ("step_size", "lower", "upper"))


class _Group:
    """A group's values by attribute, as ``scalars`` reads them."""

    def __init__(self, group: dict[str, Any]) -> None:
        self.__dict__.update(group)
