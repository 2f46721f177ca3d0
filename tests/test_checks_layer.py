"""The one validation layer (descentlab.checks): the same checks under both styles, the lab's
(``key: value; expected ...``) and torch.optim's (``Invalid key: value; ...``), word for word."""

from __future__ import annotations

import doctest
import math
import pathlib

import pytest
import torch

import descentlab
import descentlab.checks as checks
from descentlab.checks import (
    MAX_INT,
    NONNEGATIVE,
    POSITIVE,
    SPEC,
    TORCH,
    UNIT_OPEN_RIGHT,
    Checks,
    HyperparameterError,
    Interval,
    check_betas,
    check_bool,
    check_choice,
    check_int,
    check_number,
    check_unknown,
    close_matches,
)

spec = Checks(ValueError, SPEC)
torch_style = Checks(ValueError, TORCH)
UNIT_RIGHT_CLOSED = Interval(0.0, 1.0, lo_open=True)


@pytest.mark.parametrize(
    ("value", "interval", "accepted"),
    [
        (0.5, UNIT_OPEN_RIGHT, True),
        (0, UNIT_OPEN_RIGHT, True),
        (1, UNIT_OPEN_RIGHT, False),
        (1.0, UNIT_RIGHT_CLOSED, True),
        (0.0, UNIT_RIGHT_CLOSED, False),
        (-1e-12, NONNEGATIVE, False),
        (math.nan, NONNEGATIVE, False),
        (10**400, NONNEGATIVE, False),  # past float64: the overflow guard
        (10**300, NONNEGATIVE, True),
        (True, NONNEGATIVE, False),
        ("1", NONNEGATIVE, False),
        (None, NONNEGATIVE, False),
        ([0.1], NONNEGATIVE, False),
    ],
)
def test_both_styles_take_and_refuse_the_same_numbers(value, interval, accepted):
    for style in (spec, torch_style):
        if accepted:
            assert style.number_in("x", value, interval) == float(value)
        else:
            with pytest.raises(ValueError):
                style.number_in("x", value, interval)


# The same check under both styles: the lab's wording, then torch.optim's.
WORDINGS = [
    (
        lambda c: c.number_in("lr", -0.1, NONNEGATIVE),
        "lr: -0.1; expected a number in [0.0, inf]",
        "Invalid lr: -0.1; valid range is [0, inf)",
    ),
    (
        lambda c: c.number_in("lr", "1", POSITIVE),
        "lr: '1'; expected a positive finite number",
        "Invalid lr: '1' (a str); expected a real number",
    ),
    (
        lambda c: c.number_in("x", math.nan, UNIT_OPEN_RIGHT),
        "x: nan; expected a number in [0.0, 1.0)",
        "Invalid x: nan; expected a real number",
    ),
    (
        lambda c: c.number_in("x", 10**400, NONNEGATIVE),
        f"x: {10**400}; expected a number in [0.0, inf]",
        f"Invalid x: {10**400}; too large for a float",
    ),
    (
        lambda c: c.number_in("eps", torch.tensor(0.1), POSITIVE),
        "eps: tensor(0.1000); expected a positive finite number",
        "Invalid eps: a tensor; expected a Python real number (only lr, betas may be a tensor)",
    ),
    (
        lambda c: c.number_in("lr", torch.ones(2), POSITIVE),
        "lr: tensor([1., 1.]); expected a positive finite number",
        "Invalid lr: a torch.float32 tensor of shape (2,); expected a floating-point scalar",
    ),
    (
        lambda c: c.integer_in("n", 1.0, Interval(1, 9)),
        "n: 1.0; expected an integer >= 1 and <= 9",
        "Invalid n: 1.0 (a float); expected an integer in [1, 9]",
    ),
    (
        lambda c: c.integer_in("n", 0, Interval(1, 9)),
        "n: 0; expected an integer >= 1 and <= 9",
        "Invalid n: 0; valid range is integers in [1, 9]",
    ),
    (
        lambda c: c.boolean("flag", 1),
        "flag: 1; expected true or false",
        "Invalid flag: 1; expected True or False",
    ),
    (
        lambda c: c.choice("mode", "exq", ("exp", "linear")),
        "mode: 'exq'; allowed: 'exp', 'linear' (did you mean 'exp'?)",
        "Invalid mode: 'exq'; expected one of ('exp', 'linear')",
    ),
    (
        lambda c: c.unknown("SGD", {"lrr": 1}, ("momentum", "lr")),
        "SGDlrr: unknown key; allowed keys: momentum, lr (did you mean 'lr'?)",
        "Unknown hyperparameter 'lrr' for SGD; did you mean lr? Valid: lr, momentum",
    ),
    (
        lambda c: c.unknown("SGD", {"zzz": 1}, ("momentum", "lr")),
        "SGDzzz: unknown key; allowed keys: momentum, lr",
        "Unknown hyperparameter 'zzz' for SGD Valid: lr, momentum",
    ),
    (
        lambda c: c.fail("pct_start", 0.01, "too short"),
        "pct_start: 0.01; too short",
        "Invalid pct_start: 0.01; too short",
    ),
]


