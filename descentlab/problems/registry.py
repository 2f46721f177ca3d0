"""The problem registry: built-in problems by name, and users' problems as ``"module:function"``."""

from __future__ import annotations

import difflib

from ..checks import import_object
from ._base import Problem
from .charlm import CHARLM_LSTM
from .charlm_transformer import CHARLM_TRANSFORMER
from .digits import DIGITS_CNN, DIGITS_LOGREG, DIGITS_MLP
from .gan import GAN_MOG
from .mnist1d import MNIST1D_CNN, MNIST1D_MLP
from .rl import CARTPOLE_PG
from .torchvision_data import CIFAR10_RESNET20, FASHION_MNIST_CNN, MNIST_CNN
from .wilson import WILSON_LINREG

__all__ = ["PROBLEMS", "get", "names"]

PROBLEMS: dict[str, Problem] = {
    p.name: p
    for p in (
        DIGITS_LOGREG,
        DIGITS_MLP,
        DIGITS_CNN,
        MNIST1D_MLP,
        MNIST1D_CNN,
        CHARLM_LSTM,
        CHARLM_TRANSFORMER,
        WILSON_LINREG,
        GAN_MOG,
        CARTPOLE_PG,
        MNIST_CNN,
        FASHION_MNIST_CNN,
        CIFAR10_RESNET20,
    )
}


def names() -> list[str]:
    """The built-in problems' names."""
    return list(PROBLEMS)


def _user_problem(spec: str) -> Problem:
    try:
        factory = import_object(spec)
    except ValueError as e:
        raise ValueError(f"problem {spec!r}: {e}") from e
    problem = factory() if callable(factory) and not isinstance(factory, Problem) else factory
    if not isinstance(problem, Problem):
        raise ValueError(
            f"{spec!r} must be (or return) a descentlab.problems.Problem, "
            f"got {type(problem).__name__}"
        )
    return problem


def get(name: str) -> Problem:
    """The problem called ``name``, or ``"module:function"`` returning a :class:`Problem`.

    An unknown name raises ``ValueError`` listing the closest names.
    """
    if ":" in name:
        return _user_problem(name)
    key = name.strip().lower()
    if key in PROBLEMS:
        return PROBLEMS[key]
    close = difflib.get_close_matches(key, names(), n=3, cutoff=0.4)
    hint = f"; closest: {', '.join(close)}" if close else ""
    raise ValueError(f"Unknown problem {name!r}{hint}. Known: {', '.join(names())}")
