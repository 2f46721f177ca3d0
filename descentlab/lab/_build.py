"""Turn the names in a trial into objects: problems, optimizers and schedules.

An optimizer name is a registry name (``"adam"``, ``"lookahead(sgdm)"``, see
:func:`descentlab.names`) or an importable class, written ``"torch.optim.Adam"`` or
``"pytorch_optimizer:Lion"``. Schedules come from :mod:`descentlab.schedules`, imported lazily.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

import torch

from ..checks import import_object
from ..optim import registry

__all__ = ["build_optimizer", "build_schedule", "default_lr", "load_problem"]


def _is_importable_name(name: str) -> bool:
    return ":" in name or ("." in name and "(" not in name)


def _optimizer_class(name: str) -> type[torch.optim.Optimizer]:
    cls = import_object(name)
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        raise ValueError(f"{name!r} is not a torch.optim.Optimizer subclass")
    return cls


def default_lr(name: str) -> float:
    """The untuned learning rate of an optimizer name: the registry's, or the class default."""
    if not _is_importable_name(name):
        return registry.resolve(name)[1].lr
    default = inspect.signature(_optimizer_class(name).__init__).parameters.get("lr")
    if default is None or not isinstance(default.default, (int, float)):
        raise ValueError(f"{name!r} has no default learning rate; give hparams.lr")
    return float(default.default)


def build_optimizer(
    name: str, params: Iterable[Any], hparams: dict[str, Any]
) -> torch.optim.Optimizer:
    """Build ``name`` (registry name or importable class) on ``params`` with ``hparams``."""
    hp = {k: tuple(v) if isinstance(v, list) else v for k, v in hparams.items()}
    if _is_importable_name(name):
        return _optimizer_class(name)(params, **hp)
    return registry.create(name, params, **hp)


def build_schedule(
    name: str, optimizer: torch.optim.Optimizer, *, total_steps: int, args: dict[str, Any]
) -> Any:
    """``descentlab.schedules.create(name, optimizer, total_steps=..., **args)``, imported lazily."""
    try:
        create = import_object("descentlab.schedules:create")
    except ValueError as e:
        raise ValueError(
            f"schedule {name!r} needs descentlab.schedules.create, which this install lacks ({e})"
        ) from e
    return create(name, optimizer, total_steps=total_steps, **args)


def load_problem(name: str) -> Any:
    """``descentlab.problems.get(name)`` (a registry name or ``"module:function"``)."""
    from .. import problems

    return problems.get(name)
