"""A rule as the optimizer classes use it: its programs (one per setting of the flags), the
kernel signature, and the group's values in the form each path takes."""

from __future__ import annotations

import functools
import hashlib
import inspect
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch

from ..kernels import _scalars
from . import tri
from .cpp import Signature, Unit, bundle, module, unit
from .graph import Program, RuleError, trace
from .values import (
    DECAY_FLAGS,
    Values,
    check_hyperparameter,
    initial,
    kept,
    reachable,
    vector,
)

__all__ = ["BUILTIN", "DECAY_FLAGS", "Rule", "bundled"]

# The rules of descentlab's own optimizers, by name (registered when their classes are
# defined): built into the hand-written kernels' extension, in the same build.
BUILTIN: dict[str, Rule] = {}


def bundled(parts: int = 1) -> tuple[list[str], str]:
    """The C++ of the built-in rules: ``parts`` translation units and the header that binds
    them (:func:`.cpp.bundle`)."""
    return bundle([BUILTIN[name].unit for name in sorted(BUILTIN)], parts)


class Setting(NamedTuple):
    """What a step takes from a group's values, besides the per-tensor vectors."""

    flags: dict[str, bool]
    hypers: dict[str, float]
    present: tuple[str, ...]  # the state tensors
    program: Program
    readable: Program  # the readable path's: its gradient arrives negated under maximize


