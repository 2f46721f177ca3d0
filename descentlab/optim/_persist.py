"""State dicts of descentlab's optimizers: what they save, what they accept, and copies.

torch's ``state_dict`` plus ``skipped_steps`` and the optimizer's name; ``load_state_dict`` fills
in what torch.optim fills in (group keys added by newer releases, ``param_names``, a ``step``
saved as a number), checks everything before anything changes, and keeps step counters as
float32 tensors on their parameters' devices. Copies (``deepcopy``, pickle) keep all but hooks.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import torch

__all__ = [
    "Persistence",
    "copy_state",
    "describe",
    "hooked_load",
    "hooked_state_dict",
    "new_step",
    "restore_state",
]

# Group keys that torch.optim added over its releases, filled with their defaults on load as
# torch's __setstate__ does (a checkpoint from before a key existed still loads).
_ADDED_KEYS = (
    "maximize",
    "foreach",
    "differentiable",
    "capturable",
    "fused",
    "decoupled_weight_decay",
)
# torch's hook tables: dropped by copies (as torch's __getstate__ does: hooks are often closures).
_HOOKS = (
    "_optimizer_step_pre_hooks",
    "_optimizer_step_post_hooks",
    "_optimizer_state_dict_pre_hooks",
    "_optimizer_state_dict_post_hooks",
    "_optimizer_load_state_dict_pre_hooks",
    "_optimizer_load_state_dict_post_hooks",
)


class Persistence:
    """The state-dict methods of :class:`.base.Optimizer` (a mixin before
    ``torch.optim.Optimizer``: ``super()`` reaches torch's)."""

    _scalar_dtypes: ClassVar[dict[str, torch.dtype]] = {}  # 0-d state kept in its dtype on load
    _missing_step: ClassVar[float | None] = None  # the step given to saved state lacking one

    def state_dict(self) -> dict[str, Any]:
        """torch's state dict plus ``skipped_steps`` (torch's state-dict hooks see all of it)."""
        return hooked_state_dict(self, self._state_dict)

    def _state_dict(self) -> dict[str, Any]:
        with _no_hooks(self, "state_dict"):
            sd = super().state_dict()
        sd["skipped_steps"] = self.skipped_steps
        sd["optimizer"] = type(self).__name__  # checked on load: moments of RAdam are not Adam's
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict saved by this optimizer (or by the torch.optim one it mirrors).

        torch's load pre-hooks run first (they may repair what they like), then what torch.optim
        would accept for the same algorithm is made whole (group keys added by newer versions
        get their defaults, ``param_names`` may be present on either side, a ``step`` saved as a
        number becomes a tensor), then everything is checked before anything changes.
        """
        hooked_load(self, state_dict, self._load)

    def _load(self, state_dict: dict[str, Any]) -> None:
        state_dict = self._complete(state_dict)
        self._check_state_dict(state_dict)
        self.skipped_steps = int(state_dict.pop("skipped_steps", 0))
        state_dict.pop("optimizer", None)
        saved = {
            id(v) for e in state_dict["state"].values() if isinstance(e, dict) for v in e.values()
        }
        with _no_hooks(self, "load_state_dict"):
            super().load_state_dict(state_dict)
        # torch casts every state tensor but "step" to the parameter's dtype, and keeps "step"
        # as saved (float64 under a float64 default, on the device it was saved on): the kernels
        # take float32 scalars, and the step counters on the parameter's device (a CPU save
        # continues on a GPU and back). Where the cast was no copy, copy: a live optimizer's
        # state dict shares its tensors.
        for p, state in self.state.items():
            if not isinstance(state, dict):
                continue  # torch keeps state of unknown keys as it is
            for key, value in state.items():
                if not torch.is_tensor(value):
                    continue
                if key == "step":
                    value = value.to(torch.float32)
                elif key in self._scalar_dtypes:
                    value = value.to(self._scalar_dtypes[key])
                if key == "step" and isinstance(p, torch.Tensor):
                    value = value.to(p.device)
                state[key] = value.clone() if id(value) in saved else value

    def _complete(self, sd: Any) -> Any:
        """A copy of ``sd`` with what torch.optim fills in on load filled in (see load_state_dict);
        anything malformed is left for ``_check_state_dict`` to name."""
        if not isinstance(sd, dict):
            return sd
        sd = dict(sd)
        if isinstance(sd.get("param_groups"), list):
            sd["param_groups"] = [
                {**_added_defaults(type(self), group, saved), **saved}
                if isinstance(saved, dict)
                else saved
                for saved, group in zip(sd["param_groups"], self.param_groups)
            ] + sd["param_groups"][len(self.param_groups) :]
        if isinstance(sd.get("state"), dict):
            sd["state"] = {k: self._complete_entry(e) for k, e in sd["state"].items()}
        return sd

    def _complete_entry(self, entry: Any) -> Any:
        if not isinstance(entry, dict) or not entry:
            return entry
        step = entry.get("step")
        if step is None and self._missing_step is not None:
            step = self._missing_step
        if isinstance(step, (int, float)) and not isinstance(step, bool):  # older torch: numbers
            entry = {**entry, "step": new_step(float(step))}
        return entry

    def _check_state_dict(self, sd: dict[str, Any]) -> None:
        """Reject a foreign or corrupted state dict with a clear error, before changing anything."""
        name = type(self).__name__
        if not isinstance(sd, dict):
            raise ValueError(f"{name}.load_state_dict: not an optimizer state dict: {describe(sd)}")
        if not isinstance(sd.get("state"), dict) or not isinstance(sd.get("param_groups"), list):
            raise ValueError(
                f"{name}.load_state_dict: not an optimizer state dict (it needs a 'state' dict "
                f"and a 'param_groups' list; got keys {sorted(map(str, sd))})"
            )
        extra = sorted(map(str, set(sd) - {"state", "param_groups", "skipped_steps", "optimizer"}))
        if extra:
            raise ValueError(
                f"{name}.load_state_dict: unexpected entries {extra} (saved by a wrapper such as "
                "Lookahead? load it into the same wrapper)"
            )
        if not isinstance(sd.get("skipped_steps", 0), int):
            raise ValueError(f"{name}.load_state_dict: 'skipped_steps' is not an integer")
        if len(sd["param_groups"]) != len(self.param_groups):
            raise ValueError(
                f"{name}.load_state_dict: {len(sd['param_groups'])} parameter groups saved, "
                f"this optimizer has {len(self.param_groups)}"
            )
        params = []
        for i, (saved, group) in enumerate(zip(sd["param_groups"], self.param_groups)):
            if not isinstance(saved, dict) or not isinstance(saved.get("params"), list):
                raise ValueError(
                    f"{name}.load_state_dict: parameter group {i} is not a dict with a "
                    f"'params' list: {describe(saved)}"
                )
            missing = sorted(
                k for k in group if k not in ("params", "param_names") and k not in saved
            )
            if missing or len(saved.get("params", ())) != len(group["params"]):
                raise ValueError(
                    f"{name}.load_state_dict: parameter group {i} does not match: "
                    + (
                        f"it lacks {missing} (saved by another optimizer?)"
                        if missing
                        else f"{len(saved.get('params', ()))} parameters saved, "
                        f"{len(group['params'])} here"
                    )
                )
            self._check_group(dict(saved))  # a copy: the caller's dict stays as it is
            names = saved.get("param_names", group.get("param_names"))
            if names is not None and (
                not isinstance(names, list) or len(names) != len(group["params"])
            ):
                raise ValueError(
                    f"{name}.load_state_dict: parameter group {i}: 'param_names' is "
                    f"{describe(names)}, expected a list of {len(group['params'])} names"
                )
            merged = {**group, **{k: val for k, val in saved.items() if k != "params"}}
            params += [(index, p, merged) for index, p in zip(saved["params"], group["params"])]
        saved_by = sd.get("optimizer", name)  # absent: torch.optim's state dict, checked above
        if saved_by != name:
            raise ValueError(f"{name}.load_state_dict: the state dict was saved by {saved_by!r}")
        for index, p, group in params:
            self._check_param_state(sd["state"].get(index), index, p, group)

    def _check_param_state(self, entry: Any, index: Any, p: torch.Tensor, group: dict) -> None:
        """The saved state of one parameter has what ``_init_state`` makes, of the same kind."""
        name = f"{type(self).__name__}.load_state_dict: state of parameter {index}"
        if entry is None or entry == {}:
            return
        if not isinstance(entry, dict):
            raise ValueError(f"{name} is a {type(entry).__name__}, not a dict")
        expected: dict[str, Any] = {"step": new_step()}
        self._init_state(group, p, expected)
        missing = sorted(k for k in expected if k not in entry)
        if missing:
            raise ValueError(f"{name} lacks {missing} (saved by another optimizer?)")
        for key, value in entry.items():
            want = expected.get(key)
            if torch.is_tensor(value) and value.dim() and value.shape != p.shape:
                raise ValueError(
                    f"{name}: {key!r} has shape {tuple(value.shape)}, the parameter "
                    f"{tuple(p.shape)}"
                )
            if torch.is_tensor(want) and not (
                torch.is_tensor(value)
                and value.shape == want.shape
                and value.dtype.is_floating_point == want.dtype.is_floating_point
            ):
                raise ValueError(f"{name}: {key!r} is {describe(value)}, expected {describe(want)}")
            if isinstance(want, (int, float)) and (
                isinstance(value, bool) or not isinstance(value, (int, float))
            ):
                raise ValueError(f"{name}: {key!r} is {describe(value)}, expected a number")


def new_step(value: float = 0.0, device: torch.device | str = "cpu") -> torch.Tensor:
    """A step counter: a float32 0-d tensor whatever the default dtype (the kernels take
    float32; torch's would follow a float64 default), on its parameter's device (as torch's
    capturable and fused paths keep it: no path reads it on the host)."""
    return torch.tensor(value, dtype=torch.float32, device=device)


@functools.cache
def _signature_defaults(cls: type) -> dict[str, Any]:
    return {
        k: p.default
        for k, p in inspect.signature(cls.__init__).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def _added_defaults(cls: type, group: dict[str, Any], saved: dict[str, Any]) -> dict[str, Any]:
    """The values of the group keys torch added over time that ``saved`` lacks: the class's
    default, or the group's value where the class fixes it (AdamW's decoupled decay)."""
    defaults = _signature_defaults(cls)
    return {k: defaults.get(k, group[k]) for k in _ADDED_KEYS if k in group and k not in saved}


def copy_state(opt: torch.optim.Optimizer, *drop: str) -> dict[str, Any]:
    """An optimizer's ``__dict__`` for a copy: everything but torch's hooks and ``drop``."""
    return {k: v for k, v in opt.__dict__.items() if k not in _HOOKS and k not in drop}


def restore_state(opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """torch's ``__setstate__`` (new hook tables), without the ``differentiable`` default it
    adds to ``defaults`` (which would reach every group added later)."""
    defaults = state.get("defaults", opt.__dict__.get("defaults", {}))
    had = "differentiable" in defaults
    torch.optim.Optimizer.__setstate__(opt, state)
    if not had:
        opt.defaults.pop("differentiable", None)


@contextlib.contextmanager
def _no_hooks(opt: torch.optim.Optimizer, api: str) -> Iterator[None]:
    """Run torch's ``state_dict``/``load_state_dict`` with its hooks set aside (they run around
    descentlab's additions and checks instead, see :func:`hooked_state_dict`)."""
    names = [f"_optimizer_{api}_pre_hooks", f"_optimizer_{api}_post_hooks"]
    saved = [getattr(opt, n) for n in names]
    for n in names:
        setattr(opt, n, OrderedDict())
    try:
        yield
    finally:
        for n, hooks in zip(names, saved):
            setattr(opt, n, hooks)


def hooked_state_dict(
    opt: torch.optim.Optimizer, build: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """``build()`` between torch's state-dict pre- and post-hooks (as torch's ``state_dict``)."""
    for pre_hook in opt._optimizer_state_dict_pre_hooks.values():
        pre_hook(opt)
    sd = build()
    for post_hook in opt._optimizer_state_dict_post_hooks.values():
        result = post_hook(opt, sd)
        if result is not None:
            sd = result
    return sd


def hooked_load(
    opt: torch.optim.Optimizer, state_dict: dict[str, Any], load: Callable[[Any], None]
) -> None:
    """``load(state_dict)`` between torch's load pre- and post-hooks: the pre-hooks see the
    caller's state dict (a shallow copy) before anything is checked."""
    if isinstance(state_dict, dict):
        state_dict = state_dict.copy()
    for pre_hook in opt._optimizer_load_state_dict_pre_hooks.values():
        result = pre_hook(opt, state_dict)
        if result is not None:
            state_dict = result
    load(state_dict)
    for post_hook in opt._optimizer_load_state_dict_post_hooks.values():
        post_hook(opt)


def describe(value: Any) -> str:
    if torch.is_tensor(value):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return f"{value!r} (a {type(value).__name__})"
