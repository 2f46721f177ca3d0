"""Statistics as text: every value rounded to its spread."""

from __future__ import annotations

import math

import pytest

from descentlab.report.rounding import mean_std, median_iqr, number, rounded

NAN, INF = math.nan, math.inf


@pytest.mark.parametrize(
    ("mean", "std", "text"),
    [
        (0.9656, 0.005152, "0.966 ± 0.005"),  # one digit of a spread starting with 5
        (0.9656, 0.0152, "0.966 ± 0.015"),  # two digits of a spread starting with 1
        (0.9656, 0.0096, "0.966 ± 0.010"),  # the spread rounds up to the next decade
        (-2.3449, 0.0311, "-2.34 ± 0.03"),  # negative values
        (1234.5, 52.0, "1230 ± 50"),  # a spread above 1 rounds to tens
        (0.0, 0.005, "0.000 ± 0.005"),
        (-0.0001, 0.01, "0.000 ± 0.010"),  # no negative zero
        (1.234e38, 5.1e36, "1.23e+38 ± 5e+36"),  # huge
        (1.234e-7, 5.1e-9, "1.23e-07 ± 5e-09"),  # small
        (0.9, 1e-12, "0.900000 ± 1.0e-12"),  # at most 6 significant digits
        (0.9656, 0.0, "0.9656 ± 0"),  # no spread: 4 significant digits
        (0.9656, NAN, "0.9656 ± –"),
        (NAN, 0.1, "–"),
        (INF, 1.0, "∞"),
        (-INF, NAN, "−∞"),
        (0.5, -0.005152, "0.500 ± 0.005"),  # a spread is a magnitude
    ],
)
def test_mean_std(mean, std, text):
    assert mean_std(mean, std) == text


@pytest.mark.parametrize(
    ("quartiles", "text"),
    [
        ((0.9656, 0.9611, 0.9702), "0.966 [0.961, 0.970]"),
        ((0.5, 0.5, 0.5), "0.5 [0.5, 0.5]"),  # zero IQR: 4 significant digits
        ((NAN, NAN, NAN), "–"),
        ((12.3, INF, INF), "12.3 [∞, ∞]"),
        ((3.2e-9, 1.1e-9, 5.3e-9), "3e-09 [1e-09, 5e-09]"),
        ((-104.2, -130.6, -95.1), "-100 [-130, -100]"),
    ],
)
def test_median_iqr(quartiles, text):
    assert median_iqr(*quartiles) == text


def test_rounded_and_number():
    assert rounded(0.07123, 0.0042) == "0.071"
    assert rounded(12.345, 0.0) == "12.35"
    assert rounded(NAN, 0.1) == "–"
    assert rounded(0.0031, 0.52) == "0.0031"  # a spread above the value keeps 2 digits
    assert rounded(-0.0031, 0.52) == "-0.0031"
    assert [number(x) for x in (1e38, 0.123456, INF, NAN)] == ["1e+38", "0.1235", "∞", "–"]
