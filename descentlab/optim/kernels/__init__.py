"""The fast paths of the optimizers, apart from the readable per-tensor one.

* ``csrc/kernels.cpp`` and :mod:`.cpu`: descentlab's compiled CPU kernels, built on first use;
* :mod:`.ops`: those kernels registered as ``torch.library`` operators (``descentlab::*``), so
  that ``torch.compile`` traces through them;
* ``triton/``: the GPU kernels;
* :mod:`.foreach`: the same kernels as ``torch._foreach_*`` ops, for any other device;
* :mod:`._scalars`: the step-dependent scalars that all of them take, computed on the device.

Every kernel takes the same keyword arguments on every path. Nothing here is imported with
``descentlab``: a path's module is imported when a step first needs it.
"""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType

import torch

__all__ = ["select", "triton_unavailable_reason", "warn_once"]

_triton_error: list[str] = []  # why the Triton kernels cannot be imported, once known


def triton_unavailable_reason() -> str | None:
    """Why the Triton kernels cannot be used here, or ``None``; imports them the first time."""
    if not _triton_error:
        try:
            importlib.import_module(f"{__name__}.triton")
            _triton_error.append("")
        except ImportError as exc:
            _triton_error.append(f"Triton is not importable ({exc})")
    return _triton_error[0] or None


def select(
    device: torch.device,
    *,
    impl: str,
    torch_fused: bool,
    compiled: bool,
    build: bool,
    owner: str,
) -> ModuleType | None:
    """The kernels for a bucket of tensors on ``device``: a module of kernel functions, or
    ``None`` for torch's fused kernel (where ``torch_fused``: the same math).

    * ``impl="foreach"``: :mod:`.foreach`, on any device;
    * CPU: descentlab's compiled kernels as operators (:mod:`.ops`, where ``compiled``; built if
      missing where ``build``), else torch's fused kernel, else the foreach path;
    * CUDA: torch's fused kernel, else descentlab's Triton kernels, else the foreach path;
    * any other device (MPS, XPU, meta): the foreach path.

    ``impl="fused"`` raises where only the foreach path is left; ``impl="auto"`` warns once
    where descentlab's compiled kernels would apply but cannot be had.
    """
    if impl == "foreach":
        return importlib.import_module(f"{__name__}.foreach")
    reason = None
    if device.type == "cpu" and compiled:
        from . import cpu

        reason = cpu.unavailable_reason() if build else None if cpu.ready() else "not built"
        if reason is None:
            return importlib.import_module(f"{__name__}.ops")
        if not build:
            reason = None  # torch's fused kernel is the path meant where no build is asked for
    if torch_fused and device.type in ("cpu", "cuda"):
        return None
    if device.type == "cuda" and compiled:
        reason = triton_unavailable_reason()
        if reason is None:
            return importlib.import_module(f"{__name__}.triton")
    if impl == "fused":
        raise RuntimeError(
            f"{owner}(impl='fused'): no compiled kernel for {device.type} tensors here"
            f"{f' ({reason})' if reason else ''}; use impl='auto', 'foreach' or 'forloop'"
        )
    if reason is not None:
        warn_once(
            f"descentlab: the compiled kernels are unavailable ({reason}); {owner} takes the "
            "foreach path"
        )
    return importlib.import_module(f"{__name__}.foreach")


def warn_once(message: str, _seen: set[str] = set()) -> None:  # noqa: B006 - deliberate memo
    """Warn once per process per message."""
    if message not in _seen:
        _seen.add(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)
