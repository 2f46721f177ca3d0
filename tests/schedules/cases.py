"""The one table that drives the schedule tests: every schedule with its reference.

A case's reference is torch's own scheduler (``torch_ref``, built on an identical optimizer) where
torch has the schedule, else the formula (``formula(e, group) -> lr``, with ``group`` the group's
initial hyperparameters). ``momentum(e, group)`` is the expected momentum/beta1 where it moves.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.optim import lr_scheduler as tls

Formula = Callable[[int, dict[str, Any]], float]


@dataclass(frozen=True)
class Case:
    name: str
    options: dict[str, Any] = field(default_factory=dict)
    steps: int = 60
    optimizer: str = "sgdm"  # "sgdm" or "adam" (descentlab names with a torch twin)
    groups: tuple[dict[str, Any], dict[str, Any]] = ({}, {})  # per-group hyperparameters
    torch_ref: Callable[[torch.optim.Optimizer], tls.LRScheduler] | None = None
    formula: Formula | None = None
    momentum: Formula | None = None
    label: str = ""

    @property
    def id(self) -> str:
        return self.label or self.name


def _cos(t: float, length: float) -> float:
    return 0.5 * (1 + math.cos(math.pi * t / length))


def _warmup_cosine(w: int, total: int, eta_min: float) -> Formula:
    def f(e: int, g: dict[str, Any]) -> float:
        if e < w:
            return g["lr"] * (e + 1) / w
        return eta_min + (g["lr"] - eta_min) * _cos(e - w, total - w)

    return f


def _warmup_step(w: int, step_size: int, gamma: float) -> Formula:
    return lambda e, g: (
        g["lr"] * (e + 1) / w if e < w else g["lr"] * gamma ** ((e - w) // step_size)
    )


def _untuned(e: int, g: dict[str, Any]) -> float:
    return g["lr"] * min(1.0, (e + 1) * (1 - g["betas"][1]) / 2)


def _clr(mode: str, s: int, gamma: float = 1.0, lo=0.25, hi=1.0) -> Formula:
    """Smith 2017's triangular policy, the bounds as fractions of the group's LR."""

    def f(e: int, g: dict[str, Any]) -> float:
        cycle = math.floor(1 + e / (2 * s))
        x = abs(e / s - 2 * cycle + 1)
        scale = {"triangular": 1.0, "triangular2": 1 / 2 ** (cycle - 1), "exp_range": gamma**e}
        return g["lr"] * (lo + (hi - lo) * max(0.0, 1 - x) * scale[mode])

    return f


def _clr_momentum(s: int, base: float, top: float, gamma: float | None = None) -> Formula:
    """The momentum mirrors the LR: max_momentum minus the same scaled triangle."""

    def f(e: int, g: dict[str, Any]) -> float:
        cycle = math.floor(1 + e / (2 * s))
        scale = 1.0 if gamma is None else gamma**e
        return top - (top - base) * max(0.0, 1 - abs(e / s - 2 * cycle + 1)) * scale

    return f


def _sgdr(T_0: int, T_mult: float, decay: float, eta_min: float, warmup: int = 0) -> Formula:
    """SGDR by walking the cycles one by one (boundaries: rounded cumulative real lengths)."""

    def f(e: int, g: dict[str, Any]) -> float:
        if e < warmup:
            return g["lr"] * (e + 1) / warmup
        e -= warmup
        start, acc, i = 0, 0.0, 0
        while True:
            acc += T_0 * T_mult**i
            nxt = round(acc)
            if e < nxt:
                peak = g["lr"] * decay**i
                return eta_min + (peak - eta_min) * _cos(e - start, nxt - start)
            start, i = nxt, i + 1

    return f


def _smith(o: torch.optim.Optimizer, total: int, **kw: Any) -> tls.LRScheduler:
    """torch's OneCycleLR set up as Smith 2018 (our defaults), peaks at the groups' LRs."""
    peaks = [g["lr"] for g in o.param_groups]
    return tls.OneCycleLR(
        o,
        peaks,
        total_steps=total,
        pct_start=0.45,
        three_phase=True,
        anneal_strategy="linear",
        **kw,
    )


def _torch_warmup(o: torch.optim.Optimizer, w: int, after: tls.LRScheduler) -> tls.LRScheduler:
    """torch's own composition: LinearLR from 1/w over w steps, then ``after`` (built first)."""
    return tls.SequentialLR(o, [tls.LinearLR(o, 1 / w, total_iters=w - 1), after], milestones=[w])


_ADAM2 = ({"betas": (0.9, 0.95)}, {"betas": (0.8, 0.9)})  # untuned warm-ups of 40 and 20 steps

