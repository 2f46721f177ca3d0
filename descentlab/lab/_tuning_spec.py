"""The ``[tuning]`` table of an experiment file, and the checks the rest of the file shares.

Every error raised here is a :class:`SpecError` naming the key and what is allowed (see
:mod:`descentlab.lab.spec` for the whole file, :mod:`descentlab.lab.tuning` for what the search
does with these keys).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..checks import MAX_INT, Checks
from ..store import Tuning
from ._errors import SpecError

__all__ = ["MAX_COUNT", "METHODS", "Tuning", "check", "integer", "parse_tuning", "seeds"]

METHODS = ("grid", "random", "defaults", "quasi-random")
_REFINED = ("random", "quasi-random")  # the methods whose budget a refinement may split
_TUNING = (
    "method",
    "budget",
    "lr_factor",
    "lr_range",
    "weight_decay_range",
    "seed",
    "seeds",
    "defaults",
    "epochs",
    "refine",
    "refine_factor",
)


check = Checks(SpecError)
MAX_COUNT = 10_000  # seeds, learning rates tried, epochs


def integer(key: str, value: Any, *, minimum: int = 1, maximum: int = MAX_INT) -> int:
    """An integer in ``[minimum, maximum]`` at ``key``."""
    return check.integer(key, value, minimum=minimum, maximum=maximum)


def seeds(value: Any, key: str = "seeds") -> tuple[int, ...]:
    """Seeds given as a count (``5``: 0..4) or as a list of distinct seeds."""
    if isinstance(value, int) and not isinstance(value, bool):
        return tuple(range(integer(key, value, maximum=MAX_COUNT)))
    if not isinstance(value, list) or not value:
        raise check.fail(key, value, "expected a count (5) or a non-empty list ([0, 1, 2])")
    chosen = tuple(integer(f"{key}[{i}]", s, minimum=0) for i, s in enumerate(value))
    if len(set(chosen)) != len(chosen):
        raise check.fail(key, value, "expected distinct seeds")
    return chosen


def _range(key: str, value: Any) -> tuple[float, float] | None:
    """A search range ``[low, high]`` of positive numbers (``None`` if not given)."""
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2:
        raise check.fail(key, value, "expected [low, high]")
    lo, hi = (check.positive(f"{key}[{i}]", x) for i, x in enumerate(value))
    if lo > hi:
        raise check.fail(key, value, "expected low <= high")
    return lo, hi


def parse_tuning(value: Any) -> Tuning:
    """The validated ``[tuning]`` table."""
    t = check.table("tuning", value)
    check.unknown("tuning.", t, _TUNING)
    method = check.choice("tuning.method", t.get("method", Tuning.method), METHODS)
    factor = check.positive("tuning.lr_factor", t.get("lr_factor", Tuning.lr_factor))
    if factor < 1:
        raise check.fail("tuning.lr_factor", factor, "expected a number >= 1")
    seed = t.get("seed")
    repeats = t.get("seeds")
    if seed is not None and repeats is not None:
        raise check.fail(
            "tuning.seeds", repeats, f"tuning.seed is also given ({seed!r}); give one of them"
        )
    epochs = t.get("epochs")
    budget = integer("tuning.budget", t.get("budget", Tuning.budget), maximum=MAX_COUNT)
    refine, refine_factor = _refine(t, method, budget)
    return Tuning(
        method=method,
        budget=budget,
        lr_factor=factor,
        lr_range=_range("tuning.lr_range", t.get("lr_range")),
        weight_decay_range=_range("tuning.weight_decay_range", t.get("weight_decay_range")),
        seeds=None if repeats is None else seeds(repeats, "tuning.seeds"),
        seed=None if seed is None else integer("tuning.seed", seed, minimum=0),
        defaults=check.boolean("tuning.defaults", t.get("defaults", False)),
        epochs=None if epochs is None else integer("tuning.epochs", epochs, maximum=MAX_COUNT),
        refine=refine,
        refine_factor=refine_factor,
    )


def _refine(t: Mapping[str, Any], method: str, budget: int) -> tuple[int, float]:
    """``tuning.refine`` (settings of the budget spent around the first stage's best) and
    ``tuning.refine_factor`` (how far on each side): the first stage keeps at least one."""
    refine = integer("tuning.refine", t.get("refine", 0), minimum=0, maximum=MAX_COUNT)
    if refine and refine >= budget:
        raise check.fail(
            "tuning.refine", refine, f"expected an integer >= 0 and < tuning.budget ({budget})"
        )
    if refine and method not in _REFINED:
        allowed = " or ".join(map(repr, _REFINED))
        raise check.fail(
            "tuning.refine", refine, f"method {method!r} draws no points to refine; use {allowed}"
        )
    factor = check.positive("tuning.refine_factor", t.get("refine_factor", Tuning.refine_factor))
    if factor <= 1:
        raise check.fail("tuning.refine_factor", factor, "expected a number > 1")
    return refine, factor
