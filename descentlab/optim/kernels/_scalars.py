"""The step counters of the fast paths and what every algorithm's scalars are computed from.

Every fast path (the CPU kernels, the Triton kernels, the foreach path) takes the per-tensor
scalars of a step (bias corrections, NAdam's step sizes, RAdam's rectification, AdaBound's
bounds) as 1-D float64 tensors, one value per parameter tensor, on the parameters' device. Each
algorithm computes its own beside its equations (``adam.bias_corrections``,
``radam.rectified``, ...) with a handful of vector ops from the step vector that
:func:`advance` returns: nothing reads a device value on the host (no sync), and under
``torch.compile`` the step and everything derived from it stay tensors, so a new step (or a
tensor ``lr`` changed in place) does not recompile. The arithmetic is in float64, as the
readable path computes it in Python floats; ``lr`` may be a float or a 0-d tensor throughout.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = [
    "add_one",
    "advance",
    "assign",
    "at",
    "cpu_kernels",
    "decay",
    "gather",
    "scalar_dtype",
]

Scalar = float | torch.Tensor


def scalar_dtype(device: torch.device) -> torch.dtype:
    """float64, except where the device has none (MPS): then float32."""
    return torch.float32 if device.type == "mps" else torch.float64


def advance(states: list[dict[str, Any]]) -> torch.Tensor:
    """Add one to each tensor's step counter; the new steps as one 1-D vector.

    One C++ call for CPU counters (when the kernels are built), else two ops whatever the number
    of tensors (``_foreach_add_`` and ``stack``); the vector lives where the counters do.
    """
    steps = [s["step"] for s in states]
    module = cpu_kernels(steps[0])
    if module is not None:
        return module.advance_steps(steps)
    torch._foreach_add_(steps, 1)
    return torch.stack(steps).to(scalar_dtype(steps[0].device))


def add_one(states: list[dict[str, Any]]) -> None:
    """Add one to each tensor's step counter (for torch's fused kernels, which read them)."""
    steps = [s["step"] for s in states]
    module = cpu_kernels(steps[0])
    if module is not None:
        module.advance_steps(steps)
    else:
        torch._foreach_add_(steps, 1)


def gather(scalars: list[torch.Tensor]) -> torch.Tensor:
    """The values of 0-d tensors (one dtype and device) as one vector of their dtype: one C++
    call for CPU tensors outside ``torch.compile`` (when the kernels are built), else a stack."""
    module = cpu_kernels(scalars[0])
    if module is not None and scalars[0].dtype in (torch.float32, torch.float64):
        return module.read_scalars(scalars)
    return torch.stack(scalars)


def assign(scalars: list[torch.Tensor], values: torch.Tensor) -> None:
    """Set each 0-d tensor of ``scalars`` (one dtype and device) to its value in ``values``.

    One C++ call for CPU tensors outside ``torch.compile`` (when the kernels are built), else
    one ``_foreach_copy_``."""
    module = cpu_kernels(scalars[0])
    if module is not None and values.is_cpu:
        module.set_scalars(scalars, values.to(torch.float64))
    else:
        torch._foreach_copy_(scalars, list(values.to(scalars[0].dtype).unbind()))


def cpu_kernels(step: torch.Tensor) -> Any:
    """The compiled CPU kernels for CPU step counters outside ``torch.compile``, when built:
    one C++ loop for all counters (``torch._foreach_add_`` on 0-d CPU tensors dispatches per
    tensor: 0.9 ms for 198 counters, measured), else None."""
    if not step.is_cpu or torch.compiler.is_compiling():
        return None
    from . import cpu

    return cpu.ready()


def at(t: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """One step count as the vector these functions take (the readable path's scalars)."""
    device = torch.device(device)
    return torch.tensor([float(t)], dtype=scalar_dtype(device), device=device)


def decay(group: dict[str, Any]) -> tuple[float, Scalar]:
    """The group's weight decay as ``(l2, factor)``: L2's coefficient added to the gradient and
    the decoupled factor ``1 - lr wd`` applied to the weights (0 and 1 where unused)."""
    wd = group["weight_decay"]
    if wd != 0 and group.get("decoupled_weight_decay", False):
        return 0.0, 1 - group["lr"] * wd
    return wd, 1.0
