"""Where trials run: ``device = "auto" | "cpu" | "cuda" | "cuda:N" | "mps"``, and the GPU slots.

:func:`resolve` turns a device name into a ``torch.device`` on this machine, or raises
:class:`DeviceError` (one line: what was asked and what torch sees) before anything runs.
``"auto"`` is every CUDA GPU when torch sees one (CUDA, else Apple's MPS), else the CPU. A trial
records the device *type* (its key); which GPU of several runs it is a slot (:func:`slots`):
``trials_per_gpu`` trials share each GPU.
"""

from __future__ import annotations

import re

import torch

__all__ = ["DEVICES", "DeviceError", "check_name", "resolve", "slots"]

DEVICES = ("auto", "cpu", "cuda", "mps")
_NAME = re.compile(r"^(auto|cpu|mps|cuda)(?::(\d+))?$")


class DeviceError(ValueError):
    """The device asked for is not on this machine (or is not a device name)."""


def check_name(name: object) -> str:
    """``name`` if it is a device name (``"cuda:1"`` included), else a ``DeviceError``."""
    m = _NAME.match(name) if isinstance(name, str) else None
    if m is None or (m.group(2) is not None and m.group(1) != "cuda"):
        raise DeviceError(
            f"device: {name!r}; allowed: 'auto', 'cpu', 'cuda', 'cuda:N' (N a GPU index), 'mps'"
        )
    return name


def _mps() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def resolve(name: str) -> torch.device:
    """The ``torch.device`` that ``name`` means here; a DeviceError if it is not here."""
    check_name(name)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps() else torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "CPU only"
            raise DeviceError(
                f"device {name!r}: torch {torch.__version__} ({build}) sees no CUDA GPU on this "
                "machine; use cpu or auto"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise DeviceError(
                f"device {name!r}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}"
            )
    if device.type == "mps" and not _mps():
        raise DeviceError(f"device {name!r}: torch sees no Apple MPS device on this machine")
    return device


def slots(device: torch.device, trials_per_gpu: int = 1) -> list[torch.device]:
    """The devices of the trials that run at once: ``trials_per_gpu`` on each GPU ``device``
    names (``cuda``: every GPU; ``cuda:N``: that one); one slot on a CPU or MPS device."""
    if trials_per_gpu < 1:
        raise ValueError(f"trials_per_gpu: {trials_per_gpu}; expected an integer >= 1")
    if device.type != "cuda":
        return [device]
    gpus = [device.index] if device.index is not None else range(torch.cuda.device_count())
    return [torch.device("cuda", i) for i in gpus for _ in range(trials_per_gpu)]
