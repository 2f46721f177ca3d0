"""The one validation layer: named value checks for every part that reads user input, and the one
``module:attr`` importer.

A :class:`Checks` raises one error class and writes its messages in one :class:`Style`; the
checks themselves (intervals, real numbers, integers, choices, flags, unknown keys with close-match
hints, the float-overflow guard, the 64-bit cap) are written once. Two styles front them:

* :data:`SPEC`, the lab's experiment files: ``"tuning.budget: 0; expected an integer >= 1 and
  <= 10000"`` (with :class:`~descentlab.lab.SpecError`, or any ``ValueError``);
* :data:`TORCH`, the optimizers' and schedules' hyperparameters, worded as torch.optim words them:
  ``"Invalid lr: -0.1; valid range is [0, inf)"`` (with :class:`HyperparameterError`, through
  :data:`HYPERPARAMETERS` and the ``check_*`` functions).

    >>> check = Checks(ValueError)
    >>> check.integer("epochs", 3)
    3
    >>> check.choice("design", "gird", ("grid", "one-at-a-time"))
    Traceback (most recent call last):
    ...
    ValueError: design: 'gird'; allowed: 'grid', 'one-at-a-time' (did you mean 'grid'?)
    >>> Checks(ValueError, TORCH).number_in("lr", -0.1, NONNEGATIVE)
    Traceback (most recent call last):
    ...
    ValueError: Invalid lr: -0.1; valid range is [0, inf)
"""

from __future__ import annotations

import difflib
import importlib
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

__all__ = [
    "HYPERPARAMETERS",
    "MAX_INT",
    "NONNEGATIVE",
    "POSITIVE",
    "SPEC",
    "TORCH",
    "UNIT",
    "UNIT_OPEN_RIGHT",
    "Checks",
    "HyperparameterError",
    "Interval",
    "Style",
    "check_betas",
    "check_bool",
    "check_choice",
    "check_int",
    "check_number",
    "check_unknown",
    "close_matches",
    "import_object",
]

MAX_INT = 2**63 - 1
"""The largest seed ``torch.manual_seed`` takes; the default upper bound of an integer."""


class HyperparameterError(ValueError, TypeError):
    """A hyperparameter is invalid: wrong type, out of range, or unknown.

    It is both a ``ValueError`` (the documented contract) and a ``TypeError`` (what Python raises
    for an unexpected keyword argument), so either ``except`` clause catches it.
    """


@dataclass(frozen=True)
class Interval:
    """A real interval such as ``[0, 1)``; printed with ``math.inf`` bounds open."""

    lo: float = -math.inf
    hi: float = math.inf
    lo_open: bool = False
    hi_open: bool = False

    def __contains__(self, x: float) -> bool:
        above = x > self.lo if self.lo_open else x >= self.lo
        below = x < self.hi if self.hi_open else x <= self.hi
        return above and below

    def __str__(self) -> str:
        left = "(" if self.lo_open or self.lo == -math.inf else "["
        right = ")" if self.hi_open or self.hi == math.inf else "]"
        return f"{left}{_fmt(self.lo)}, {_fmt(self.hi)}{right}"


NONNEGATIVE = Interval(0.0)
POSITIVE = Interval(0.0, lo_open=True)
UNIT_OPEN_RIGHT = Interval(0.0, 1.0, hi_open=True)  # [0, 1): betas, momentum
UNIT = Interval(0.0, 1.0)


def _fmt(x: float) -> str:
    if x in (math.inf, -math.inf):
        return "inf" if x > 0 else "-inf"
    return f"{x:g}"


def close_matches(
    word: Any, allowed: Iterable[str], *, n: int = 1, cutoff: float = 0.6
) -> list[str]:
    """The (at most ``n``) names of ``allowed`` closest to ``word``; none unless it is a string."""
    if not isinstance(word, str):
        return []
    return difflib.get_close_matches(word, list(allowed), n=n, cutoff=cutoff)


