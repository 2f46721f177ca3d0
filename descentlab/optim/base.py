"""Shared machinery of every descentlab optimizer, written once.

An algorithm subclasses :class:`Optimizer` and supplies

* ``_checks``: the per-group hyperparameter checks (a table, see :mod:`descentlab.checks`);
* ``_init_state(group, p, state)``: its per-parameter state tensors, created eagerly so that
  the readable path only ever updates them in place;
* ``_reference(group, p, g, state, t)``: the paper's equations for one tensor (the readable path);
* optionally ``_fused(group, params, grads, states, kernels)``: the fast multi-tensor path, which
  must give the same parameters and state tensors as the readable path (tested). ``kernels`` is
  the module whose functions take the bucket (:mod:`.kernels`: the compiled CPU operators, the
  Triton kernels or the foreach functions, all with the same arguments), or ``None`` where
  torch's own fused kernel has the algorithm's math (``_torch_fused``).

This class handles parameter groups, lazy state, closures, ``maximize`` (never changing ``p.grad``
in place), complex parameters (updated through their real views), sparse-gradient errors, the
non-finite policy, AMP's ``grad_scale``/``found_inf``, and the choice between the paths, which
is made once per group and kept while it holds (:mod:`._plan`), so that a step costs no Python
work per tensor beyond a few C-level passes over the lists.

Step counters are 0-d tensors on the parameter's device (as torch's capturable and fused paths
keep them), so no path reads a device value on the host. Under ``torch.compile`` the host-side
work of a step (planning, lazy state, AMP's and the non-finite checks) runs outside the graph
(one graph break, ``torch.optim`` has two) and the kernels inside it.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from operator import attrgetter
from types import ModuleType
from typing import Any, ClassVar, Literal

import torch

from .. import checks as v
from . import kernels
from ._plan import Bucket, Plan

__all__ = [
    "IMPLS",
    "NONFINITE",
    "OPTIONS",
    "NonFiniteGradientError",
    "Optimizer",
    "copy_state",
    "hooked_load",
    "hooked_state_dict",
    "is_dtensor",
    "kernel_tensor",
    "split_options",
]

IMPLS = ("auto", "forloop", "fused", "foreach")
NONFINITE = ("ignore", "raise", "skip")
Impl = Literal["auto", "forloop", "fused", "foreach"]
NonFinite = Literal["ignore", "raise", "skip"]
Check = Callable[[str, Any], Any]

_FUSED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_HALF = (torch.float16, torch.bfloat16)
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
_PLAIN = (torch.nn.Parameter, torch.Tensor)  # never DTensors
_GRAD = attrgetter("grad")


class NonFiniteGradientError(RuntimeError):
    """A gradient held NaN or inf and ``nonfinite="raise"`` was set; nothing was updated."""


class Optimizer(torch.optim.Optimizer):
    """Base class of the descentlab optimizers (a drop-in ``torch.optim.Optimizer``).

    Args:
        params: parameters or parameter groups, as for any torch optimizer.
        defaults: the algorithm's hyperparameters (checked with ``_checks``).
        impl: ``"auto"`` (fast path where it applies, else the readable one), ``"forloop"`` (the
            readable per-tensor path), ``"fused"`` (the compiled kernels: descentlab's or torch's
            fused ones; an error where none can run) or ``"foreach"`` (the ``torch._foreach_*``
            path on every device).
        capturable: torch's flag, accepted: the fast paths keep step counters and derived
            scalars on the parameters' device in any case.
        nonfinite: what a NaN/inf gradient does: ``"ignore"`` (torch.optim's behaviour, no extra
            pass over memory), ``"raise"`` (:class:`NonFiniteGradientError` naming the parameter and
            the step; nothing updated) or ``"skip"`` (the whole step is skipped, state untouched,
            counted in ``skipped_steps``). ``raise``/``skip`` cost one read of the gradients and
            one host sync per step.
    """

    _checks: ClassVar[dict[str, Check]] = {}
    _compiled: ClassVar[bool] = False  # descentlab has C++ and Triton kernels for it
    _step_supports_amp_scaling = True  # GradScaler hands us grad_scale/found_inf (torch's fused)
    _float32_state: ClassVar[tuple[str, ...]] = ()  # 0-d float32 state kept as such on load

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        defaults: dict[str, Any],
        *,
        impl: Impl = "auto",
        nonfinite: NonFinite = "ignore",
        capturable: bool = False,
        unknown: dict[str, Any] | None = None,
    ) -> None:
        v.check_unknown(type(self).__name__, unknown or {}, [*defaults, *OPTIONS])
        v.check_choice("impl", impl, IMPLS)
        v.check_choice("nonfinite", nonfinite, NONFINITE)
        v.check_bool("capturable", capturable)
        self._check_group(defaults)
        self.impl: Impl = impl
        self.capturable = capturable
        self.nonfinite: NonFinite = nonfinite
        self.skipped_steps = 0
        self._plans: dict[int, Plan] = {}  # per group (by id): see _plan.py
        super().__init__(params, defaults)

    def __getstate__(self) -> dict[str, Any]:
        """What a copy (deepcopy, pickle, ``torch.save(opt)``) keeps: all but plans and hooks."""
        return copy_state(self, "_plans", "_traced_plans")

    def __setstate__(self, state: dict[str, Any]) -> None:
        """torch's ``load_state_dict`` and unpickling come here: every plan is dropped."""
        restore_state(self, state)
        self._plans = {}

    # ----------------------------------------------------------------- hyperparameters
    def _check_group(self, group: dict[str, Any]) -> None:
        """Run the class's checks on every hyperparameter that ``group`` sets.

        A number is stored as the Python float the check returns (an int as large as ``10**30``
        or a NumPy scalar would otherwise reach torch's kernels as it is).
        """
        for name, check in self._checks.items():
            if name in group:
                checked = check(name, group[name])
                if isinstance(checked, float):
                    group[name] = checked

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group after checking its hyperparameters; a bad group changes nothing."""
        self._check_group(param_group)
        self._plans.clear()
        super().add_param_group(param_group)
        try:
            self._check_combination(self.param_groups[-1])
        except v.HyperparameterError:
            self.param_groups.pop()
            raise

    def _check_combination(self, group: dict[str, Any]) -> None:
        """Checks that involve several hyperparameters of a complete group (override)."""

    # ----------------------------------------------------------------- the algorithm
    def _init_state(self, group: dict[str, Any], p: torch.Tensor, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def _reference(
        self, group: dict[str, Any], p: torch.Tensor, g: torch.Tensor, state: dict, t: int
    ) -> None:
        raise NotImplementedError

    _fused: ClassVar[Callable[..., None] | None] = None

    def _torch_fused(self, group: dict[str, Any]) -> bool:
        """Whether torch's fused kernel has this group's math exactly (override)."""
        return False

    def _fused_supported(self, p: torch.Tensor, g: torch.Tensor) -> bool:
        """Whether the fast path can take this tensor (dense, real, contiguous, local).

        DTensor parameters (FSDP2) take the readable path: its per-element ops run on the local
        shards through DTensor's sharding rules, which the fused kernels have none of.
        """
        return (
            kernel_tensor(p)
            and g.dtype is p.dtype
            and g.is_contiguous()
            and g.layout is torch.strided
        )

    def _kernels(self, group: dict[str, Any], device: torch.device) -> ModuleType | None:
        """The kernels of a bucket on ``device`` (see :func:`.kernels.select`)."""
        return kernels.select(
            device,
            impl=self.impl,
            torch_fused=self._torch_fused(group),
            compiled=self._compiled,
            build=self._build(group),
            owner=type(self).__name__,
        )

    def _build(self, group: dict[str, Any]) -> bool:
        """Whether to build the compiled CPU kernels when they are missing (override: False
        where torch's fused kernel is an equal path)."""
        return True

    # ----------------------------------------------------------------- stepping
    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimization step; ``closure`` re-evaluates the model and returns the loss.

        With ``GradScaler`` (which sets ``grad_scale`` and ``found_inf`` on the optimizer, as for
        torch's fused optimizers) the gradients are unscaled in place, and a step with
        ``found_inf`` set changes nothing (parameters, state, step counters).
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        step = self._traced_step() if torch.compiler.is_compiling() else self._prepare()
        amp, inf = step.amp, step.amp.get("found_inf")
        for group, plan, g in step.work:
            for bucket in plan.buckets:
                if amp and _amp_in_kernel(bucket.kernels):
                    self._fused(
                        group, bucket.params, bucket.grads(g), bucket.states, bucket.kernels, **amp
                    )
                    if inf is not None:  # an inf step: the kernel changed nothing, nor do we
                        steps = [s["step"] for s in bucket.states]
                        torch._foreach_sub_(steps, [inf] * len(steps))  # (a list: no .item())
                elif not step.skip_rest:
                    self._fused(
                        group, bucket.params, bucket.grads(g), bucket.states, bucket.kernels
                    )
            if not step.skip_rest:
                for i, state in plan.slow:
                    self._reference_step(group, plan.params[i], g[i], state)
        return loss

    def _prepare(self) -> _Step:
        """The host-side work of a step: each group with its plan and gradients, and AMP's
        arguments for the kernels that take them (see :func:`_amp_in_kernel`).

        GradScaler's ``found_inf`` is read on the host only where that costs nothing (a CPU
        flag: then an inf step plans nothing, so a skipped first step leaves no lazy state) or
        where something else needs it: ``nonfinite`` checks, and gradients that no kernel
        unscales (the readable and foreach paths: one sync per step). A device flag otherwise
        goes to the kernels, which change nothing on an inf step, as torch's fused kernels do.
        """
        grads = [list(map(_GRAD, group["params"])) for group in self.param_groups]
        scale, inf = getattr(self, "grad_scale", None), getattr(self, "found_inf", None)
        if inf is not None and (_read_on_host(inf) or self.nonfinite != "ignore"):
            if bool(inf):  # checked before _plan creates any lazy state
                return _Step([], {}, True)
            inf = None
        if self.nonfinite != "ignore" and not self._all_finite(grads):
            return _Step([], {}, True)
        plans = [self._plan(group, g) for group, g in zip(self.param_groups, grads)]
        work = [
            (_numbers(group), plan, g) for group, plan, g in zip(self.param_groups, plans, grads)
        ]
        amp = {k: v for k, v in (("grad_scale", scale), ("found_inf", inf)) if v is not None}
        if not amp:
            return _Step(work, amp, False)
        rest: list[torch.Tensor] = []  # gradients that no kernel unscales
        for _, plan, g in work:
            rest += [g[i] for i, _ in plan.slow]
            for bucket in plan.buckets:
                if not _amp_in_kernel(bucket.kernels):
                    rest += bucket.grads(g)
        return _Step(work, amp, bool(rest) and not _unscale(rest, scale, inf))

    def _traced_step(self) -> _Step:
        """``_prepare`` under ``torch.compile``: the plans come from ``_init_group``, which dynamo
        runs eagerly while it traces (as for torch's optimizers: no graph break), and dynamo's
        guards on what the traced step reads take the place of ``Plan.holds``. AMP unscales the
        gradients before the kernels there."""
        self._init_group()
        grads = [[p.grad for p in group["params"]] for group in self.param_groups]
        scale, inf = getattr(self, "grad_scale", None), getattr(self, "found_inf", None)
        dense = [g for gs in grads for g in gs if g is not None and not g.is_sparse]
        if (scale is not None or inf is not None) and not _unscale(dense, scale, inf):
            return _Step([], {}, True)
        if self.nonfinite != "ignore" and not self._all_finite(grads):
            return _Step([], {}, True)
        work = [
            (_numbers(group), plan, g)
            for group, plan, g in zip(self.param_groups, self._traced_plans, grads)
        ]
        return _Step(work, {}, False)

    def _init_group(self) -> None:
        """The plans of all groups (lazy state included), for :meth:`_traced_step`."""
        grads = [list(map(_GRAD, group["params"])) for group in self.param_groups]
        self._traced_plans = [self._plan(group, g) for group, g in zip(self.param_groups, grads)]
        outside_graph(*self._host_work)

    # methods that read device values on the host: run outside the graph under torch.compile
    _host_work: ClassVar[tuple[Callable[..., Any], ...]] = ()

    def _plan(self, group: dict[str, Any], grads: list[torch.Tensor | None]) -> Plan:
        """The group's step plan: the cached one while it holds, else a new one (see _plan.py)."""
        plan = self._plans.get(id(group))
        if plan is not None and plan.holds(group["params"], grads, self.impl, self.state):
            return plan
        params = list(group["params"])
        fast: dict[tuple[torch.device, torch.dtype], list[int]] = {}
        slow: list[int] = []
        for i, (p, g) in enumerate(zip(params, grads)):
            if g is None:
                continue
            if g.is_sparse:
                raise RuntimeError(
                    f"{type(self).__name__} does not support sparse gradients; "
                    "use torch.optim.SparseAdam or dense gradients"
                )
            state = self.state[p]
            if not state:
                state["step"] = _step(device=p.device)  # where its kernels read it
                self._init_state(group, p, state)
            if self.impl != "forloop" and self._fused_supported(p, g):
                # the kernels take tensors of one device and dtype per call
                fast.setdefault((p.device, p.dtype), []).append(i)
            else:
                slow.append(i)
        buckets = [
            Bucket(
                None if len(idx) == len(params) else idx,
                [params[i] for i in idx],
                [self.state[params[i]] for i in idx],
                device,
                dtype,
                self._kernels(group, device),  # chosen (and built) once per plan
            )
            for (device, dtype), idx in fast.items()
        ]
        plan = Plan(
            params=params,
            missing=[g is None for g in grads],
            buckets=buckets,
            slow=[(i, self.state[params[i]]) for i in slow],
            impl=self.impl,
            table=self.state,
        )
        self._planned(plan)
        self._plans[id(group)] = plan
        return plan

    def _planned(self, plan: Plan) -> None:
        """Bring a new plan's state into the form its paths take (override; see SWATS)."""

    def _all_finite(self, grads: list[list[torch.Tensor | None]]) -> bool:
        dense = [g for gs in grads for g in gs if g is not None and not g.is_sparse]
        if not dense:  # sparse gradients are refused by _plan
            return True
        # The max-abs norm is NaN/inf exactly when some element is: one read, no temporaries.
        norms = torch._foreach_norm(dense, ord=float("inf"))
        if bool(torch.stack([n.to(norms[0].device) for n in norms]).isfinite().all()):
            return True
        if self.nonfinite == "skip":
            self.skipped_steps += 1
            return False
        for gi, group in enumerate(self.param_groups):
            for pi, p in enumerate(group["params"]):
                if p.grad is not None and not bool(p.grad.isfinite().all()):
                    step = int(self.state[p]["step"]) + 1 if self.state[p] else 1
                    raise NonFiniteGradientError(
                        f"non-finite gradient in param_groups[{gi}]['params'][{pi}] "
                        f"(shape {tuple(p.shape)}) at step {step}; nothing was updated"
                    )
        raise AssertionError("unreachable: a norm was non-finite but no gradient was")

    def _reference_step(
        self, group: dict[str, Any], p: torch.Tensor, g: torch.Tensor, state: dict[str, Any]
    ) -> None:
        if group.get("maximize", False):
            g = -g  # a new tensor: p.grad is never changed in place
        step = state["step"]
        step += 1
        if p.dtype in _HALF:
            self._half_step(group, p, g, state, int(step.item()))
            return
        if not torch.is_complex(p):
            self._reference(group, p, g, state, int(step.item()))
            return
        # Complex parameters are updated through their real views, as torch.optim does.
        real = {
            k: torch.view_as_real(s) if torch.is_tensor(s) and s.is_complex() else s
            for k, s in state.items()
        }
        self._reference(group, torch.view_as_real(p), torch.view_as_real(g), real, int(step.item()))
        for k, s in real.items():  # write back what the update replaced or added
            if k not in state or not torch.is_tensor(state[k]):
                state[k] = torch.view_as_complex(s) if torch.is_tensor(s) and s.dim() else s

    def _half_step(
        self, group: dict[str, Any], p: torch.Tensor, g: torch.Tensor, state: dict, t: int
    ) -> None:
        """float16/bfloat16: the math in float32 and the results rounded back, as torch's fused
        kernels (and ours) compute (their ``opmath_t``); in half precision an ``eps`` of 1e-8
        underflows and Adam's step divides by zero."""
        wide = {
            k: s.float() if torch.is_tensor(s) and s.dtype is p.dtype else s
            for k, s in state.items()
        }
        p32 = p.float()
        self._reference(group, p32, g.float(), wide, t)
        p.copy_(p32)
        for k, s in wide.items():
            old = state.get(k)
            if torch.is_tensor(old) and old.dtype is p.dtype:
                old.copy_(s)
            elif old is not s:  # numbers, and tensors that the update added
                state[k] = s.to(p.dtype) if torch.is_tensor(s) and s.dim() else s

    # ----------------------------------------------------------------- persistence
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
                if key == "step" or key in self._float32_state:
                    value = value.to(torch.float32)
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
            entry = {**entry, "step": _step(float(step))}
        return entry

    def _check_state_dict(self, sd: dict[str, Any]) -> None:
        """Reject a foreign or corrupted state dict with a clear error, before changing anything."""
        name = type(self).__name__
        if not isinstance(sd, dict):
            raise ValueError(
                f"{name}.load_state_dict: not an optimizer state dict: {_describe(sd)}"
            )
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
                    f"'params' list: {_describe(saved)}"
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
                    f"{_describe(names)}, expected a list of {len(group['params'])} names"
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
        expected: dict[str, Any] = {"step": _step()}
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
                raise ValueError(
                    f"{name}: {key!r} is {_describe(value)}, expected {_describe(want)}"
                )
            if isinstance(want, (int, float)) and (
                isinstance(value, bool) or not isinstance(value, (int, float))
            ):
                raise ValueError(f"{name}: {key!r} is {_describe(value)}, expected a number")


def _step(value: float = 0.0, device: torch.device | str = "cpu") -> torch.Tensor:
    """A step counter: a float32 0-d tensor whatever the default dtype (the kernels take
    float32; torch's would follow a float64 default), on its parameter's device (as torch's
    capturable and fused paths keep it: no path reads it on the host)."""
    return torch.tensor(value, dtype=torch.float32, device=device)


def _numbers(group: dict[str, Any]) -> dict[str, Any]:
    """``group`` with tensor betas as Python numbers (the math and the kernels take numbers;
    torch accepts tensor betas so that a compiled step with a schedule on them does not
    recompile). One check per group and step; a copy only when betas are tensors."""
    betas = group.get("betas")
    if betas is None or not (torch.is_tensor(betas[0]) or torch.is_tensor(betas[1])):
        return group
    return {**group, "betas": (float(betas[0]), float(betas[1]))}


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


def _describe(value: Any) -> str:
    if torch.is_tensor(value):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return f"{value!r} (a {type(value).__name__})"


def is_dtensor(t: torch.Tensor) -> bool:
    """Whether ``t`` is a DTensor (FSDP2's sharded parameters), without importing DTensor.

    Importing ``torch.distributed.tensor`` costs about a second; a DTensor exists only once
    something imported it.
    """
    module = sys.modules.get("torch.distributed.tensor")
    return module is not None and isinstance(t, module.DTensor)


def kernel_tensor(t: torch.Tensor) -> bool:
    """Whether the fast paths can take ``t``: a contiguous tensor of a float dtype their
    kernels are built for, on any device, not a DTensor shard."""
    return (
        t.dtype in _FUSED_DTYPES
        and t.is_contiguous()
        and (type(t) in _PLAIN or not is_dtensor(t))  # cheap test first
    )


def weight_decay(group: dict[str, Any], p: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """The group's weight decay on the readable path: L2 returns ``g + wd p`` (a new tensor),
    decoupled (``decoupled_weight_decay=True``) scales ``p`` by ``1 - lr wd`` in place and
    returns ``g``; the fast paths take the same as :func:`.kernels._scalars.decay`."""
    wd = group["weight_decay"]
    if wd == 0:
        return g
    if group.get("decoupled_weight_decay", False):
        p.mul_(1 - group["lr"] * wd)
        return g
    return g.add(p, alpha=wd)


def hyperparameters(local: dict[str, Any]) -> dict[str, Any]:
    """An ``__init__``'s hyperparameters from its ``locals()``: all but self, params, options."""
    return {k: v for k, v in local.items() if k not in ("self", "params", "options", "__class__")}


def zeros(state: dict[str, Any], p: torch.Tensor, *keys: str) -> None:
    """Create the state tensors ``keys`` as zeros shaped (and strided) like ``p``."""
    for key in keys:
        state[key] = torch.zeros_like(p, memory_format=torch.preserve_format)


OPTIONS = ("impl", "nonfinite", "capturable")  # every Optimizer takes these keywords


def split_options(options: dict[str, Any]) -> dict[str, Any]:
    """Separate the base options (``impl``, ``nonfinite``, ``capturable``) from unknown keywords."""
    known = {k: options.pop(k) for k in OPTIONS if k in options}
    return {**known, "unknown": options}


_OUTSIDE: dict[Callable[..., Any], Callable[..., Any]] = {}


def outside_graph(*functions: Callable[..., Any]) -> Callable[..., Any] | None:
    """``torch.compiler.disable`` of each function, made once, outside any graph (from an
    ``_init_group``, which dynamo runs eagerly; a module-level ``disable`` would import
    ``torch._dynamo`` with descentlab, a second); the last one's wrapper."""
    for fn in functions:
        if fn not in _OUTSIDE:
            _OUTSIDE[fn] = torch.compiler.disable(fn)
    return _OUTSIDE[functions[-1]] if functions else None


@dataclass(frozen=True)
class _Step:
    """What :meth:`Optimizer.step` runs: each group's plan and gradients, AMP's arguments for
    the kernels that take them, and whether everything else skips (GradScaler found an inf)."""

    work: list[tuple[dict[str, Any], Plan, list[torch.Tensor | None]]]
    amp: dict[str, torch.Tensor]
    skip_rest: bool


def _amp_in_kernel(kernels: ModuleType | None) -> bool:
    """Whether a bucket's kernels take ``grad_scale`` and ``found_inf`` (descentlab's compiled
    ones and torch's fused ones; not the foreach path, nor torch's kernel under compile)."""
    if kernels is None:
        return not torch.compiler.is_compiling()
    return getattr(kernels, "AMP", False)


def _read_on_host(flag: torch.Tensor) -> bool:
    """Whether reading ``flag`` on the host is free (a CPU tensor: no device to wait for)."""
    return flag.is_cpu


def _unscale(
    grads: list[torch.Tensor], scale: torch.Tensor | None, inf: torch.Tensor | None
) -> bool:
    """AMP on the host: False if ``inf`` is set (the step skips); else divide ``grads`` by
    ``scale`` in place, as torch's fused kernels do."""
    if inf is not None and bool(inf):
        return False
    if scale is not None:
        by_device: dict[torch.device, list[torch.Tensor]] = {}
        for g in grads:
            by_device.setdefault(g.device, []).append(g)
        for device, gs in by_device.items():
            torch._foreach_div_(gs, scale.to(device))
    return True
