"""Every optimizer of the lecture as a drop-in ``torch.optim.Optimizer``."""

from ..checks import HyperparameterError
from .adabound import AdaBound
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .ademamix import AdEMAMix
from .adopt import ADOPT
from .base import NonFiniteGradientError, Optimizer
from .lion import Lion
from .lookahead import Lookahead
from .nadam import NAdam
from .noise import GradientNoise
from .param_groups import param_groups
from .radam import RAdam
from .registry import REGISTRY, WRAPPERS, Entry, create, names, register, unregister
from .rmsprop import RMSprop
from .schedule_free import ScheduleFreeAdamW, ScheduleFreeSGD
from .sgd import SGD, SGDW
from .swats import SWATS

__all__ = [
    "ADOPT",
    "REGISTRY",
    "SGD",
    "SGDW",
    "SWATS",
    "WRAPPERS",
    "AdEMAMix",
    "AdaBound",
    "Adagrad",
    "Adam",
    "AdamW",
    "Entry",
    "GradientNoise",
    "HyperparameterError",
    "Lion",
    "Lookahead",
    "NAdam",
    "NonFiniteGradientError",
    "Optimizer",
    "RAdam",
    "RMSprop",
    "ScheduleFreeAdamW",
    "ScheduleFreeSGD",
    "create",
    "names",
    "param_groups",
    "register",
    "unregister",
]
