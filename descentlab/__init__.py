"""descentlab: verified, fast, drop-in optimizers from the lecture, and a lab to compare them.

``optim``, ``schedules`` and ``checkpoint`` load with the package; the other subpackages
(``lab``, ``problems``, ``store``, ``report``, ``viz``, ``diagnostics``, ``demos``) load on first
use (PEP 562), so ``import descentlab`` pulls in neither the lab nor matplotlib.
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

from . import checkpoint, optim, schedules
from .optim import create, names, param_groups
from .schedules import lr_range_test

__version__ = "0.1.0"

_LAZY = ("demos", "diagnostics", "lab", "problems", "report", "store", "viz")

__all__ = [
    "__version__",
    "checkpoint",
    "create",
    "lr_range_test",
    "names",
    "optim",
    "param_groups",
    "schedules",
    *_LAZY,
]


def __getattr__(name: str) -> ModuleType:
    if name in _LAZY:
        module = import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
