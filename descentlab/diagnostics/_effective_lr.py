"""Per-element effective learning rates of the optimizers, read from their state after a step.

The effective learning rate of an adaptive method is the multiplier on its (bias-corrected)
first moment: ``lr / (sqrt(v_hat) + eps)`` for Adam and friends; for AdaBound the clipped rate of
its equation (4) (multiplying the raw ``m``, as its update does); for SWATS's SGD phase its
projected rate; for SGD-like methods ``lr`` itself. A rule returns ``(rates or None, extras)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ..optim import SGD, SWATS, AdaBound, Adagrad, Adam, NAdam, RAdam, RMSprop

__all__ = ["RULES", "effective_lr", "inner"]

Rule = Callable[[dict[str, Any], dict[str, Any], torch.Tensor], tuple[torch.Tensor | None, dict]]


def _rate(root: torch.Tensor, numerator: float, eps: float) -> torch.Tensor:
    """``numerator / (root + eps)``, in place on ``root`` (a fresh tensor): one allocation."""
    return root.add_(eps).reciprocal_().mul_(numerator)


def _t(state: dict[str, Any]) -> int:
    return int(state["step"])


def _adam(group, state, p):
    v = state["max_exp_avg_sq"] if group.get("amsgrad") else state["exp_avg_sq"]
    b2 = group["betas"][1]
    return _rate(v.div(1 - b2 ** _t(state)).sqrt_(), group["lr"], group["eps"]), {}


def _radam(group, state, p):
    b2, t = group["betas"][1], _t(state)
    r = RAdam.rectification(b2, t)
    if r is None:  # below the threshold RAdam takes SGD-with-momentum steps of rate lr
        return torch.full_like(p, group["lr"]), {}
    return _rate(
        state["exp_avg_sq"].sqrt(), group["lr"] * r * math.sqrt(1 - b2**t), group["eps"]
    ), {}


def _rmsprop(group, state, p):
    v = state["square_avg"]
    v = v.addcmul(state["grad_avg"], state["grad_avg"], value=-1) if group.get("centered") else v
    return _rate(v.sqrt(), group["lr"], group["eps"]), {}


def _adagrad(group, state, p):
    lr = group["lr"] / (1 + (_t(state) - 1) * group["lr_decay"])
    return _rate(state["sum"].sqrt(), lr, group["eps"]), {}


def _adabound(group, state, p):
    v = state["max_exp_avg_sq"] if group["amsbound"] else state["exp_avg_sq"]
    step_size, lower, upper = AdaBound.bounds(group, _t(state))
    rate = _rate(v.sqrt(), step_size, group["eps"]).clamp_(lower, upper)
    return rate, {"lower": lower, "upper": upper}


def _swats(group, state, p):
    if int(state["switch_step"]):  # 0 until the switch
        rate = float(state["sgd_lr"]) * group["lr"] / float(state["switch_lr"])
        return torch.full_like(p, rate), {"phase": "sgd"}
    b2, t = group["betas"][1], _t(state)
    rate = _rate(state["exp_avg_sq"].sqrt(), group["lr"] * math.sqrt(1 - b2**t), group["eps"])
    return rate, {"phase": "adam"}


def _sgd(group, state, p):
    return torch.full_like(p, group["lr"]), {}


# Checked in order with isinstance (subclasses such as AdamW and SGDW follow their parent).
RULES: tuple[tuple[type[torch.optim.Optimizer], Rule], ...] = (
    (AdaBound, _adabound),
    (SWATS, _swats),
    (RAdam, _radam),
    (torch.optim.RAdam, _radam),
    (Adam, _adam),
    (NAdam, _adam),
    (torch.optim.Adam, _adam),
    (torch.optim.AdamW, _adam),
    (torch.optim.NAdam, _adam),
    (RMSprop, _rmsprop),
    (torch.optim.RMSprop, _rmsprop),
    (Adagrad, _adagrad),
    (torch.optim.Adagrad, _adagrad),
    (SGD, _sgd),
    (torch.optim.SGD, _sgd),
)


def inner(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """The optimizer that holds the algorithm's state (wrappers such as Lookahead unwrapped)."""
    while hasattr(optimizer, "base_optimizer"):
        optimizer = optimizer.base_optimizer
    return optimizer


def effective_lr(
    optimizer: torch.optim.Optimizer, group: dict[str, Any], p: torch.Tensor
) -> tuple[torch.Tensor | None, dict[str, Any]]:
    """The per-element effective learning rate of ``p`` after a step, or ``None`` if unknown."""
    base = inner(optimizer)
    state = base.state.get(p, {})
    for cls, rule in RULES:
        if isinstance(base, cls):
            if rule is not _sgd and "step" not in state:  # no step taken on p yet
                return None, {}
            return rule(group, state, p)
    return None, {}