class Style(ABC):
    """How a refusal reads: a check decides, its style writes the message.

    ``why`` says what a number lacks: ``"type"`` (not a real number), ``"tensor"`` (a tensor
    where the style takes none), ``"shape"`` (a tensor but not a floating-point scalar),
    ``"overflow"`` (too large for a float), ``"nan"`` or ``"range"``; an integer's is ``"type"``
    or ``"range"``.
    """

    tensors: tuple[str, ...] = ()
    """The keys whose value may be a one-element floating-point tensor."""

    @abstractmethod
    def head(self, key: str, value: Any) -> str:
        """What every message about ``value`` at ``key`` starts with."""

    @abstractmethod
    def number(self, key: str, value: Any, interval: Interval, why: str) -> str:
        """``value`` is not a real number in ``interval``."""

    @abstractmethod
    def integer(self, key: str, value: Any, interval: Interval, why: str) -> str:
        """``value`` is not an integer in ``interval``."""

    @abstractmethod
    def boolean(self, key: str, value: Any) -> str:
        """``value`` is not a bool."""

    @abstractmethod
    def choice(self, key: str, value: Any, allowed: tuple[Any, ...]) -> str:
        """``value`` is none of ``allowed``."""

    @abstractmethod
    def unknown(self, where: str, key: str, allowed: tuple[str, ...]) -> str:
        """``key`` is not one of ``allowed`` (``where`` says whose keys they are)."""


class _Spec(Style):
    """The lab's wording: ``"key: value; expected ..."``; a refused number names its interval."""

    def head(self, key: str, value: Any) -> str:
        return f"{key}: {value!r}"

    def number(self, key: str, value: Any, interval: Interval, why: str) -> str:
        i = interval
        if i.lo == 0 and i.lo_open and i.hi == math.inf:
            return f"{self.head(key, value)}; expected a positive finite number"
        left, right = "(" if i.lo_open else "[", ")" if i.hi_open else "]"
        bounds = f"{left}{float(i.lo)}, {float(i.hi)}{right}"
        return f"{self.head(key, value)}; expected a number in {bounds}"

    def integer(self, key: str, value: Any, interval: Interval, why: str) -> str:
        bounds = f">= {interval.lo} and <= {interval.hi}"
        return f"{self.head(key, value)}; expected an integer {bounds}"

    def boolean(self, key: str, value: Any) -> str:
        return f"{self.head(key, value)}; expected true or false"

    def choice(self, key: str, value: Any, allowed: tuple[Any, ...]) -> str:
        names = ", ".join(map(repr, allowed))
        return f"{self.head(key, value)}; allowed: {names}{_hint(value, map(str, allowed))}"

    def unknown(self, where: str, key: str, allowed: tuple[str, ...]) -> str:
        return f"{where}{key}: unknown key; allowed keys: {', '.join(allowed)}{_hint(key, allowed)}"


