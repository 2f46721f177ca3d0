"""What a rule's scalars and flags are computed from: a group's values as attributes, the
derived flags of weight decay, and the small helpers of :mod:`.rule` (per-tensor vectors,
caches, the initial scalar state, the hyperparameters' checks)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .graph import RuleError

__all__ = ["DECAY_FLAGS", "Values", "reachable"]


class Values:
    """Attribute access to a group's (or the defaults') hyperparameters, for ``scalars(h, t)``."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._values[name]
        except KeyError:
            known = ", ".join(k for k in self._values if k != "params")
            raise AttributeError(f"no hyperparameter {name!r}; there are {known}") from None


# The derived flags of a ``weight_decay`` that is L2 (``h.l2``: added to the gradient) or, with
# ``decoupled_weight_decay=True``, decoupled (``h.decay``: the weights scaled by 1 - lr wd)
DECAY_FLAGS: dict[str, Callable[[Any], bool]] = {
    "l2": lambda h: h.weight_decay != 0 and not h.decoupled_weight_decay,
    "decay": lambda h: h.weight_decay != 0 and h.decoupled_weight_decay,
}


def reachable(setting: dict[str, bool], derived: dict[str, Callable[[Any], bool]]) -> bool:
    """Whether a group can have this setting of the flags: not where :data:`DECAY_FLAGS`
    contradict ``decoupled_weight_decay`` or each other (no kernel loop is made for it)."""
    coupled = not setting.get("decoupled_weight_decay", False)
    if derived.get("l2") is DECAY_FLAGS["l2"] and setting["l2"] and not coupled:
        return False
    return not (derived.get("decay") is DECAY_FLAGS["decay"] and setting["decay"] and coupled)


def initial(
    scalar_state: dict[str, float],
    n: int,
    device: Any = "cpu",
    dtype: torch.dtype = torch.float32,
) -> list[Values]:
    """The scalar state's initial values as 1-D vectors of ``n`` (none: [])."""
    if not scalar_state:
        return []
    return [
        Values(
            {
                k: torch.full((n,), float(v), dtype=dtype, device=device)
                for k, v in scalar_state.items()
            }
        )
    ]


def kept(cache: dict[tuple[Any, ...], Any], key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
    """``make()``, kept in ``cache`` under ``key`` (at most 64 entries: a schedule's values
    clear it); made afresh where the key holds a tensor (it may change in place) or a value
    that cannot be hashed."""
    if any(map(torch.is_tensor, key)):
        return make()
    try:
        found = cache.get(key)
    except TypeError:
        return make()
    if found is None:
        if len(cache) >= 64:
            cache.clear()
        found = cache[key] = make()
    return found


def vector(value: Any, t: torch.Tensor) -> torch.Tensor:
    if value is t:  # the step counts themselves (SGD's)
        return t
    if isinstance(value, torch.Tensor):
        value = value.to(device=t.device, dtype=t.dtype)
        return value if value.shape == t.shape else torch.zeros_like(t) + value
    return torch.full_like(t, float(value))


def check_hyperparameter(name: str, key: str, value: Any, taken: set[str]) -> None:
    if not key.isidentifier() or key in taken:
        raise RuleError(
            f"{name}: hyperparameter {key!r} must be an identifier other than "
            f"{', '.join(sorted(taken))}"
        )
    numbers = (int, float)
    ok = isinstance(value, (bool, *numbers)) or (
        isinstance(value, tuple)
        and value
        and all(isinstance(v, numbers) and not isinstance(v, bool) for v in value)
    )
    if not ok:
        raise RuleError(
            f"{name}: hyperparameter {key}={value!r} must default to a number, a bool (a flag) "
            "or a tuple of numbers"
        )
