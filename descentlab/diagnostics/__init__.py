"""Diagnostics of trained models and running optimizers: sharpness (also at equal training loss
and at the edge of stability), loss landscapes, effective LRs."""

from .equal_loss import EqualLoss, LevelPoint, sharpness_at_levels
from .landscape import Slice1D, Slice2D, interpolate, random_direction, slice_1d, slice_2d
from .rescale import DINH_NOTE, rescale, scale_factors
from .sharpness import (
    Sharpness,
    epsilon_sharpness,
    hessian_vector_product,
    power_iteration,
    sharpness,
    top_eigenvalue,
)
from .stability import (
    StabilityRecord,
    StabilityTracker,
    adam_preconditioner,
    ema_threshold,
    preconditioned_sharpness,
    stability_threshold,
    track_stability,
)
from .track import METRICS, Record, Tracker, track

__all__ = [
    "DINH_NOTE",
    "METRICS",
    "EqualLoss",
    "LevelPoint",
    "Record",
    "Sharpness",
    "Slice1D",
    "Slice2D",
    "StabilityRecord",
    "StabilityTracker",
    "Tracker",
    "adam_preconditioner",
    "ema_threshold",
    "epsilon_sharpness",
    "hessian_vector_product",
    "interpolate",
    "power_iteration",
    "preconditioned_sharpness",
    "random_direction",
    "rescale",
    "scale_factors",
    "sharpness",
    "sharpness_at_levels",
    "slice_1d",
    "slice_2d",
    "stability_threshold",
    "top_eigenvalue",
    "track",
    "track_stability",
]
