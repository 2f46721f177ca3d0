"""Reading stored JSON into records: each check returns the value or names the field it fails."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["INTEGER", "NUMBER", "TEXT", "TRUTH", "items", "table", "typed"]

Kind = tuple[Any, str]  # (the Python types, what the message says is expected)
TEXT: Kind = (str, "a string")
NUMBER: Kind = ((int, float), "a number")
INTEGER: Kind = (int, "an integer")
TRUTH: Kind = (bool, "true or false")


def typed(key: str, value: Any, kind: Kind) -> Any:
    """``value`` if it is ``None`` or of ``kind`` (a bool is not a number); else a ValueError
    naming ``key``."""
    types, what = kind
    if value is None or (
        isinstance(value, types) and (types is bool or not isinstance(value, bool))
    ):
        return value
    raise ValueError(f"{key}: {value!r}; expected {what}")


def table(key: str, value: Any) -> Mapping[str, Any]:
    """``value`` if it is a JSON object; else a ValueError naming ``key``."""
    if not isinstance(value, Mapping):
        raise ValueError(f"{key}: {value!r}; expected a table")
    return value


def items(key: str, value: Any, kind: Kind) -> tuple[Any, ...]:
    """The elements of a JSON array, each of ``kind`` (none ``null``); else a ValueError."""
    if not isinstance(value, list):
        raise ValueError(f"{key}: {value!r}; expected a list")
    for i, x in enumerate(value):
        if x is None:
            raise ValueError(f"{key}[{i}]: None; expected {kind[1]}")
        typed(f"{key}[{i}]", x, kind)
    return tuple(value)
