"""Worked examples from the lecture, reproduced with the real optimizers and numbers."""

from .adam_failures import (
    LargeGradient,
    OnlineCounterexample,
    large_gradient,
    online_counterexample,
    plot_large_gradient,
    plot_online_counterexample,
)
from .edge_of_stability import (
    EdgeOfStability,
    StabilityRun,
    edge_of_stability,
    plot_edge_of_stability,
)
from .flat_sharp import (
    FLAT_SHARP_OPTIMIZERS,
    FlatSharp,
    flat_sharp,
    plot_equal_loss,
    plot_small_large_batch,
)

__all__ = [
    "FLAT_SHARP_OPTIMIZERS",
    "EdgeOfStability",
    "FlatSharp",
    "LargeGradient",
    "OnlineCounterexample",
    "StabilityRun",
    "edge_of_stability",
    "flat_sharp",
    "large_gradient",
    "online_counterexample",
    "plot_edge_of_stability",
    "plot_equal_loss",
    "plot_large_gradient",
    "plot_online_counterexample",
    "plot_small_large_batch",
]