CASES: list[Case] = [
    Case("constant", formula=lambda e, g: g["lr"]),
    Case("step", {"step_size": 7, "gamma": 0.5}, torch_ref=lambda o: tls.StepLR(o, 7, 0.5)),
    Case("step", label="step-default", torch_ref=lambda o: tls.StepLR(o, 20, 0.1)),
    Case("exponential", {"gamma": 0.9}, torch_ref=lambda o: tls.ExponentialLR(o, 0.9)),
    Case(
        "exponential",
        label="exponential-default",
        torch_ref=lambda o: tls.ExponentialLR(o, 0.01 ** (1 / 60)),
    ),
    Case(
        "cosine",
        {"eta_min": 1e-3},
        torch_ref=lambda o: tls.CosineAnnealingLR(o, T_max=60, eta_min=1e-3),
    ),
    Case(
        "warmup",
        {"warmup_steps": 8, "after": "cosine", "eta_min": 1e-3},
        formula=_warmup_cosine(8, 60, 1e-3),
    ),
    Case(
        "warmup",
        {"warmup_steps": 5, "after": "step", "step_size": 10, "gamma": 0.5},
        label="warmup-step-adam",
        optimizer="adam",
        formula=_warmup_step(5, 10, 0.5),
    ),
    Case("warmup", label="warmup-default", formula=_warmup_step(3, 10**9, 1.0)),
    Case(
        "warmup",
        {"warmup_steps": 6, "after": "onecycle"},
        label="warmup-onecycle",
        torch_ref=lambda o: _torch_warmup(o, 6, _smith(o, 54)),
    ),
    Case("warmup-untuned", optimizer="adam", groups=_ADAM2, formula=_untuned),
    Case("cyclic", {"step_size_up": 5}, formula=_clr("triangular", 5)),
    Case(
        "cyclic",
        {"step_size_up": 4, "mode": "triangular2", "base_lr": 0.01, "max_lr": 0.1},
        label="cyclic-triangular2",
        formula=lambda e, g: _clr("triangular2", 4, lo=0.1, hi=1.0)(e, {"lr": 0.1}),
    ),
    Case(
        "cyclic",
        {"step_size_up": 6, "mode": "exp_range", "gamma": 0.97, "cycle_momentum": True},
        label="cyclic-exp_range-momentum",
        formula=_clr("exp_range", 6, gamma=0.97),
        momentum=_clr_momentum(6, 0.8, 0.9, gamma=0.97),
    ),
    Case(
        "cyclic",
        {"step_size_up": 6, "cycle_momentum": True, "base_momentum": 0.85},
        label="cyclic-momentum-adam",
        optimizer="adam",
        formula=_clr("triangular", 6),
        momentum=_clr_momentum(6, 0.85, 0.9),
    ),
    Case(
        "sgdr",
        {"T_0": 5, "T_mult": 2},
        torch_ref=lambda o: tls.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=2),
    ),
    Case(
        "sgdr",
        {"T_0": 7, "T_mult": 1, "eta_min": 1e-3},
        label="sgdr-tmult1",
        torch_ref=lambda o: tls.CosineAnnealingWarmRestarts(o, T_0=7, T_mult=1, eta_min=1e-3),
    ),
    Case(
        "sgdr",
        {"T_0": 4, "T_mult": 1.5, "decay": 0.7, "eta_min": 1e-4},
        label="sgdr-real-decay",
        formula=_sgdr(4, 1.5, 0.7, 1e-4),
    ),
    Case(
        "sgdr",
        {"T_0": 3, "T_mult": 1.3, "decay": 0.9, "warmup_steps": 6},
        label="sgdr-warmup",
        formula=_sgdr(3, 1.3, 0.9, 0.0, warmup=6),
    ),
    Case("sgdr", label="sgdr-default", formula=_sgdr(8, 2.0, 1.0, 0.0)),
    Case(
        "onecycle",
        torch_ref=lambda o: _smith(o, 60),
    ),
    Case(
        "onecycle",
        {"three_phase": False, "anneal_strategy": "cos", "pct_start": 0.3},
        label="onecycle-torch-defaults-adam",
        optimizer="adam",
        torch_ref=lambda o: tls.OneCycleLR(o, [0.1, 0.05], total_steps=60),
    ),
    Case(
        "onecycle",
        label="onecycle-plain-sgd",
        groups=({"momentum": 0.0}, {"momentum": 0.0}),
        torch_ref=lambda o: _smith(o, 60, cycle_momentum=False),
    ),
]

