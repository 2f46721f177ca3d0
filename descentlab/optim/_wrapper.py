"""Shared machinery of the optimizer wrappers (Lookahead, GradientNoise)."""

from __future__ import annotations

from typing import Any

import torch

from ._validate import HyperparameterError

__all__ = ["Wrapper"]

_MISSING = object()


class Wrapper(torch.optim.Optimizer):
    """An optimizer that wraps another and shares its parameter groups.

    Sharing the very ``param_groups`` list means LR schedulers, ``zero_grad`` and
    ``add_param_group`` act on the base optimizer, and the wrapper is a real
    ``torch.optim.Optimizer`` (torch's schedulers accept it). The wrapper's own per-parameter
    tensors live in ``self.state`` and are saved under ``state_dict()[key]``, indexed like torch's
    state dict (by position over the groups), so they resume into a freshly built model.
    """

    key: str = "wrapper"

    def __init__(self, base_optimizer: torch.optim.Optimizer) -> None:
        if not isinstance(base_optimizer, torch.optim.Optimizer):
            raise HyperparameterError(
                f"Invalid base_optimizer: {type(base_optimizer).__name__}; "
                "expected a torch.optim.Optimizer instance"
            )
        super().__init__(base_optimizer.param_groups, {})
        self.base_optimizer = base_optimizer
        self.param_groups = base_optimizer.param_groups
        self.defaults = base_optimizer.defaults

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_optimizer!r}, {self._extra_repr()})"

    def _extra_repr(self) -> str:
        return ""

    @property
    def skipped_steps(self) -> int:
        """The inner optimizer's count of steps skipped for non-finite gradients (0 if none).

        A wrapper whose inner step was skipped skips its own work too (no Lookahead step, no
        noise drawn), so ``nonfinite="skip"`` acts the same through any stack of wrappers.
        """
        return getattr(self.base_optimizer, "skipped_steps", 0)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group to the base optimizer (the list is shared) and set up its wrapper state."""
        if not hasattr(self, "base_optimizer"):  # torch's __init__ registering the shared groups
            super().add_param_group(param_group)
            return
        self.base_optimizer.add_param_group(param_group)
        for p in self.param_groups[-1]["params"]:
            self._init_param(p)

    def _init_param(self, p: torch.Tensor) -> None:
        """Create the wrapper's state for a new parameter (override)."""

    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def _extra_state(self) -> dict[str, Any]:
        """The wrapper's own state besides its per-parameter tensors (override)."""
        return {}

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        """Restore what ``_extra_state`` saved (override)."""

    def _check_entry(self, mine: Any) -> None:
        """The wrapper's saved entry has the structure and kinds of values that it saves."""
        where = f"{type(self).__name__}.load_state_dict: the {self.key!r} entry"
        if not isinstance(mine, dict) or not isinstance(mine.get("state"), dict):
            raise ValueError(f"{where} is not a dict with a 'state' dict: {mine!r:.80}")
        for i, entries in mine["state"].items():
            if not isinstance(entries, dict) or not all(map(torch.is_tensor, entries.values())):
                raise ValueError(f"{where}: parameter {i!r} must map names to tensors")
        for key, want in self._extra_state().items():
            got = mine.get(key, _MISSING)
            if torch.is_tensor(want):
                ok = torch.is_tensor(got) and (got.dtype, got.shape) == (want.dtype, want.shape)
            else:
                ok = isinstance(got, (int, float)) and not isinstance(got, bool)
            if not ok:
                raise ValueError(
                    f"{where}: {key!r} is {'missing' if got is _MISSING else repr(got)[:80]}, "
                    f"expected {'a tensor like ' if torch.is_tensor(want) else ''}{want!r:.40}"
                )

    def state_dict(self) -> dict[str, Any]:
        """The base optimizer's state dict plus the wrapper's state under ``self.key``."""
        sd = self.base_optimizer.state_dict()
        per_param = {i: dict(self.state[p]) for i, p in enumerate(self._params()) if self.state[p]}
        sd[self.key] = {"state": per_param, **self._extra_state()}
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict saved by the same wrapper around the same kind of optimizer."""
        state_dict = dict(state_dict)
        if self.key not in state_dict:
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: the state dict has no {self.key!r} entry; "
                "it was not saved by this wrapper"
            )
        mine = state_dict.pop(self.key)
        params = self._params()
        self._check_entry(mine)
        saved = mine["state"]
        if any(not isinstance(i, int) or not 0 <= i < len(params) for i in saved):
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: the saved wrapper state names parameters "
                f"{sorted(saved)} but this optimizer has {len(params)}"
            )
        for i, entries in saved.items():
            for name, value in entries.items():
                if torch.is_tensor(value) and value.shape != params[i].shape:
                    raise ValueError(
                        f"{type(self).__name__}.load_state_dict: saved {name!r} of parameter {i} "
                        f"has shape {tuple(value.shape)}, the parameter {tuple(params[i].shape)}"
                    )
        self.base_optimizer.load_state_dict(state_dict)
        self.param_groups = self.base_optimizer.param_groups
        for i, entries in saved.items():
            p = params[i]
            self.state[p] = {
                name: value.to(device=p.device, dtype=p.dtype, copy=True)
                if torch.is_tensor(value)
                else value
                for name, value in entries.items()
            }
        self._load_extra_state({k: val for k, val in mine.items() if k != "state"})
