"""The step plan of one parameter group: which tensors take the fast path, worked out once.

Deciding per tensor whether the fast path can take it (dense, real, contiguous, on the kernel's
device, not a DTensor), creating lazy state and sorting the tensors into one kernel call per
device and dtype costs about 1.5 us per tensor in Python: 0.3 ms per step on a conv net's 198
tensors, 6 % of a step of plain SGD on benchmarks/step.py's workload (b). :class:`Plan` keeps the outcome (``Optimizer._plan`` builds it)
and :meth:`Plan.holds` checks each step, with C-level ``map`` passes over the lists rather than a
Python loop, that nothing it relied on has changed:

* the group's parameters are the same objects, in the same order, and ``impl`` and the
  optimizer's ``state`` table are the same (``add_param_group``, ``load_state_dict`` and
  unpickling drop every plan in any case);
* the gradients have the same pattern of ``None``, are contiguous where the fast path takes
  them, and not sparse (torch's ``p.grad`` setter and autograd already give a gradient the
  dtype, device and shape of its parameter); a plan holds no gradient, so that
  ``zero_grad(set_to_none=True)`` frees them as with torch.optim;
* the fast path's parameters still have the dtype and device of their call and are contiguous
  (``module.to(torch.float64)`` or ``p.data = ...`` changes them in place).

A bucket also keeps the kernels chosen for its device (:func:`.kernels.select`: compiled CPU
operators, Triton kernels, the foreach path, or torch's fused kernel), so that the choice (and a
first build of the CPU kernels) happens once per plan, outside any ``torch.compile`` graph.

When a check fails, ``Optimizer._plan`` plans the group again: the outcome is exactly what
planning every step would give. Not noticed: a gradient given another dtype or device in
place (``g.data = ...``), and a state dict replaced by hand (``opt.state[p] = {}``).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import repeat
from operator import attrgetter, is_
from types import ModuleType
from typing import Any

import torch

__all__ = ["Bucket", "Plan", "native_checks"]

_DTYPE = attrgetter("dtype")
_IS_CPU = attrgetter("is_cpu")
_DEVICE = attrgetter("device")
_contiguous = torch.Tensor.is_contiguous


@dataclass(eq=False)
class Bucket:
    """The tensors of one fast-path kernel call: one device and dtype."""

    index: list[int] | None  # their positions in the group's params; None: all, in order
    params: list[torch.Tensor]
    states: list[dict[str, Any]]
    device: torch.device
    dtype: torch.dtype
    kernels: ModuleType | None  # the kernel functions (see kernels.select); None: torch's
    native: Any = None  # the compiled CPU kernels' module, for their one-call ``fits`` check

    def grads(self, grads: list[Any]) -> list[torch.Tensor]:
        """This bucket's gradients out of the group's gradient list."""
        return grads if self.index is None else [grads[i] for i in self.index]

    def fits(self, grads: list[Any]) -> bool:
        """Whether the parameters still have this call's dtype and device and are contiguous,
        and their gradients are dense and contiguous (``grads``: the group's)."""
        grads = self.grads(grads)
        if self.native is not None:  # the same checks in one C++ pass (0.1 ms less a step)
            return self.native.fits(self.params, grads, self.dtype)
        try:  # is_contiguous raises for a sparse gradient
            if not all(map(_contiguous, grads)):
                return False
        except RuntimeError:
            return False
        return self.unchanged()

    def unchanged(self) -> bool:
        """Whether the parameters still have this call's dtype and device and are contiguous."""
        params = self.params
        if list(map(_DTYPE, params)).count(self.dtype) != len(params):
            return False
        if self.device.type == "cpu":
            on_device = all(map(_IS_CPU, params))
        else:
            on_device = list(map(_DEVICE, params)).count(self.device) == len(params)
        return on_device and all(map(_contiguous, params))


def native_checks(device: torch.device) -> Any:
    """The compiled CPU kernels where ``device`` is the CPU and they are built, else None."""
    if device.type != "cpu":
        return None
    from .kernels import cpu

    return cpu.ready()


@dataclass(eq=False)
class Plan:
    """How one parameter group steps while :meth:`holds` is true."""

    params: list[torch.Tensor]  # the group's parameters when planned
    missing: list[bool]  # which of them had no gradient (skipped)
    buckets: list[Bucket]  # the fast path's kernel calls
    slow: list[tuple[int, dict[str, Any]]]  # the readable path's (position, state)
    impl: str
    table: dict  # the optimizer's ``state`` that the states belong to

    def holds(self, params: list[torch.Tensor], grads: list[Any], impl: str, table: dict) -> bool:
        """Whether this plan still applies to the group's ``params`` and their ``grads``."""
        if (
            impl != self.impl
            or table is not self.table
            or len(params) != len(self.params)
            or not all(map(is_, params, self.params))
        ):
            return False
        if list(map(is_, grads, repeat(None))) != self.missing:
            return False
        if any(grads[i].is_sparse for i, _ in self.slow):
            return False
        return all(b.fits(grads) for b in self.buckets)
