"""descentlab: verified, fast, drop-in optimizers from the lecture, and a lab to compare them."""

from .optim import create, names, param_groups

__version__ = "0.1.0"

__all__ = ["__version__", "create", "names", "param_groups"]
