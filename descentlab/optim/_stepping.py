"""A step of descentlab's optimizers: planning, AMP's scale and inf flag, the non-finite policy,
and the readable path's per-tensor step (complex and half-precision parameters).

The choice between the paths is made once per group and kept while it holds (:mod:`._plan`), so
that a step costs no Python work per tensor beyond a few C-level passes over the lists. Under
``torch.compile`` the host-side work of a step (planning, lazy state, AMP's and the non-finite
checks) runs outside the graph (one graph break, ``torch.optim`` has two) and the kernels inside.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from types import ModuleType
from typing import Any, ClassVar

import torch

from ._persist import new_step
from ._plan import Bucket, Plan, native_checks

__all__ = ["NonFiniteGradientError", "Stepping", "outside_graph"]

_HALF = (torch.float16, torch.bfloat16)
_GRAD = attrgetter("grad")


class NonFiniteGradientError(RuntimeError):
    """A gradient held NaN or inf and ``nonfinite="raise"`` was set; nothing was updated."""


class Stepping:
    """The step of :class:`.base.Optimizer` (a mixin: the algorithm's hooks ``_init_state``,
    ``_reference``, ``_fused``, ``_kernels`` and ``_fused_supported`` come from the class)."""

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
            if not step.skip_rest and plan.slow:
                reference = _readable_step(self)
                self._readable = None  # what the readable path keeps for this group's loop
                for i, state in plan.slow:
                    reference(self, group, plan.params[i], g[i], state)
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
        outside_graph(Stepping._reference_step, *self._host_work)

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
                state["step"] = new_step(device=p.device)  # where its kernels read it
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
                native_checks(device),
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


def _numbers(group: dict[str, Any]) -> dict[str, Any]:
    """``group`` with tensor betas as Python numbers (the math and the kernels take numbers;
    torch accepts tensor betas so that a compiled step with a schedule on them does not
    recompile). One check per group and step; a copy only when betas are tensors."""
    betas = group.get("betas")
    if betas is None or not any(torch.is_tensor(b) for b in betas):
        return group
    return {**group, "betas": tuple(float(b) for b in betas)}


_OUTSIDE: dict[Callable[..., Any], Callable[..., Any]] = {}


def outside_graph(*functions: Callable[..., Any]) -> Callable[..., Any] | None:
    """``torch.compiler.disable`` of each function, made once, outside any graph (from an
    ``_init_group``, which dynamo runs eagerly; a module-level ``disable`` would import
    ``torch._dynamo`` with descentlab, a second); the last one's wrapper."""
    for fn in functions:
        if fn not in _OUTSIDE:
            _OUTSIDE[fn] = torch.compiler.disable(fn)
    return _OUTSIDE[functions[-1]] if functions else None


def _readable_step(opt: Stepping) -> Callable[..., None]:
    """The readable path's step of one tensor; under ``torch.compile`` run outside the graph
    (its per-tensor scalars are Python numbers of the step count, which a graph would
    specialize on: a recompile every step)."""
    if torch.compiler.is_compiling():
        return _OUTSIDE[Stepping._reference_step]
    return type(opt)._reference_step


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