@pytest.mark.parametrize(("call", "lab", "torch_optim"), WORDINGS)
def test_each_style_words_every_refusal(call, lab, torch_optim):
    assert str(_refusal(call, spec)) == lab
    assert str(_refusal(call, torch_style)) == torch_optim


def _refusal(call, checks_: Checks) -> ValueError:
    with pytest.raises(ValueError) as info:
        error = call(checks_)
        if isinstance(error, ValueError):  # fail() returns the error for the caller to raise
            raise error
    return info.value


def test_policies_differ_only_where_the_styles_say():
    # the lab wants finite numbers; torch.optim takes an infinite value an interval holds
    assert torch_style.number_in("x", math.inf, NONNEGATIVE) == math.inf
    with pytest.raises(ValueError, match="x: inf; expected a number in"):
        spec.number_in("x", math.inf, NONNEGATIVE, finite=True)
    # torch.optim takes a scalar float tensor for lr and betas, and returns it as it is
    lr = torch.tensor(0.1)
    assert torch_style.number_in("lr", lr, POSITIVE) is lr
    with pytest.raises(
        ValueError, match=r"^Invalid lr: tensor\(-1\.\); valid range is \(0, inf\)$"
    ):
        torch_style.number_in("lr", torch.tensor(-1.0), POSITIVE)
    assert torch_style.real("betas[0]", torch.tensor(0.5)) == 0.5
    with pytest.raises(ValueError, match="positive finite"):
        spec.number_in("lr", lr, POSITIVE)


def test_integers_are_capped_at_64_bits_by_default():
    assert spec.integer("seed", MAX_INT, minimum=0) == MAX_INT == 2**63 - 1
    with pytest.raises(ValueError, match=f"expected an integer >= 0 and <= {MAX_INT}"):
        spec.integer("seed", MAX_INT + 1, minimum=0)
    assert check_int("T_0", 2**70) == 2**70  # a torch-style interval says its own bound


def test_the_hyperparameter_front_end_raises_hyperparameter_error():
    calls = [
        lambda: check_number("lr", -1.0),
        lambda: check_int("k", 0),
        lambda: check_bool("nesterov", "yes"),
        lambda: check_choice("impl", "fast", ("auto", "foreach")),
        lambda: check_unknown("Adam", {"bta": 1}, ("betas",)),
        lambda: check_betas("betas", (0.9,)),
    ]
    for call in calls:
        with pytest.raises(HyperparameterError) as info:
            call()
        assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)
    assert descentlab.optim.HyperparameterError is HyperparameterError
    assert check_number("lr", 1) == 1.0 and isinstance(check_number("lr", 1), float)
    assert check_bool("nesterov", False) is False
    assert check_choice("impl", "auto", ("auto", "foreach")) == "auto"


@pytest.mark.parametrize(
    ("betas", "message"),
    [
        ((0.9,), "Invalid betas: (0.9,); expected a pair (beta1, beta2)"),
        ((0.9, torch.tensor(0.99)), "betas must be either both floats or both Tensors"),
        ((1.0, 0.999), "Invalid beta parameter at index 0 of betas: 1.0; valid range is [0, 1)"),
        ((0.9, "x"), "Invalid betas[1]: 'x' (a str); expected a real number"),
        ((0.9, math.nan), "Invalid betas[1]: nan; expected a real number"),
    ],
)
def test_check_betas_names_the_index(betas, message):
    with pytest.raises(HyperparameterError) as info:
        check_betas("betas", betas)
    assert message in str(info.value)
    check_betas("betas", (torch.tensor(0.9), torch.tensor(0.99)))


def test_close_matches_only_for_strings():
    assert close_matches("gird", ("grid", "x")) == ["grid"]
    assert close_matches("lrr", ("lr", "lrs", "l"), n=3) == ["lr", "lrs"]
    assert close_matches(3, ("3",)) == []


def test_the_docstring_examples_run():
    assert doctest.testmod(checks).failed == 0


def test_the_package_takes_its_checks_from_one_layer():
    root = pathlib.Path(descentlab.__file__).parent
    users = [
        p.relative_to(root).as_posix() for p in root.rglob("*.py") if "_validate" in p.read_text()
    ]
    assert users == [] and not (root / "optim" / "_validate.py").exists()
    assert descentlab.optim.HyperparameterError is HyperparameterError
    assert HyperparameterError.__module__ == "descentlab.checks"
