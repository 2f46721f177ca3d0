"""LR suggestions from a range-test curve, as fastai's ``lr_find`` makes them.

Reference: fastai ``callback/schedule.py`` (``steep``, ``valley``, ``minimum``); the valley rule is
ESRI's (fast.ai forums, "automated learning rate suggester").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

__all__ = ["METHODS", "usable"]

SKIP_END = 5  # fastai drops the last 5 points (the diverging tail)


def usable(
    lrs: Sequence[float], losses: Sequence[float], num_steps: int
) -> tuple[list[float], list[float]]:
    """The part of the curve fastai suggests from: up to the first non-finite loss, without the
    first ``num_steps // 10`` points (the smoothing's start) and the last 5."""
    finite = next((i for i, x in enumerate(losses) if not math.isfinite(x)), len(losses))
    keep = slice(num_steps // 10, finite - SKIP_END)
    return list(lrs[keep]), list(losses[keep])


def steepest(lrs: list[float], losses: list[float]) -> float:
    """The LR where the loss falls fastest against log(LR) (left end of the steepest segment)."""
    slopes = [
        (losses[i + 1] - losses[i]) / (math.log(lrs[i + 1]) - math.log(lrs[i]))
        for i in range(len(lrs) - 1)
    ]
    return lrs[min(range(len(slopes)), key=slopes.__getitem__)]


def valley(lrs: list[float], losses: list[float]) -> float:
    """About 2/3 into the longest decreasing run (a longest decreasing subsequence) of the loss."""
    n = len(losses)
    run = [1] * n  # run[i]: length of the longest decreasing subsequence ending at i
    start, end = 0, 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and run[i] < run[j] + 1:
                run[i] = run[j] + 1
            if run[end] < run[i]:
                end = i
                start = end - run[end]
    sections = (end - start) / 3
    return lrs[max(0, start + int(sections) + int(sections / 2))]  # fastai's index, kept >= 0


def min_over_10(lrs: list[float], losses: list[float]) -> float:
    """A tenth of the LR at the lowest loss."""
    return lrs[min(range(len(losses)), key=losses.__getitem__)] / 10


METHODS: dict[str, Callable[[list[float], list[float]], float]] = {
    "steepest": steepest,
    "valley": valley,
    "min/10": min_over_10,
}
