"""Shared hyperparameter checks.

Every check raises :class:`HyperparameterError` (a ``ValueError``) whose message names the
parameter, the value and the valid range, in the style of torch.optim
(``Invalid beta parameter at index 0: 1.0``).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

__all__ = [
    "HyperparameterError",
    "Interval",
    "check_betas",
    "check_bool",
    "check_choice",
    "check_int",
    "check_number",
    "check_unknown",
]


class HyperparameterError(ValueError, TypeError):
    """A hyperparameter is invalid: wrong type, out of range, or unknown.

    It is both a ``ValueError`` (the documented contract) and a ``TypeError`` (what Python raises
    for an unexpected keyword argument), so either ``except`` clause catches it.
    """


@dataclass(frozen=True)
class Interval:
    """A real interval such as ``[0, 1)``; ``math.inf`` bounds are open."""

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


# The values torch.optim accepts as tensors (lr, and Adam's betas): a tensor that a schedule changes
# does not recompile under torch.compile (see CONVENTIONS). The algorithms read every other value
# as a Python number (and betas as numbers too, see base._numbers).
TENSOR_OK = ("lr", "betas")


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, torch.Tensor)):
        raise HyperparameterError(
            f"Invalid {name}: {value!r} (a {type(value).__name__}); expected a real number"
        )
    if isinstance(value, torch.Tensor):
        if name.partition("[")[0] not in TENSOR_OK:
            raise HyperparameterError(
                f"Invalid {name}: a tensor; expected a Python real number "
                f"(only {', '.join(TENSOR_OK)} may be a tensor)"
            )
        if value.numel() != 1 or not value.is_floating_point():
            raise HyperparameterError(
                f"Invalid {name}: a {value.dtype} tensor of shape {tuple(value.shape)}; "
                "expected a floating-point scalar"
            )
        value = value.item()
    try:
        value = float(value)
    except OverflowError:
        raise HyperparameterError(f"Invalid {name}: {value}; too large for a float") from None
    if math.isnan(value):
        raise HyperparameterError(f"Invalid {name}: nan; expected a real number")
    return value


def check_number(name: str, value: Any, interval: Interval = NONNEGATIVE) -> Any:
    """Check that ``value`` is a real number (or, for ``lr``, a one-element float tensor) in
    ``interval``; return it as a Python float (a tensor as it is)."""
    x = _as_float(name, value)
    if x not in interval:
        raise HyperparameterError(f"Invalid {name}: {value!r}; valid range is {interval}")
    return value if isinstance(value, torch.Tensor) else x


def check_int(name: str, value: Any, interval: Interval = Interval(1.0)) -> int:
    """Check that ``value`` is an integer in ``interval``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise HyperparameterError(
            f"Invalid {name}: {value!r} (a {type(value).__name__}); expected an integer in {interval}"
        )
    if value not in interval:
        raise HyperparameterError(
            f"Invalid {name}: {value!r}; valid range is integers in {interval}"
        )
    return value


def check_betas(name: str, betas: Any, interval: Interval = UNIT_OPEN_RIGHT) -> None:
    """Check a pair of averaging coefficients, each in ``interval`` (by default ``[0, 1)``)."""
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise HyperparameterError(f"Invalid {name}: {betas!r}; expected a pair (beta1, beta2)")
    if isinstance(betas[0], torch.Tensor) != isinstance(betas[1], torch.Tensor):
        raise HyperparameterError(
            f"Invalid {name}: {betas!r}; betas must be either both floats or both Tensors"
        )
    for i, beta in enumerate(betas):
        x = _as_float(f"{name}[{i}]", beta)
        if x not in interval:
            raise HyperparameterError(
                f"Invalid beta parameter at index {i} of {name}: {beta!r}; "
                f"valid range is {interval}"
            )


def check_bool(name: str, value: Any) -> None:
    """Check that ``value`` is a bool."""
    if not isinstance(value, bool):
        raise HyperparameterError(f"Invalid {name}: {value!r}; expected True or False")


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> None:
    """Check that ``value`` is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise HyperparameterError(f"Invalid {name}: {value!r}; expected one of {choices}")


def check_unknown(owner: str, given: Mapping[str, Any], known: Iterable[str]) -> None:
    """Reject keyword arguments that ``owner`` does not take, suggesting the closest names."""
    known = sorted(known)
    for key in given:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise HyperparameterError(
                f"Unknown hyperparameter {key!r} for {owner}{hint} Valid: {', '.join(known)}"
            )