def _hint(value: Any, allowed: Iterable[str]) -> str:
    close = close_matches(value, allowed)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Torch(Style):
    """torch.optim's wording: ``"Invalid lr: -0.1; valid range is [0, inf)"``."""

    # The values torch.optim accepts as tensors (lr, and Adam's betas): a tensor that a schedule
    # changes does not recompile under torch.compile (see CONVENTIONS). The algorithms read every
    # other value as a Python number (and betas as numbers too, see optim.base._numbers).
    tensors = ("lr", "betas")

    def head(self, key: str, value: Any) -> str:
        return f"Invalid {key}: {value!r}"

    def number(self, key: str, value: Any, interval: Interval, why: str) -> str:
        if why == "type":
            return f"Invalid {key}: {value!r} (a {type(value).__name__}); expected a real number"
        if why == "tensor":
            return (
                f"Invalid {key}: a tensor; expected a Python real number "
                f"(only {', '.join(self.tensors)} may be a tensor)"
            )
        if why == "shape":
            return (
                f"Invalid {key}: a {value.dtype} tensor of shape {tuple(value.shape)}; "
                "expected a floating-point scalar"
            )
        if why == "overflow":
            return f"Invalid {key}: {value}; too large for a float"
        if why == "nan":
            return f"Invalid {key}: nan; expected a real number"
        return f"{self.head(key, value)}; valid range is {interval}"

    def integer(self, key: str, value: Any, interval: Interval, why: str) -> str:
        if why == "type":
            kind = type(value).__name__
            return f"Invalid {key}: {value!r} (a {kind}); expected an integer in {interval}"
        return f"{self.head(key, value)}; valid range is integers in {interval}"

    def boolean(self, key: str, value: Any) -> str:
        return f"{self.head(key, value)}; expected True or False"

    def choice(self, key: str, value: Any, allowed: tuple[Any, ...]) -> str:
        return f"{self.head(key, value)}; expected one of {allowed}"

    def unknown(self, where: str, key: str, allowed: tuple[str, ...]) -> str:
        known = sorted(allowed)
        close = close_matches(key, known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        return f"Unknown hyperparameter {key!r} for {where}{hint} Valid: {', '.join(known)}"


SPEC: Style = _Spec()
"""The lab's wording (experiment files)."""
TORCH: Style = _Torch()
"""torch.optim's wording (hyperparameters of optimizers and schedules)."""


@dataclass(frozen=True)
class Checks:
    """Checks that raise ``error`` (a ``ValueError`` subclass) with messages in ``style``."""

    error: type[ValueError] = ValueError
    style: Style = SPEC

    def fail(self, key: str, value: Any, expected: str) -> ValueError:
        """The error for ``value`` at ``key`` (raise it): ``"key: value; expected ..."``."""
        return self.error(f"{self.style.head(key, value)}; {expected}")

    def unknown(self, where: str, table: Mapping[str, Any], allowed: Iterable[str]) -> None:
        """Every key of ``table`` is allowed; ``where`` prefixes the key (``"tuning."``) or names
        the owner (``"SGD"``), as the style has it."""
        allowed = tuple(allowed)
        for key in table:
            if key not in allowed:
                raise self.error(self.style.unknown(where, key, allowed))

    def real(self, key: str, value: Any, interval: Interval = Interval()) -> float:
        """``value`` as a float: a real number (not a bool, not nan) that a float holds, or a
        one-element floating-point tensor at a key of the style's ``tensors``."""
        x, why = math.nan, ""
        if isinstance(value, bool) or not isinstance(value, (int, float, torch.Tensor)):
            why = "type"
        elif isinstance(value, torch.Tensor):
            if key.partition("[")[0] not in self.style.tensors:
                why = "tensor"
            elif value.numel() != 1 or not value.is_floating_point():
                why = "shape"
            else:
                x = value.item()
        else:
            try:
                x = float(value)
            except OverflowError:  # an int past float64
                why = "overflow"
        if not why and math.isnan(x):
            why = "nan"
        if why:
            raise self.error(self.style.number(key, value, interval, why))
        return x

    def number_in(self, key: str, value: Any, interval: Interval, *, finite: bool = False) -> Any:
        """A real number (see :meth:`real`) in ``interval``, and finite if told, as a float (a
        tensor as it is)."""
        x = self.real(key, value, interval)
        if x not in interval or (finite and math.isinf(x)):
            raise self.error(self.style.number(key, value, interval, "range"))
        return value if isinstance(value, torch.Tensor) else x

    def integer_in(self, key: str, value: Any, interval: Interval) -> int:
        """An integer (not a bool) in ``interval``."""
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(self.style.integer(key, value, interval, "type"))
        if value not in interval:
            raise self.error(self.style.integer(key, value, interval, "range"))
        return value

    def integer(self, key: str, value: Any, *, minimum: int = 1, maximum: int = MAX_INT) -> int:
        """An integer (not a bool) in ``[minimum, maximum]`` (by default at most 64 bits)."""
        return self.integer_in(key, value, Interval(minimum, maximum))

    def number(
        self,
        key: str,
        value: Any,
        lo: float = -math.inf,
        hi: float = math.inf,
        *,
        lo_open: bool = False,
        hi_open: bool = True,
    ) -> float:
        """A finite real number (not a bool) in the interval from ``lo`` to ``hi``, as a float.

        The interval is closed at ``lo`` and open at ``hi`` unless told otherwise.
        """
        return self.number_in(key, value, Interval(lo, hi, lo_open, hi_open), finite=True)

    def positive(self, key: str, value: Any) -> float:
        """A positive finite number."""
        return self.number(key, value, 0.0, lo_open=True)

    def string(self, key: str, value: Any) -> str:
        """A non-empty string, stripped."""
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, value, "expected a non-empty string")
        return value.strip()

    def boolean(self, key: str, value: Any) -> bool:
        """``True`` or ``False``."""
        if not isinstance(value, bool):
            raise self.error(self.style.boolean(key, value))
        return value

    def table(self, key: str, value: Any) -> dict[str, Any]:
        """A table (a mapping), as a dict."""
        if not isinstance(value, Mapping):
            raise self.fail(key, value, "expected a table such as { lr = 0.1 }")
        return dict(value)

    def choice(self, key: str, value: Any, allowed: Iterable[Any]) -> Any:
        """One of ``allowed``."""
        allowed = tuple(allowed)
        if value not in allowed:
            raise self.error(self.style.choice(key, value, allowed))
        return value

    def fields(
        self, key: str, value: Any, allowed: tuple[str, ...], shorthand: str
    ) -> dict[str, Any]:
        """A table of ``allowed`` keys, or its shorthand: a bare value for ``shorthand``."""
        table = dict(value) if isinstance(value, Mapping) else {shorthand: value}
        self.unknown(f"{key}.", table, allowed)
        return table


