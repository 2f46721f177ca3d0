"""The shared checks (descentlab.checks): every check accepts its values and names key, value and
what is allowed when it refuses; the one importer says which part of a name is missing."""

from __future__ import annotations

import math

import pytest

from descentlab.checks import Checks, import_object
from descentlab.lab import SpecError

check = Checks(SpecError)


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda: check.integer("n", 3), 3),
        (lambda: check.integer("n", 0, minimum=0), 0),
        (lambda: check.number("x", 0.5, 0.0, 1.0), 0.5),
        (lambda: check.number("x", 1, 0.0, 1.0, hi_open=False), 1.0),
        (lambda: check.positive("lr", 1e-3), 1e-3),
        (lambda: check.string("name", "  adam "), "adam"),
        (lambda: check.boolean("flag", False), False),
        (lambda: check.table("t", {"a": 1}), {"a": 1}),
        (lambda: check.choice("c", "b", ("a", "b")), "b"),
        (lambda: check.fields("w", 0.1, ("value", "coupling"), "value"), {"value": 0.1}),
    ],
)
def test_checks_return_the_value(call, expected):
    assert call() == expected


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: check.integer("n", True), "n: True; expected an integer >= 1 and <= "),
        (lambda: check.integer("n", 11, maximum=10), "n: 11; expected an integer >= 1 and <= 10"),
        (lambda: check.number("x", 1.0, 0.0, 1.0), r"x: 1.0; expected a number in [0.0, 1.0)"),
        (lambda: check.number("x", math.nan), "x: nan; expected a number in [-inf, inf)"),
        (lambda: check.number("x", 0, 0.0, 1.0, lo_open=True), "x: 0; expected a number in (0.0"),
        (lambda: check.positive("lr", 0), "lr: 0; expected a positive finite number"),
        (lambda: check.positive("lr", "1"), "lr: '1'; expected a positive finite number"),
        (lambda: check.string("name", " "), "name: ' '; expected a non-empty string"),
        (lambda: check.boolean("flag", 1), "flag: 1; expected true or false"),
        (lambda: check.table("t", [1]), "t: [1]; expected a table"),
        (lambda: check.choice("c", "gird", ("grid", "x")), "c: 'gird'; allowed: 'grid', 'x'"),
        (lambda: check.choice("c", "gird", ("grid",)), "(did you mean 'grid'?)"),
        (lambda: check.unknown("t.", {"budgt": 1}, ("budget",)), "t.budgt: unknown key; allowed"),
        (lambda: check.unknown("t.", {"budgt": 1}, ("budget",)), "did you mean 'budget'?"),
        (lambda: check.fields("w", {"v": 1}, ("value",), "value"), "w.v: unknown key"),
    ],
)
def test_checks_name_the_key_the_value_and_what_is_allowed(call, message):
    with pytest.raises(SpecError) as info:
        call()
    assert message in str(info.value)


def test_checks_raise_their_error_class():
    with pytest.raises(ValueError) as info:
        Checks().integer("n", 0)
    assert type(info.value) is ValueError


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("nomodule", "is not an importable name"),
        ("no_such_module_xyz:thing", "cannot import module 'no_such_module_xyz'"),
        ("math:nothing", "module 'math' has no attribute 'nothing'"),
    ],
)
def test_import_object_says_what_is_missing(path, message):
    with pytest.raises(ValueError, match=message):
        import_object(path)


def test_import_object_takes_both_spellings():
    assert import_object("math:sqrt") is math.sqrt is import_object("math.sqrt")
    assert import_object("torch.optim:Adam.step") is import_object("torch.optim.Adam").step
