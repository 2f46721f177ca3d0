"""The template of every descentlab optimizer: its options, hyperparameter checks and the
hooks an algorithm fills in; the step is :mod:`._stepping`'s, the state dicts :mod:`._persist`'s.

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

The base class handles parameter groups, lazy state, closures, ``maximize`` (never changing
``p.grad`` in place), complex parameters (updated through their real views), sparse-gradient
errors, the non-finite policy, AMP's ``grad_scale``/``found_inf``, and the choice between the
paths, which is made once per group and kept while it holds (:mod:`._plan`).

Step counters are 0-d tensors on the parameter's device (as torch's capturable and fused paths
keep them), so no path reads a device value on the host.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any, ClassVar, Literal

import torch

from .. import checks as v
from . import kernels
from ._persist import (
    Persistence,
    copy_state,
    hooked_load,
    hooked_state_dict,
    restore_state,
)
from ._plan import Plan
from ._stepping import NonFiniteGradientError, Stepping, outside_graph

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
    "outside_graph",
    "restore_state",
    "split_options",
]

IMPLS = ("auto", "forloop", "fused", "foreach")
NONFINITE = ("ignore", "raise", "skip")
Impl = Literal["auto", "forloop", "fused", "foreach"]
NonFinite = Literal["ignore", "raise", "skip"]
Check = Callable[[str, Any], Any]

_FUSED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_PLAIN = (torch.nn.Parameter, torch.Tensor)  # never DTensors


class Optimizer(Stepping, Persistence, torch.optim.Optimizer):
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
        return copy_state(self, "_plans", "_traced_plans", "_readable")

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
