"""Worked examples from the lecture, reproduced with the real optimizers and numbers."""

from .adam_failures import (
    LargeGradient,
    OnlineCounterexample,
    large_gradient,
    online_counterexample,
    plot_large_gradient,
    plot_online_counterexample,
)

__all__ = [
    "LargeGradient",
    "OnlineCounterexample",
    "large_gradient",
    "online_counterexample",
    "plot_large_gradient",
    "plot_online_counterexample",
]
