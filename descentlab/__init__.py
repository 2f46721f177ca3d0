"""descentlab: verified, fast, drop-in optimizers from the lecture, and a lab to compare them."""

from . import checkpoint
from .optim import create, names, param_groups
from .schedules import lr_range_test

__version__ = "0.1.0"

__all__ = ["__version__", "checkpoint", "create", "lr_range_test", "names", "param_groups"]
