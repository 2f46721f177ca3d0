"""What the demos' tables share: numbers to a few significant digits, medians with their IQRs."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["median_iqr", "number"]


def number(x: float, digits: int = 4) -> str:
    """``x`` to ``digits`` significant digits, without an exponent between 1e-3 and 1e7.

    >>> number(18743.9), number(0.000331), number(10.0462)
    ('18740', '0.000331', '10.05')
    """
    if not math.isfinite(x) or x == 0 or not 1e-3 <= abs(x) < 1e7:
        return f"{x:.{digits - 1}g}" if x else "0"
    return np.format_float_positional(x, precision=digits, unique=False, fractional=False, trim="-")


def median_iqr(values: Sequence[float], digits: int = 4) -> tuple[float, str]:
    """The median of ``values`` and their interquartile range as ``"[q1, q3]"``.

    NaN and ``"-"`` when ``values`` is empty.
    """
    if not len(values):
        return math.nan, "-"
    q1, med, q3 = np.percentile(np.asarray(values, dtype=float), [25, 50, 75])
    return float(med), f"[{number(q1, digits)}, {number(q3, digits)}]"
