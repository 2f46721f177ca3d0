"""Hypothesis strategies and checks shared by the fuzz tests."""

from __future__ import annotations

import inspect
import traceback
from pathlib import Path

import torch
from hypothesis import strategies as st

import descentlab
from descentlab.optim import REGISTRY, WRAPPERS

__all__ = ["CLASSES", "PACKAGE", "anything", "assert_raised_by_us", "hyperparameters"]

PACKAGE = Path(descentlab.__file__).parent
# Every class the registry can build (plain and wrappers), each once.
CLASSES = sorted(
    {e.cls for e in REGISTRY.values()} | set(WRAPPERS.values()), key=lambda c: c.__name__
)


def hyperparameters(cls: type) -> list[str]:
    """The keyword hyperparameters of ``cls`` (its signature and the base options)."""
    skip = {"self", "params", "base_optimizer", "options"}
    own = [n for n in inspect.signature(cls.__init__).parameters if n not in skip]
    return own + (["impl", "nonfinite"] if issubclass(cls, descentlab.optim.Optimizer) else [])


scalars = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-2, 2),
    st.integers(-(10**20), 10**20),
    st.booleans(),
    st.none(),
    st.text(max_size=5),
    st.sampled_from(["auto", "fused", "forloop", "skip", "raise", "ignore", "1e-3"]),
)
tensors = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(torch.tensor),
    st.lists(st.floats(-1, 1), min_size=0, max_size=3).map(torch.tensor),
    st.just(torch.tensor(0.5 + 1j)),
    st.just(torch.tensor(1, dtype=torch.int64)),
    st.just(torch.tensor(True)),
)
anything = st.one_of(
    scalars,
    tensors,
    st.tuples(scalars, scalars),
    st.lists(scalars, max_size=3),
    st.dictionaries(st.text(max_size=3), scalars, max_size=2),
)


def assert_raised_by_us(error: BaseException) -> None:
    """The error was raised by descentlab's own code, not from deep inside torch."""
    frames = traceback.extract_tb(error.__traceback__)
    assert frames and Path(frames[-1].filename).is_relative_to(PACKAGE), (
        f"{type(error).__name__} raised outside descentlab: {frames[-1].filename}:"
        f"{frames[-1].lineno}: {error}"
    )
