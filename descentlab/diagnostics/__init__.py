"""Diagnostics of trained models and running optimizers: sharpness, loss landscapes, effective LRs."""

from .landscape import Slice1D, Slice2D, interpolate, random_direction, slice_1d, slice_2d
from .sharpness import (
    Sharpness,
    epsilon_sharpness,
    hessian_vector_product,
    sharpness,
    top_eigenvalue,
)
from .track import METRICS, Record, Tracker, track

__all__ = [
    "METRICS",
    "Record",
    "Sharpness",
    "Slice1D",
    "Slice2D",
    "Tracker",
    "epsilon_sharpness",
    "hessian_vector_product",
    "interpolate",
    "random_direction",
    "sharpness",
    "slice_1d",
    "slice_2d",
    "top_eigenvalue",
    "track",
]