@dataclass(eq=False)
class Rule:
    """An elementwise rule, traced for every setting of its flags."""

    name: str
    defaults: dict[str, Any]  # the hyperparameters and their defaults, ``maximize`` included
    state: tuple[str, ...]
    flags: tuple[str, ...]  # bool hyperparameters, then derived flags
    derived: dict[str, Callable[[Any], bool]]  # flags computed from a group's values
    state_when: dict[str, str]  # a state tensor that exists only where a flag is set
    per_tensor: tuple[str, ...]  # hyperparameters given to the kernels as vectors
    scalars: Callable[[Any, torch.Tensor], dict[str, Any]]
    programs: dict[tuple[bool, ...], Program]
    signature: Signature
    sources: dict[str, tuple[str, int | None]]  # a kernel's float argument -> (name, index)
    scalar_state: dict[str, float] = field(default_factory=dict)  # per-tensor 0-d state
    scalar_dtype: torch.dtype = torch.float32  # the scalar state's
    _settings: dict[tuple[Any, ...], Setting] = field(default_factory=dict, repr=False)
    _filled: dict[tuple[Any, ...], torch.Tensor] = field(default_factory=dict, repr=False)
    _made_numbers: dict[tuple[Any, ...], dict[str, float]] = field(default_factory=dict, repr=False)

    @classmethod
    def define(
        cls,
        name: str,
        update: Callable[[Any, Any], None],
        *,
        hyperparameters: dict[str, Any],
        state: tuple[str, ...],
        per_tensor: tuple[str, ...],
        scalars: Callable[[Any, torch.Tensor], dict[str, Any]],
        reserved: tuple[str, ...],
        derived: dict[str, Callable[[Any], bool]] | None = None,
        state_when: dict[str, str] | None = None,
        scalar_state: dict[str, float] | None = None,
        scalar_dtype: torch.dtype = torch.float32,
    ) -> Rule:
        """Check and trace a rule; :class:`RuleError` naming what is wrong."""
        if len(inspect.signature(update).parameters) != 2:
            raise RuleError(f"{name}.update must take (x, h), not {inspect.signature(update)}")
        defaults = {**hyperparameters}
        defaults.setdefault("maximize", False)
        taken = {"param", "grad", "step", *reserved}
        for key, value in defaults.items():
            check_hyperparameter(name, key, value, taken)
        for key in state:
            if not key.isidentifier() or key in taken or key in defaults:
                raise RuleError(
                    f"{name}: state tensor {key!r} must be an identifier other than "
                    f"{', '.join(sorted(taken | set(defaults)))}"
                )
        derived, state_when = dict(derived or {}), dict(state_when or {})
        for key, fn in derived.items():
            if not key.isidentifier() or key in taken or key in defaults or key in state:
                raise RuleError(f"{name}: derived flag {key!r} must be a new identifier")
            try:
                value = fn(Values(defaults))
            except Exception as exc:
                raise RuleError(
                    f"{name}: derived flag {key!r} failed on the defaults: {exc}"
                ) from exc
            if not isinstance(value, bool):
                raise RuleError(f"{name}: derived flag {key!r} must return a bool, not {value!r}")
        flags = (*(k for k, v in defaults.items() if isinstance(v, bool)), *derived)
        for key, flag in state_when.items():
            if key not in state or flag not in flags:
                raise RuleError(
                    f"{name}: state_when maps {key!r} to {flag!r}; it must map a state tensor "
                    f"({', '.join(state)}) to a flag ({', '.join(flags)})"
                )
        per = tuple(n for n in per_tensor if n in defaults)
        scalar_state = dict(scalar_state or {})
        for key in scalar_state:
            if not key.isidentifier() or key in taken or key in defaults or key in state:
                raise RuleError(f"{name}: scalar state {key!r} must be a new identifier")
        arity = len(inspect.signature(scalars).parameters)
        if arity != (3 if scalar_state else 2):
            raise RuleError(
                f"{name}.scalars must take (h, t{', s' if scalar_state else ''}): "
                f"{'s, the scalar state, ' if scalar_state else ''}not {inspect.signature(scalars)}"
            )
        try:
            made = scalars(
                Values(defaults), _scalars.at(1), *initial(scalar_state, 1, dtype=scalar_dtype)
            )
        except Exception as exc:
            raise RuleError(f"{name}.scalars(h, t) failed: {type(exc).__name__}: {exc}") from exc
        made = {k: v for k, v in made.items() if k not in scalar_state}  # its new values
        for key in made:
            if not key.isidentifier() or key in defaults or key in state or key in taken:
                raise RuleError(
                    f"{name}.scalars returns {key!r}, which must be a new identifier "
                    "(not a hyperparameter, a state tensor, param, grad or step)"
                )
        vectors = (*per, *made)
        programs = {}
        for combo in itertools.product((False, True), repeat=len(flags)):
            setting = dict(zip(flags, combo))
            if not reachable(setting, derived):
                continue
            present = tuple(k for k in state if setting.get(state_when.get(k, ""), True))
            programs[combo] = trace(
                update, state=present, defaults=defaults, vectors=vectors, flags=setting
            )
        hypers = list(dict.fromkeys(h for p in programs.values() for h in p.hypers))
        sig = Signature(("params", "grads", *state), vectors, tuple(hypers), flags)
        sources: dict[str, tuple[str, int | None]] = {}
        for key, value in defaults.items():
            if isinstance(value, tuple):
                sources.update({f"{key}_{i}": (key, i) for i in range(len(value))})
            else:
                sources[key] = (key, None)
        return cls(
            name,
            defaults,
            state,
            flags,
            derived,
            state_when,
            per,
            scalars,
            programs,
            sig,
            sources,
            scalar_state,
            scalar_dtype,
        )

    def setting(self, group: dict[str, Any]) -> Setting:
        """The group's flags, float hyperparameters, state tensors and program, worked out once
        per distinct set of values (a step reads them every time: about 0.1 ms of Python on
        caches that the kernel's pass over memory has emptied)."""
        key = tuple(map(group.get, self._keyed))
        return kept(self._settings, key, lambda: self._setting(group))

    @functools.cached_property
    def _keyed(self) -> tuple[str, ...]:
        return tuple(k for k in self.defaults if k not in self.per_tensor)

    def _setting(self, group: dict[str, Any]) -> Setting:
        return Setting(
            self.flag_values(group),
            self.hypers(group),
            self.present(group),
            self.program(group),
            self.program(group, maximize=False),
        )

    def flag_values(self, group: dict[str, Any]) -> dict[str, bool]:
        """The group's flags, derived ones included."""
        values = Values(group)
        return {
            f: bool(self.derived[f](values)) if f in self.derived else bool(group[f])
            for f in self.flags
        }

    def present(self, group: dict[str, Any]) -> tuple[str, ...]:
        """The state tensors the group's flags call for."""
        if not self.state_when:
            return self.state
        flags = self.flag_values(group)
        return tuple(k for k in self.state if flags.get(self.state_when.get(k, ""), True))

    def program(self, group: dict[str, Any], *, maximize: bool | None = None) -> Program:
        """The program for the group's flags (``maximize`` overridden where given)."""
        flags = self.flag_values(group)
        if maximize is not None:
            flags["maximize"] = maximize
        return self.programs[tuple(flags[f] for f in self.flags)]

    def hypers(self, group: dict[str, Any]) -> dict[str, float]:
        """The float hyperparameters the kernels take, by their argument names."""
        out = {}
        for arg in self.signature.hypers:
            key, index = self.sources[arg]
            value = group[key] if index is None else group[key][index]
            out[arg] = float(value)
        return out

    def vectors(
        self,
        group: dict[str, Any],
        t: torch.Tensor,
        current: dict[str, torch.Tensor] | None = None,
        updates: dict[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """The per-tensor scalars: 1-D float64 vectors like the step vector ``t``; ``current``:
        the scalar state (1-D float32 vectors, the initial values where not given), whose new
        values go to ``updates``."""
        out = {n: self._filled_like(group[n], t) for n in self.per_tensor}
        for key, value in self._made(group, t, current).items():
            if key not in self.scalar_state:
                out[key] = vector(value, t)
            elif updates is not None:
                updates[key] = value
        return out

    def step_vectors(
        self,
        group: dict[str, Any],
        t: torch.Tensor,
        states: list[dict[str, Any]],
        found_inf: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """:meth:`vectors` for a step of the tensors whose ``states`` are given: their scalar
        state read and advanced in place (not where GradScaler's ``found_inf`` is set: that
        step changes nothing)."""
        if not self.scalar_state:
            return self.vectors(group, t)
        current = {k: _scalars.gather([s[k] for s in states]) for k in self.scalar_state}
        updates: dict[str, torch.Tensor] = {}
        out = self.vectors(group, t, current, updates)
        for key, new in updates.items():
            new = vector(new, current[key]).to(current[key].dtype)
            if found_inf is not None:
                new = torch.where(found_inf.to(new.device) != 0, current[key], new)
            _scalars.assign([s[key] for s in states], new)
        return out

    def _filled_like(self, value: Any, t: torch.Tensor) -> torch.Tensor:
        """``value`` as a vector like ``t``; a float's vector kept for the next step with the
        same value (a constant ``lr``: one tensor op less a step)."""
        if torch.is_tensor(value) or torch.compiler.is_compiling():
            return vector(value, t)
        key = (float(value), len(t), t.device, t.dtype)
        return kept(self._filled, key, lambda: vector(value, t))

    def numbers(self, group: dict[str, Any], t: int, state: dict[str, Any]) -> dict[str, float]:
        """The per-tensor scalars of one tensor at step ``t`` as Python floats (the readable
        path); its scalar state in ``state`` advanced in place."""
        out = {n: float(group[n]) for n in self.per_tensor}
        if self.scalar_state:
            return self._numbers(group, t, state, out)
        # the same for every tensor of the group at step t: kept by the group's values (all
        # of them: ``scalars`` may read one that is not a hyperparameter, AdaBound's base_lr)
        values = [v for k, v in group.items() if k != "params" and k not in self.per_tensor]
        key = (*group.keys(), *values, *out.values(), t)
        return kept(self._made_numbers, key, lambda: self._numbers(group, t, state, out))

    def _numbers(
        self, group: dict[str, Any], t: int, state: dict[str, Any], out: dict[str, float]
    ) -> dict[str, float]:
        if len(self.signature.vectors) > len(out) or self.scalar_state:
            current = {k: state[k].reshape(1) for k in self.scalar_state}
            device = next(iter(current.values())).device if current else "cpu"
            for key, value in self._made(group, _scalars.at(t, device), current or None).items():
                if key in self.scalar_state:
                    state[key].copy_(torch.as_tensor(value, dtype=state[key].dtype).reshape(()))
                elif isinstance(value, (int, float)):  # (as_tensor would round it to float32)
                    out[key] = float(value)
                else:
                    out[key] = float(value.reshape(-1)[0])
        return out

    def _made(self, group: dict[str, Any], t: torch.Tensor, current: Any) -> dict[str, Any]:
        """What ``scalars`` returns for ``group`` at steps ``t``."""
        if not self.scalar_state:
            return self.scalars(Values(group), t)
        if current is None:
            (state,) = initial(self.scalar_state, len(t), t.device, self.scalar_dtype)
        else:
            state = Values(current)
        return self.scalars(Values(group), t, state)

    @functools.cached_property
    def unit(self) -> Unit:
        """The rule's kernel as C++: its namespace ``rule_<name>`` and the binding of its step."""
        return unit(
            f"rule_{self.name.lower()}", self.name, list(self.programs.values()), self.signature
        )

    def cpp(self) -> str:
        """The C++ source of the rule's kernel as an extension of its own."""
        return module([self.unit])

    def triton(self) -> str:
        """The Python source of the rule's Triton kernels."""
        return tri.source(self.name, list(self.programs.values()), self.signature)

    @functools.cached_property
    def stem(self) -> str:
        """The name of its operator and builds: the rule's name and a digest of its kernel."""
        digest = hashlib.sha256(self.unit.code.encode()).hexdigest()[:10]
        return f"rule_{self.name.lower()}_{digest}"
