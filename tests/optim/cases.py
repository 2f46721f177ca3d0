"""The one table that drives the optimizer tests.

A case names a registry entry, two parameter groups' non-default hyperparameters, and the
independent reference that the tests compare against step by step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import adabound
import torch

from . import references as ref


@dataclass(frozen=True)
class Case:
    name: str  # registry name
    groups: tuple[dict[str, Any], dict[str, Any]]  # hyperparameters of the two parameter groups
    # built with the same groups; a class or a partial of one (what check_optimizer takes)
    reference: Callable[..., torch.optim.Optimizer] | None
    complex_ok: bool = False  # the reference supports complex parameters
    steps: int = 100
    fixed: dict[str, Any] = field(default_factory=dict)  # passed to both (the name's fixed args)

    def __str__(self) -> str:
        return self.name


def _torch(cls, **fixed):
    return partial(cls, foreach=False, **fixed)


CASES = [
    Case(
        "sgd",
        ({"lr": 0.05, "weight_decay": 0.01}, {"lr": 0.02, "maximize": True}),
        _torch(torch.optim.SGD),
        complex_ok=True,
    ),
    Case(
        "sgdm",
        ({"lr": 0.02, "momentum": 0.8, "dampening": 0.1}, {"lr": 0.01, "weight_decay": 0.05}),
        _torch(torch.optim.SGD, momentum=0.9),
        complex_ok=True,
        fixed={"momentum": 0.9},
    ),
    Case(
        "nag",
        ({"lr": 0.02, "momentum": 0.7}, {"lr": 0.01, "weight_decay": 0.05, "maximize": True}),
        _torch(torch.optim.SGD, momentum=0.9, nesterov=True),
        complex_ok=True,
        fixed={"momentum": 0.9, "nesterov": True},
    ),
    # torch.optim.Adagrad fills the accumulator from the constructor's value, not the group's.
    Case(
        "adagrad",
        (
            {"lr": 0.05, "lr_decay": 0.01, "initial_accumulator_value": 0.1},
            {"lr": 0.02, "weight_decay": 0.05, "eps": 1e-6, "initial_accumulator_value": 0.1},
        ),
        _torch(torch.optim.Adagrad, initial_accumulator_value=0.1),
        complex_ok=True,
    ),
    Case(
        "rmsprop",
        (
            {"lr": 0.01, "alpha": 0.9, "centered": True, "momentum": 0.5},
            {"lr": 0.005, "weight_decay": 0.01, "eps": 1e-4},
        ),
        _torch(torch.optim.RMSprop),
        complex_ok=True,
    ),
    Case(
        "adam",
        (
            {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.01},
            {"lr": 0.003, "eps": 1e-6, "maximize": True},
        ),
        _torch(torch.optim.Adam),
        complex_ok=True,
    ),
    Case(
        "amsgrad",
        ({"lr": 0.01, "betas": (0.8, 0.99)}, {"lr": 0.003, "weight_decay": 0.02}),
        _torch(torch.optim.Adam, amsgrad=True),
        complex_ok=True,
        fixed={"amsgrad": True},
    ),
    Case(
        "adamw",
        ({"lr": 0.01, "weight_decay": 0.1}, {"lr": 0.003, "betas": (0.5, 0.9)}),
        _torch(torch.optim.AdamW),
        complex_ok=True,
    ),
    Case(
        "nadam",
        (
            {"lr": 0.01, "momentum_decay": 0.01, "weight_decay": 0.01},
            {"lr": 0.004, "decoupled_weight_decay": True, "weight_decay": 0.1},
        ),
        _torch(torch.optim.NAdam),
        complex_ok=True,
    ),
    Case(
        "radam",
        (
            {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.01},
            {"lr": 0.004, "decoupled_weight_decay": True, "weight_decay": 0.1},
        ),
        _torch(torch.optim.RAdam),
        complex_ok=True,
    ),
    Case(
        "adabound",
        (
            {"lr": 0.01, "final_lr": 0.05, "gamma": 1e-2, "weight_decay": 0.01},
            {"lr": 0.003, "betas": (0.8, 0.99)},
        ),
        adabound.AdaBound,
    ),
    Case(
        "amsbound",
        ({"lr": 0.01, "final_lr": 0.05, "gamma": 1e-2}, {"lr": 0.003, "weight_decay": 0.02}),
        partial(adabound.AdaBound, amsbound=True),
        fixed={"amsbound": True},
    ),
    Case(
        "sgdw",
        ({"lr": 0.05, "weight_decay": 0.01}, {"lr": 0.02, "weight_decay": 0.1}),
        partial(ref.SGDWReference, lr=0.1),
    ),
    Case(
        "sgdwm",
        ({"lr": 0.02, "weight_decay": 0.01}, {"lr": 0.01, "weight_decay": 0.1}),
        partial(ref.SGDWReference, lr=0.1, momentum=0.9),
        fixed={"momentum": 0.9},
    ),
    Case(
        "swats",
        ({"lr": 0.01, "switch_tol": 1e-4}, {"lr": 0.003, "betas": (0.8, 0.99), "switch_tol": 1e-5}),
        ref.SWATSReference,
        steps=150,
    ),
    # since the lecture
    Case(
        "adopt",
        (
            {"lr": 0.01, "weight_decay": 0.01},
            {
                "lr": 0.003,
                "betas": (0.8, 0.99),
                "weight_decay": 0.1,
                "decoupled_weight_decay": True,
                "maximize": True,
            },
        ),
        ref.AuthorsADOPT,
        complex_ok=True,
    ),
    Case(
        "ademamix",
        (
            {"lr": 0.01, "weight_decay": 0.01},
            {
                "lr": 0.003,
                "betas": (0.8, 0.99, 0.999),
                "alpha": 3.0,
                "t_alpha_beta3": 60,
                "maximize": True,
            },
        ),
        ref.AdEMAMixReference,
    ),
    Case(
        "lion",
        ({"lr": 0.003, "weight_decay": 0.1}, {"lr": 0.001, "betas": (0.8, 0.95), "maximize": True}),
        ref.LionReference,
    ),
    Case(
        "schedule-free-adamw",
        (
            {"lr": 0.01, "weight_decay": 0.01, "warmup_steps": 10},
            {"lr": 0.003, "betas": (0.8, 0.99), "r": 0.5, "weight_lr_power": 1.0, "maximize": True},
        ),
        ref.AuthorsScheduleFreeAdamW,
    ),
    Case(
        "schedule-free-sgd",
        (
            {"lr": 0.05, "weight_decay": 0.01, "warmup_steps": 10},
            {"lr": 0.02, "momentum": 0.8, "r": 0.5, "maximize": True},
        ),
        ref.AuthorsScheduleFreeSGD,
    ),
]

CASE_IDS = [c.name for c in CASES]
BY_NAME = {c.name: c for c in CASES}

# Errors every hyperparameter check must give: (name, kwargs, words the message must contain).
ERRORS = [
    ("sgd", {"lr": -0.1}, ["lr", "-0.1", "[0, inf)"]),
    ("sgd", {"momentum": 1.0}, ["momentum", "1.0", "[0, 1)"]),
    ("sgd", {"nesterov": True}, ["nesterov", "momentum"]),
    ("sgd", {"weight_decay": float("nan")}, ["weight_decay", "nan"]),
    ("sgd", {"lr": "0.1"}, ["lr", "'0.1'", "real number"]),
    ("sgd", {"moment": 0.9}, ["moment", "momentum"]),
    ("adam", {"betas": (1.0, 0.999)}, ["beta", "index 0", "1.0", "[0, 1)"]),
    ("adam", {"betas": (0.9, -0.1)}, ["beta", "index 1", "-0.1"]),
    ("adam", {"betas": 0.9}, ["betas", "pair"]),
    ("adam", {"eps": -1e-8}, ["eps", "-1e-08", "[0, inf)"]),
    ("adam", {"amsgrad": "yes"}, ["amsgrad", "True or False"]),
    ("adamw", {"weight_decay": -1.0}, ["weight_decay", "-1.0"]),
    ("adagrad", {"lr_decay": -1.0}, ["lr_decay", "-1.0"]),
    ("rmsprop", {"alpha": 1.5}, ["alpha", "1.5", "[0, 1]"]),
    ("nadam", {"momentum_decay": -0.1}, ["momentum_decay", "-0.1"]),
    ("radam", {"betas": (0.9, 1.0)}, ["beta", "index 1"]),
    ("adabound", {"lr": 0.0}, ["lr", "(0, inf)"]),
    ("adabound", {"final_lr": -0.1}, ["final_lr", "-0.1", "(0, inf)"]),
    ("adabound", {"gamma": 0.0}, ["gamma", "(0, inf)"]),
    ("swats", {"switch_tol": -1.0}, ["switch_tol", "-1.0"]),
    ("sgdw", {"weight_decay": -0.1}, ["weight_decay", "-0.1"]),
    ("adam", {"impl": "gpu"}, ["impl", "'gpu'", "forloop"]),
    ("adam", {"nonfinite": "nan"}, ["nonfinite", "'nan'", "skip"]),
    ("lookahead(sgd)", {"k": 0}, ["k", "0", "[1, inf)"]),
    ("lookahead(sgd)", {"alpha": 0.0}, ["alpha", "(0, 1]"]),
    ("lookahead(sgd)", {"alpha": 1.5}, ["alpha", "1.5"]),
    ("noisy(sgd)", {"eta": -1.0}, ["eta", "-1.0"]),
    ("noisy(sgd)", {"generator": "seed"}, ["generator", "torch.Generator"]),
]
