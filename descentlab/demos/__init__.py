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
from .gradient_noise import NOISE_MODELS, NoiseTails, noise_tails, plot_noise_tails
from .hessian_heterogeneity import (
    HESSIAN_MODELS,
    HessianHeterogeneity,
    QuadraticRace,
    block_quadratic,
    hessian_heterogeneity,
    plot_hessian_heterogeneity,
    plot_quadratic_race,
    quadratic_race,
)

__all__ = [
    "FLAT_SHARP_OPTIMIZERS",
    "HESSIAN_MODELS",
    "NOISE_MODELS",
    "EdgeOfStability",
    "FlatSharp",
    "HessianHeterogeneity",
    "LargeGradient",
    "NoiseTails",
    "OnlineCounterexample",
    "QuadraticRace",
    "StabilityRun",
    "block_quadratic",
    "edge_of_stability",
    "flat_sharp",
    "hessian_heterogeneity",
    "large_gradient",
    "noise_tails",
    "online_counterexample",
    "plot_edge_of_stability",
    "plot_equal_loss",
    "plot_hessian_heterogeneity",
    "plot_large_gradient",
    "plot_noise_tails",
    "plot_online_counterexample",
    "plot_quadratic_race",
    "plot_small_large_batch",
    "quadratic_race",
]
