"""The schedule registry: names as data, and ``create`` that checks every argument."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from ..checks import (
    HyperparameterError,
    Interval,
    check_choice,
    check_int,
    check_unknown,
    close_matches,
)
from . import cyclic, decays, sgdr, warmup

__all__ = ["REGISTRY", "Schedule", "create", "names"]

Factory = Callable[..., LRScheduler]


@dataclass(frozen=True)
class Schedule:
    """One schedule name: a factory ``f(optimizer, *, total_steps, **options)`` and what it is."""

    name: str
    factory: Factory
    description: str
    paper: str = ""
    implementation: str = ""  # the class that does the work
    momentum: str = "untouched"  # what it does to momentum / Adam's beta1

    def options(self) -> list[str]:
        """The keyword options the factory takes besides ``total_steps``."""
        params = inspect.signature(self.factory).parameters.values()
        return [p.name for p in params if p.kind is p.KEYWORD_ONLY and p.name != "total_steps"]

    def forwards(self) -> bool:
        """Whether the factory passes further options on to another schedule (and checks them)."""
        params = inspect.signature(self.factory).parameters.values()
        return any(p.kind is p.VAR_KEYWORD for p in params)


def _warmup(
    optimizer: Optimizer,
    *,
    total_steps: int,
    warmup_steps: int | None = None,
    after: str = "constant",
    **after_options: Any,
) -> LRScheduler:
    """Linear warm-up over ``warmup_steps`` (default 5% of the run), then ``after``.

    ``after`` is any other registry name, built for the remaining steps with ``after_options``.
    """
    warmup_steps = max(1, total_steps // 20) if warmup_steps is None else warmup_steps
    check_int("warmup_steps", warmup_steps, Interval(1.0, total_steps - 1.0))
    check_choice("after", after, AFTER)
    own = ["after", "warmup_steps"]
    check_unknown(
        f"schedule 'warmup' (after={after!r})", after_options, own + REGISTRY[after].options()
    )
    rest = create(after, optimizer, total_steps=total_steps - warmup_steps, **after_options)
    return warmup.with_warmup(optimizer, rest, warmup_steps)


REGISTRY: dict[str, Schedule] = {
    s.name: s
    for s in (
        Schedule("constant", decays.constant, "the optimizer's LR throughout", "", "LambdaLR"),
        Schedule("step", decays.step, "x gamma every step_size steps", "", "StepLR"),
        Schedule("exponential", decays.exponential, "x gamma every step", "", "ExponentialLR"),
        Schedule(
            "cosine",
            decays.cosine,
            "cosine annealing to eta_min over the run",
            "Loshchilov & Hutter 2017",
            "CosineAnnealingLR",
        ),
        Schedule(
            "warmup",
            _warmup,
            "linear warm-up over warmup_steps, then any other schedule (after=)",
            "Goyal et al. 2017",
            "SequentialLR(LinearLR, after)",
            "as `after` sets it",
        ),
        Schedule(
            "warmup-untuned",
            warmup.warmup_untuned,
            "linear warm-up over 2/(1-beta2) steps, beta2 read from the optimizer",
            "Ma & Yarats 2019",
            "LambdaLR",
        ),
        Schedule(
            "cyclic",
            cyclic.cyclic,
            "triangular, triangular2 or exp_range cycles between base_lr and max_lr",
            "Smith 2017",
            "CyclicLR",
            "untouched unless cycle_momentum=True",
        ),
        Schedule(
            "sgdr",
            sgdr.sgdr,
            "cosine with warm restarts: T_0, real T_mult, peak decay, optional warm-up",
            "Loshchilov & Hutter 2017",
            "descentlab SGDR",
        ),
        Schedule(
            "onecycle",
            cyclic.onecycle,
            "up, down, then annihilation in one cycle",
            "Smith 2018",
            "OneCycleLR",
            "opposite to the LR (momentum or beta1) when the optimizer has one",
        ),
    )
}

AFTER = tuple(n for n in REGISTRY if not n.startswith("warmup"))


def names() -> list[str]:
    """The registry's schedule names."""
    return list(REGISTRY)


def create(name: str, optimizer: Optimizer, *, total_steps: int, **options: Any) -> LRScheduler:
    """Build the schedule ``name`` on ``optimizer`` for a run of ``total_steps`` optimizer steps.

    Step it once after every ``optimizer.step()``. Works with any ``torch.optim.Optimizer``
    (descentlab's, torch's, wrappers that share their base's ``param_groups``)::

        sched = create("warmup", opt, total_steps=1000, warmup_steps=50, after="cosine")

    An unknown name or option, or an argument out of range, raises ``ValueError`` naming it and the
    valid range.
    """
    if name not in REGISTRY:
        close = close_matches(name, names(), n=3, cutoff=0.5)
        hint = f"; closest: {', '.join(close)}" if close else ""
        raise HyperparameterError(f"Unknown schedule {name!r}{hint}. Known: {', '.join(names())}")
    check_int("total_steps", total_steps, Interval(1.0))
    if not isinstance(optimizer, Optimizer):
        raise HyperparameterError(
            f"Invalid optimizer: {type(optimizer).__name__}; expected a torch.optim.Optimizer"
        )
    entry = REGISTRY[name]
    if not entry.forwards():
        check_unknown(f"schedule {name!r}", options, entry.options())
    return entry.factory(optimizer, total_steps=total_steps, **options)
