"""See the optimizers: trajectories on 2-D test functions, as still figures and animations."""

from .functions2d import FUNCTIONS, LR_FAMILY, Function2D
from .landscape import plot_slices
from .plot import animate, plot
from .trajectories import Trajectory, default_lr, trajectories

__all__ = [
    "FUNCTIONS",
    "LR_FAMILY",
    "Function2D",
    "Trajectory",
    "animate",
    "default_lr",
    "plot",
    "plot_slices",
    "trajectories",
]
