"""Fuzzed hyperparameters: every registry class builds, or raises a ValueError naming them.

Any other exception (a TypeError from a comparison, a RuntimeError from torch) is a failure,
and so is a message that does not name the offending hyperparameter. What builds must also
take a step without an exception.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from descentlab.optim import SGD, WRAPPERS, HyperparameterError

from ._strategies import CLASSES, anything, assert_raised_by_us, hyperparameters

EXAMPLES = 300  # per class; deterministic (derandomized), reported in docs/reliability.md
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _build(cls, hp):
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
    if cls in WRAPPERS.values():
        return p, cls(SGD([p], lr=0.1), **hp)
    return p, cls([p], **hp)


def _check(cls, hp) -> None:
    try:
        p, opt = _build(cls, hp)
    except ValueError as e:
        assert isinstance(e, HyperparameterError), f"{cls.__name__}({hp}): {e!r}"
        assert_raised_by_us(e)
        named = [k for k in hp if k in str(e) or (k == "betas" and "beta" in str(e))]
        assert named, f"{cls.__name__}({hp}): the message names none of them: {e}"
        return
    p.grad = torch.tensor([0.3, -0.1, 0.0])
    opt.step()  # what was accepted must run


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@FUZZ
@given(data=st.data())
def test_fuzzed_hyperparameters_build_or_name_the_bad_one(cls, data):
    names = hyperparameters(cls)
    hp = data.draw(st.dictionaries(st.sampled_from(names), anything, min_size=1, max_size=3))
    _check(cls, hp)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@FUZZ
@given(key=st.text(min_size=1, max_size=12), value=anything)
def test_unknown_hyperparameters_are_named(cls, key, value):
    if key in hyperparameters(cls):
        return
    if cls in WRAPPERS.values() or key in ("self", "params", "base_optimizer"):
        # Python's own error (an unexpected keyword, or a positional argument named again),
        # raised before any of our code runs
        with pytest.raises(TypeError):
            _build(cls, {key: value})
        return
    with pytest.raises(HyperparameterError, match="Unknown hyperparameter") as info:
        _build(cls, {key: value})
    assert repr(key) in str(info.value)