# Bad arguments: (schedule, options, total_steps, optimizer, text the ValueError must contain)
ERRORS: list[tuple[str, dict[str, Any], Any, str, str]] = [
    ("nope", {}, 10, "sgdm", "Unknown schedule 'nope'"),
    ("cosin", {}, 10, "sgdm", "closest: cosine"),
    ("cosine", {}, 0, "sgdm", "Invalid total_steps: 0; valid range is integers in [1, inf)"),
    ("cosine", {}, -5, "sgdm", "Invalid total_steps: -5"),
    ("cosine", {}, 10.0, "sgdm", "Invalid total_steps: 10.0"),
    ("cosine", {"eta_min": -1.0}, 10, "sgdm", "Invalid eta_min: -1.0; valid range is [0, inf)"),
    ("cosine", {"T_max": 3}, 10, "sgdm", "Unknown hyperparameter 'T_max'"),
    ("step", {"step_size": 0}, 10, "sgdm", "Invalid step_size: 0"),
    ("step", {"gamma": 1.5}, 10, "sgdm", "Invalid gamma: 1.5; valid range is (0, 1]"),
    ("exponential", {"gamma": 0.0}, 10, "sgdm", "Invalid gamma: 0.0"),
    (
        "warmup",
        {"warmup_steps": 10},
        10,
        "sgdm",
        "Invalid warmup_steps: 10; valid range is integers in [1, 9]",
    ),
    ("warmup", {"warmup_steps": 0}, 10, "sgdm", "Invalid warmup_steps: 0"),
    ("warmup", {"warmup_steps": -3}, 10, "sgdm", "Invalid warmup_steps: -3"),
    ("warmup", {"after": "warmup"}, 10, "sgdm", "Invalid after: 'warmup'"),
    ("warmup", {"after": "cosine", "eta_mn": 0.0}, 10, "sgdm", "did you mean eta_min"),
    ("warmup", {"after": "cosine", "eta_min": -1.0}, 10, "sgdm", "Invalid eta_min: -1.0"),
    ("warmup-untuned", {}, 100, "sgdm", "has none"),
    ("warmup-untuned", {}, 100, "adam", "Invalid total_steps: 100; warmup-untuned warms up over"),
    ("sgdr", {"T_mult": 0}, 10, "sgdm", "Invalid T_mult: 0; valid range is [1, inf)"),
    ("sgdr", {"T_mult": 0.5}, 10, "sgdm", "Invalid T_mult: 0.5"),
    ("sgdr", {"T_mult": -2.0}, 10, "sgdm", "Invalid T_mult: -2.0"),
    ("sgdr", {"T_0": 0}, 10, "sgdm", "Invalid T_0: 0"),
    ("sgdr", {"decay": 0.0}, 10, "sgdm", "Invalid decay: 0.0; valid range is (0, 1]"),
    (
        "sgdr",
        {"warmup_steps": 10},
        10,
        "sgdm",
        "Invalid warmup_steps: 10; valid range is integers in [0, 9]",
    ),
    (
        "cyclic",
        {"base_lr": 1.0, "max_lr": 0.1},
        10,
        "sgdm",
        "Invalid base_lr: 1.0; valid range is [0, 0.1]",
    ),
    ("cyclic", {"max_lr": 0.0}, 10, "sgdm", "Invalid max_lr: 0.0"),
    ("cyclic", {"mode": "sine"}, 10, "sgdm", "Invalid mode: 'sine'"),
    ("cyclic", {"step_size_up": 0}, 10, "sgdm", "Invalid step_size_up: 0"),
    ("cyclic", {"gamma": 0.0}, 10, "sgdm", "Invalid gamma: 0.0"),
    ("cyclic", {"cycle_momentum": True}, 10, "adagrad", "Invalid cycle_momentum=True: Adagrad"),
    (
        "cyclic",
        {"cycle_momentum": True, "base_momentum": 1.0},
        10,
        "sgdm",
        "Invalid base_momentum: 1.0",
    ),
    (
        "onecycle",
        {"pct_start": 0.7},
        100,
        "sgdm",
        "Invalid pct_start: 0.7; valid range is (0, 0.5]",
    ),
    ("onecycle", {"pct_start": 0.01}, 100, "sgdm", "Invalid pct_start: 0.01; with total_steps=100"),
    ("onecycle", {"pct_start": 1.0, "three_phase": False}, 100, "sgdm", "Invalid pct_start: 1.0"),
    ("onecycle", {"max_lr": -1.0}, 100, "sgdm", "Invalid max_lr: -1.0"),
    ("onecycle", {"div_factor": 0.5}, 100, "sgdm", "Invalid div_factor: 0.5"),
    ("onecycle", {"anneal_strategy": "sin"}, 100, "sgdm", "Invalid anneal_strategy: 'sin'"),
    (
        "onecycle",
        {"base_momentum": 0.99},
        100,
        "sgdm",
        "Invalid max_momentum: 0.95; valid range is [0.99, 1)",
    ),
]