HYPERPARAMETERS = Checks(HyperparameterError, TORCH)
"""The checks of optimizers' and schedules' arguments; the ``check_*`` functions are its own."""


def check_number(name: str, value: Any, interval: Interval = NONNEGATIVE) -> Any:
    """Check that ``value`` is a real number (or, for ``lr``, a one-element float tensor) in
    ``interval``; return it as a Python float (a tensor as it is)."""
    return HYPERPARAMETERS.number_in(name, value, interval)


def check_int(name: str, value: Any, interval: Interval = Interval(1.0)) -> int:
    """Check that ``value`` is an integer in ``interval``."""
    return HYPERPARAMETERS.integer_in(name, value, interval)


def check_bool(name: str, value: Any) -> bool:
    """Check that ``value`` is a bool."""
    return HYPERPARAMETERS.boolean(name, value)


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """Check that ``value`` is one of ``choices``."""
    return HYPERPARAMETERS.choice(name, value, choices)


def check_unknown(owner: str, given: Mapping[str, Any], known: Iterable[str]) -> None:
    """Reject keyword arguments that ``owner`` does not take, suggesting the closest names."""
    HYPERPARAMETERS.unknown(owner, given, known)


def check_betas(name: str, betas: Any, interval: Interval = UNIT_OPEN_RIGHT) -> None:
    """Check a pair of averaging coefficients, each in ``interval`` (by default ``[0, 1)``)."""
    hp = HYPERPARAMETERS
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise hp.fail(name, betas, "expected a pair (beta1, beta2)")
    if isinstance(betas[0], torch.Tensor) != isinstance(betas[1], torch.Tensor):
        raise hp.fail(name, betas, "betas must be either both floats or both Tensors")
    for i, beta in enumerate(betas):
        if hp.real(f"{name}[{i}]", beta, interval) not in interval:
            raise hp.error(
                f"Invalid beta parameter at index {i} of {name}: {beta!r}; "
                f"valid range is {interval}"
            )


def import_object(path: str) -> Any:
    """The object ``"package.module:attr"`` (or ``"package.module.attr"``) names.

    Raises:
        ValueError: the name is not importable; the message says which part is missing.
    """
    module, sep, attr = path.partition(":")
    if not sep:
        module, _, attr = path.rpartition(".")
    if not module or not attr:
        raise ValueError(
            f"{path!r} is not an importable name (write 'module:Class' or 'module.Class')"
        )
    try:
        obj = importlib.import_module(module)
    except ImportError as e:
        raise ValueError(f"cannot import module {module!r} for {path!r}: {e}") from e
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"module {module!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj
