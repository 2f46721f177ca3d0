"""Parameter groups with and without weight decay."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["param_groups"]


def _default_no_decay(name: str, p: torch.nn.Parameter) -> bool:
    return p.ndim <= 1 or name.endswith(".bias")


def param_groups(
    model: torch.nn.Module,
    weight_decay: float,
    *,
    no_decay: Callable[[str, torch.nn.Parameter], bool] | None = None,
) -> list[dict[str, Any]]:
    """Split ``model``'s trainable parameters into a decayed and an undecayed group.

    By default biases and every other parameter with at most one dimension (BatchNorm/LayerNorm
    weights, which name-based filters miss) get no weight decay, as in timm's
    ``param_groups_weight_decay``. ``no_decay(name, param)`` overrides the rule. Empty groups are
    left out; frozen parameters (``requires_grad=False``) too.
    """
    rule = no_decay or _default_no_decay
    decay, plain = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (plain if rule(name, p) else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": plain, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]
