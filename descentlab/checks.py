"""Named value checks shared by every part that reads user input, and the one ``module:attr``
importer.

A :class:`Checks` raises one error class (the lab's :class:`~descentlab.lab.SpecError`, or any
``ValueError``), and every message names the key, the value and what is allowed, as
``"tuning.budget: 0; expected an integer >= 1 and <= 10000"``. Unknown keys get the closest
allowed ones as a hint, as the optimizer registry does.

    >>> check = Checks(ValueError)
    >>> check.integer("epochs", 3)
    3
    >>> check.choice("design", "gird", ("grid", "one-at-a-time"))
    Traceback (most recent call last):
    ...
    ValueError: design: 'gird'; allowed: 'grid', 'one-at-a-time' (did you mean 'grid'?)
"""

from __future__ import annotations

import difflib
import importlib
import math
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_INT", "Checks", "import_object"]

MAX_INT = 2**63 - 1
"""The largest seed ``torch.manual_seed`` takes; the default upper bound of an integer."""


def _hint(value: Any, allowed: Iterable[str]) -> str:
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, list(allowed), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass(frozen=True)
class Checks:
    """Checks that raise ``error`` (a ``ValueError`` subclass) with the key and the value."""

    error: type[ValueError] = ValueError

    def fail(self, key: str, value: Any, expected: str) -> ValueError:
        """The error for ``value`` at ``key`` (raise it): ``"key: value; expected ..."``."""
        return self.error(f"{key}: {value!r}; {expected}")

    def unknown(self, where: str, table: Mapping[str, Any], allowed: Iterable[str]) -> None:
        """Every key of ``table`` is allowed; ``where`` prefixes the key (``"tuning."``)."""
        allowed = tuple(allowed)
        for key in table:
            if key not in allowed:
                raise self.error(
                    f"{where}{key}: unknown key; allowed keys: {', '.join(allowed)}"
                    f"{_hint(key, allowed)}"
                )

    def integer(self, key: str, value: Any, *, minimum: int = 1, maximum: int = MAX_INT) -> int:
        """An integer (not a bool) in ``[minimum, maximum]``."""
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            raise self.fail(key, value, f"expected an integer >= {minimum} and <= {maximum}")
        return value

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
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = ok and abs(value) <= sys.float_info.max and math.isfinite(value)
        inside = ok and (value > lo if lo_open else value >= lo)
        inside = inside and (value < hi if hi_open else value <= hi)
        if not inside:
            if lo == 0 and lo_open and hi == math.inf:
                raise self.fail(key, value, "expected a positive finite number")
            left, right = "(" if lo_open else "[", ")" if hi_open else "]"
            interval = f"{left}{float(lo)}, {float(hi)}{right}"
            raise self.fail(key, value, f"expected a number in {interval}")
        return float(value)

    def positive(self, key: str, value: Any) -> float:
        """A positive finite number."""
        return self.number(key, value, 0.0, lo_open=True)

    def string(self, key: str, value: Any) -> str:
        """A non-empty string, stripped."""
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, value, "expected a non-empty string")
        return value.strip()

    def boolean(self, key: str, value: Any) -> bool:
        """``true`` or ``false``."""
        if not isinstance(value, bool):
            raise self.fail(key, value, "expected true or false")
        return value

    def table(self, key: str, value: Any) -> dict[str, Any]:
        """A table (a mapping), as a dict."""
        if not isinstance(value, Mapping):
            raise self.fail(key, value, "expected a table such as { lr = 0.1 }")
        return dict(value)

    def choice(self, key: str, value: Any, allowed: tuple[Any, ...]) -> Any:
        """One of ``allowed``."""
        if value not in allowed:
            names = ", ".join(map(repr, allowed))
            raise self.fail(key, value, f"allowed: {names}{_hint(value, map(str, allowed))}")
        return value

    def fields(
        self, key: str, value: Any, allowed: tuple[str, ...], shorthand: str
    ) -> dict[str, Any]:
        """A table of ``allowed`` keys, or its shorthand: a bare value for ``shorthand``."""
        table = dict(value) if isinstance(value, Mapping) else {shorthand: value}
        self.unknown(f"{key}.", table, allowed)
        return table


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
