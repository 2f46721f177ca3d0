"""The old private home of the hyperparameter checks, now :mod:`descentlab.checks`; kept only
for ``tests/optim/test_dropin.py``, which imports the error class from here."""

from ..checks import HyperparameterError

__all__ = ["HyperparameterError"]
