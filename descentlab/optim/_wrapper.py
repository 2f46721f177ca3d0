"""Shared machinery of the optimizer wrappers (Lookahead, GradientNoise)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..checks import HyperparameterError
from ._persist import copy_state, describe, hooked_load, hooked_state_dict, restore_state
from .schedule_free import has_modes

__all__ = ["Wrapper", "capturable", "inner_step", "set_count"]

_MISSING = object()


def inner_step(optimizer: torch.optim.Optimizer, closure: Callable[[], Any] | None = None) -> Any:
    """``optimizer.step(closure)`` inside a wrapper's step: the hooks registered on
    ``optimizer`` itself run, torch's global step hooks do not (they ran for the wrapper).

    torch wraps the ``step`` of every optimizer class in ``profile_hook_step``, which runs the
    global hooks and then the instance's; the function it wrapped is its ``__wrapped__``.
    """
    step = type(optimizer).step
    raw = getattr(step, "__wrapped__", None) if getattr(step, "hooked", False) else None
    if raw is None:
        return optimizer.step(closure)
    args: tuple = (optimizer, closure)
    kwargs: dict[str, Any] = {}
    for pre_hook in optimizer._optimizer_step_pre_hooks.values():
        result = pre_hook(optimizer, args, kwargs)
        if result is not None:
            args, kwargs = result
    out = raw(*args, **kwargs)
    for post_hook in optimizer._optimizer_step_post_hooks.values():
        post_hook(optimizer, args, kwargs)
    return out


def capturable(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer`` (or the optimizer it wraps) keeps its step on the device for CUDA
    graphs: descentlab's ``capturable`` attribute, torch's ``capturable`` group option."""
    inner = getattr(optimizer, "base_optimizer", None)
    if inner is not None:
        return capturable(inner)
    return bool(getattr(optimizer, "capturable", False)) or any(
        g.get("capturable", False) for g in optimizer.param_groups
    )


def set_count(count: int | torch.Tensor, saved: int) -> int | torch.Tensor:
    """A loaded step count: written into the tensor where the count lives on the device."""
    return count.fill_(saved) if torch.is_tensor(count) else saved


class Wrapper(torch.optim.Optimizer):
    """An optimizer that wraps another and shares its parameter groups.

    Sharing the very ``param_groups`` list means LR schedulers, ``zero_grad`` and
    ``add_param_group`` act on the base optimizer, and the wrapper is a real
    ``torch.optim.Optimizer`` (torch's schedulers accept it). The wrapper's own per-parameter
    tensors live in ``self.state`` and are saved in each parameter's entry of the state dict
    (``state_dict()["state"][i]["lookahead_slow"]``), so they resume into a freshly built model.

    Step hooks: one ``wrapper.step()`` is one optimizer step. torch's global step hooks
    (``register_optimizer_step_pre_hook``) and the wrapper's own fire once per call; the inner
    optimizer's step runs without the global hooks but with the hooks registered on it.
    """

    key: str = "wrapper"
    _transient: tuple[str, ...] = ()  # attributes a copy does not keep (what a trace chose)

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

    def train(self) -> None:
        """The base optimizer's ``train()`` where it has modes (Schedule-Free), else nothing."""
        if has_modes(self.base_optimizer):
            self.base_optimizer.train()

    def eval(self) -> None:
        """The base optimizer's ``eval()`` where it has modes (Schedule-Free), else nothing."""
        if has_modes(self.base_optimizer):
            self.base_optimizer.eval()

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

    def _on_device(self, count: int | torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """A wrapper's step count as a 0-d tensor on the parameters' device (compiled or
        ``capturable`` steps decide on it there: no host sync); a tensor stays as it is."""
        if torch.is_tensor(count):
            return count
        params = self._params()
        return torch.tensor(count, dtype=dtype, device=params[0].device if params else "cpu")

    def _extra_state(self) -> dict[str, Any]:
        """The wrapper's own state besides its per-parameter tensors (override)."""
        return {}

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        """Restore what ``_extra_state`` saved (override)."""

    def _check_entry(self, mine: Any) -> None:
        """The wrapper's saved entry has the structure and kinds of values that it saves."""
        where = f"{type(self).__name__}.load_state_dict: the {self.key!r} entry"
        if not isinstance(mine, dict):
            raise ValueError(f"{where} is not a dict: {mine!r:.80}")
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

    # ----------------------------------------------------------------- copies and state dicts
    def __getstate__(self) -> dict[str, Any]:
        """What a copy keeps: everything (the base optimizer, counters, generator) but hooks.

        The base optimizer and the shared ``param_groups`` list travel in one copy, so the
        copy's groups are its base optimizer's, as here.
        """
        return copy_state(self, *self._transient)

    def __setstate__(self, state: dict[str, Any]) -> None:
        restore_state(self, state)

    def state_dict(self) -> dict[str, Any]:
        """The base optimizer's state dict with the wrapper's per-parameter tensors in each
        parameter's entry (``"lookahead_slow"``: they survive tools that keep only ``state``
        and ``param_groups``, such as ``torch.distributed.checkpoint``) and its other state
        under ``self.key``. torch's four state-dict hooks run as on any optimizer."""
        return hooked_state_dict(self, self._state_dict)

    def _state_dict(self) -> dict[str, Any]:
        sd = self.base_optimizer.state_dict()
        state = dict(sd["state"])
        params = self._params()
        for i, p in enumerate(params):
            if self.state.get(p):
                own = {f"{self.key}_{name}": value for name, value in self.state[p].items()}
                state[i] = {**state.get(i, {}), **own}
        # Entries not keyed by a parameter (a state-dict pre-hook's ``state["test"] = 1``) are
        # saved as they are, as torch's ``Optimizer.state_dict`` packs every key of ``state``;
        # their names go with the wrapper's entry, so that they load back into the wrapper.
        loose = _loose_keys(self.state, params)
        state.update((k, self.state[k]) for k in loose)
        sd["state"] = state
        sd[self.key] = {**self._extra_state(), **({_LOOSE: loose} if loose else {})}
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict saved by the same wrapper around the same kind of optimizer
        (also release 0.1.0's, whose per-parameter tensors sat in ``state_dict[key]["state"]``).

        Without the ``self.key`` entry (``torch.distributed.checkpoint`` drops it) the
        per-parameter tensors still load and the wrapper's counters stay as they are.
        """
        hooked_load(self, state_dict, self._load)

    def _load(self, state_dict: Any) -> None:
        name = type(self).__name__
        if not isinstance(state_dict, dict):
            raise ValueError(f"{name}.load_state_dict: not a state dict: {state_dict!r:.80}")
        state_dict = dict(state_dict)
        mine = state_dict.pop(self.key, _MISSING)
        params = self._params()
        if isinstance(mine, dict) and "state" in mine:  # release 0.1.0: by position
            mine = dict(mine)
            saved = mine.pop("state")
            if not isinstance(saved, dict):
                raise ValueError(f"{name}.load_state_dict: the {self.key!r} entry's state is bad")
            if any(not isinstance(i, int) or not 0 <= i < len(params) for i in saved):
                raise ValueError(
                    f"{name}.load_state_dict: the saved wrapper state names parameters "
                    f"{sorted(map(str, saved))} but this optimizer has {len(params)}"
                )
            own = {params[i]: entries for i, entries in saved.items()}
        else:
            own = self._split_own(state_dict, params)
        if mine is _MISSING and not own:
            raise ValueError(
                f"{name}.load_state_dict: the state dict has no {self.key!r} entry; "
                "it was not saved by this wrapper"
            )
        loose = {}
        if mine is not _MISSING:
            self._check_entry(mine)
            loose = self._take_loose(state_dict, mine)
        self._check_own(own, params)
        self.base_optimizer.load_state_dict(state_dict)
        self.param_groups = self.base_optimizer.param_groups
        for k in _loose_keys(self.state, params):
            del self.state[k]
        self.state.update(loose)
        for p, entries in own.items():
            self.state[p] = {
                key: value.to(device=p.device, dtype=p.dtype, copy=True)
                for key, value in entries.items()
            }
        if mine is not _MISSING:
            self._load_extra_state(mine)

    def _take_loose(self, sd: dict[str, Any], mine: dict[str, Any]) -> dict[Any, Any]:
        """Take the wrapper's entries not keyed by a parameter (named in its entry) out of the
        shallow copy ``sd``'s state; return them."""
        names = mine.get(_LOOSE, [])
        state = sd.get("state")
        if not isinstance(names, list) or not isinstance(state, dict):
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: the {self.key!r} entry's {_LOOSE!r} "
                f"is {names!r:.80}, expected a list of keys of the saved 'state'"
            )
        absent = [k for k in names if k not in state]
        if absent:
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: the saved 'state' lacks the wrapper's "
                f"entries {absent!r:.80}"
            )
        rest = dict(state)
        sd["state"] = rest
        return {k: rest.pop(k) for k in names}

    def _split_own(self, sd: dict[str, Any], params: list[torch.Tensor]) -> dict:
        """Take the wrapper's ``key_name`` entries out of each parameter's state (in place on
        the shallow copy ``sd``); return them by parameter."""
        state, groups = sd.get("state"), sd.get("param_groups")
        if not isinstance(state, dict) or not isinstance(groups, list):
            return {}  # the base optimizer names what is wrong
        ids = [i for g in groups if isinstance(g, dict) for i in g.get("params", ())]
        where = dict(zip(ids, params)) if len(ids) == len(params) else {}
        prefix, own, rest = f"{self.key}_", {}, {}
        for i, entry in state.items():
            mine = {}
            if isinstance(entry, dict):
                mine = {k[len(prefix) :]: v for k, v in entry.items() if str(k).startswith(prefix)}
            if not mine:
                rest[i] = entry
                continue
            if i not in where:
                raise ValueError(
                    f"{type(self).__name__}.load_state_dict: saved wrapper state of parameter "
                    f"{i!r}, which no parameter group names"
                )
            own[where[i]] = mine
            left = {k: v for k, v in entry.items() if not str(k).startswith(prefix)}
            if left:
                rest[i] = left
        sd["state"] = rest
        return own

    def _check_own(self, own: dict, params: list[torch.Tensor]) -> None:
        """Every parameter has the wrapper's tensors that it keeps, each shaped like it."""
        name = type(self).__name__
        for i, p in enumerate(params):
            want = sorted(self.state[p])
            got = own.get(p, {})
            if not isinstance(got, dict) or sorted(got) != want:
                raise ValueError(
                    f"{name}.load_state_dict: the saved wrapper state of parameter {i} has "
                    f"{sorted(got) if isinstance(got, dict) else describe(got)}, expected {want}"
                )
            for key, value in got.items():
                if not torch.is_tensor(value) or value.shape != p.shape:
                    raise ValueError(
                        f"{name}.load_state_dict: saved {key!r} of parameter {i} is "
                        f"{describe(value)}, the parameter has shape {tuple(p.shape)}"
                    )


_LOOSE = "state_keys"  # the wrapper's entry: its state's keys that are not parameters


def _loose_keys(state: dict[Any, Any], params: list[torch.Tensor]) -> list[Any]:
    """The keys of ``state`` that are not parameters (torch packs them into state dicts)."""
    ids = {id(p) for p in params}
    return [k for k in state if not (torch.is_tensor(k) and id(k) in ids)]
