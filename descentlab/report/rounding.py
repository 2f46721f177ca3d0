"""Statistics as text, each value rounded to its spread: ``0.966 ± 0.005``, not ``0.9656 ± 0.005152``.

The spread keeps two significant digits when its first digit is 1 or 2 (``0.015``, ``0.24``) and one
otherwise (``0.005``, ``0.4``); the value, and the quartiles of a median [IQR], end at the same
decimal place (a statistic shown without its spread keeps at least 2 significant digits).
Without a usable spread (zero, NaN) the value keeps 4 significant digits. Values
below 1e-4 or from 1e6 on print in scientific notation.
"""

from __future__ import annotations

import math

__all__ = ["mean_std", "median_iqr", "number", "rounded"]

_SIGNIFICANT = 4  # digits of a value without a spread
_MAX_DIGITS = 6  # at most this many significant digits, however small the spread


def number(x: float) -> str:
    """``x`` with 4 significant digits; NaN as ``–``, infinities as ``∞`` and ``−∞``."""
    if math.isnan(x):
        return "–"
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    return f"{x:.{_SIGNIFICANT}g}"


def _exponent(x: float) -> int:
    """The power of ten of ``x``'s first significant digit (``x != 0``)."""
    return int(f"{abs(x):e}".partition("e")[2])


def _place(spread: float) -> int | None:
    """The power of ten of the spread's last kept digit; ``None`` when there is no spread."""
    spread = abs(spread)
    if not math.isfinite(spread) or spread == 0:
        return None
    mantissa, _, exponent = f"{spread:.1e}".partition("e")
    return int(exponent) - (1 if float(mantissa) < 3 else 0)


def _scientific(reference: float) -> bool:
    return reference != 0 and not 1e-4 <= abs(reference) < 1e6  # as the "g" format


def _at(x: float, place: int, scientific: bool) -> str:
    """``x`` rounded to the digit at ``10**place``."""
    if not math.isfinite(x):
        return number(x)
    x = round(x, -place) + 0.0  # + 0.0 turns -0.0 into 0.0
    if scientific:
        return f"{x:.{max(0, _exponent(x) - place) if x else 0}e}"
    return f"{x:.{max(0, -place)}f}"


def _layout(values: list[float], spread: float) -> tuple[int, bool] | None:
    """The decimal place and notation shared by ``values`` and their ``spread``."""
    place = _place(spread)
    finite = [abs(v) for v in (*values, spread) if math.isfinite(v)]
    if place is None or not finite:
        return None
    top = max(finite)
    return max(place, _exponent(top) - _MAX_DIGITS + 1), _scientific(top)


def rounded(value: float, spread: float) -> str:
    """``value`` rounded to the last kept digit of ``spread``, for a statistic shown without it.

    It keeps at least 2 significant digits: a spread larger than the value would otherwise print
    a positive median as ``0.0``.
    """
    layout = _layout([value], spread)
    if layout is None or not math.isfinite(value):
        return number(value)
    place, scientific = layout
    if value != 0:
        place = min(place, _exponent(value) - 1)
    return _at(value, place, scientific)


def mean_std(mean: float, std: float) -> str:
    """``mean ± std``, the mean rounded to the standard deviation: ``0.966 ± 0.005``."""
    if not math.isfinite(mean):
        return number(mean)
    layout = _layout([mean], std)
    if layout is None:
        return f"{number(mean)} ± {number(abs(std))}"
    own = _place(std)
    spread = layout if own == layout[0] else (own, _scientific(std))  # the value was capped
    return f"{_at(mean, *layout)} ± {_at(abs(std), *spread)}"


def median_iqr(median: float, q1: float, q3: float) -> str:
    """``median [q1, q3]``, all three rounded to the interquartile range: ``0.966 [0.961, 0.970]``."""
    if not math.isfinite(median):
        return number(median)
    layout = _layout([median, q1, q3], q3 - q1)
    if layout is None:
        return f"{number(median)} [{number(q1)}, {number(q3)}]"
    return f"{_at(median, *layout)} [{_at(q1, *layout)}, {_at(q3, *layout)}]"
