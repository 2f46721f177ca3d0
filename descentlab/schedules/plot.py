"""Trace a schedule's LR (and momentum) step by step, and draw it with matplotlib."""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch.optim.lr_scheduler import LRScheduler

from .registry import create

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["Trace", "plot", "trace"]


@dataclass(frozen=True)
class Trace:
    """Per step, the LR and the momentum (Adam's beta1; ``None`` if none) of every group."""

    lrs: list[list[float]]
    momenta: list[list[float | None]]


def _momentum(group: dict[str, Any]) -> float | None:
    if "betas" in group:
        return float(group["betas"][0])
    return None if group.get("momentum") is None else float(group["momentum"])


def trace(scheduler: LRScheduler, steps: int) -> Trace:
    """The LRs and momenta of the next ``steps`` steps, from the scheduler's current position.

    The scheduler and its optimizer's hyperparameters are restored afterwards; no optimizer step
    is taken (the parameters are not touched).
    """
    optimizer = scheduler.optimizer
    saved_sched = copy.deepcopy(scheduler.state_dict())
    saved_groups = [
        copy.deepcopy({k: v for k, v in g.items() if k != "params"}) for g in optimizer.param_groups
    ]
    lrs, momenta = [], []
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step", UserWarning)
            for _ in range(steps):
                lrs.append([float(g["lr"]) for g in optimizer.param_groups])
                momenta.append([_momentum(g) for g in optimizer.param_groups])
                scheduler.step()
    finally:
        scheduler.load_state_dict(saved_sched)
        for group, saved in zip(optimizer.param_groups, saved_groups):
            group.update(saved)
    return Trace(lrs, momenta)


def plot(
    schedule: str | LRScheduler,
    total_steps: int,
    *,
    ax: Axes | None = None,
    lr: float = 0.1,
    **options: Any,
) -> Axes:
    """Draw the LR (and, where it moves, the momentum) of ``total_steps`` steps.

    ``schedule`` is a registry name, built with ``options`` on a one-parameter descentlab Adam with
    learning rate ``lr`` (so "momentum" is beta1), or a scheduler, drawn from its current position
    (and left as it was). Returns the axes.
    """
    import matplotlib.pyplot as plt

    from ..optim import Adam

    if isinstance(schedule, str):
        optimizer = Adam([torch.nn.Parameter(torch.zeros(1))], lr=lr)
        title, schedule = schedule, create(schedule, optimizer, total_steps=total_steps, **options)
    else:
        title = type(schedule).__name__
    t = trace(schedule, total_steps)
    if ax is None:
        ax = plt.subplots(figsize=(6, 3.5))[1]
    steps = range(total_steps)
    groups = len(t.lrs[0])
    for i in range(groups):
        ax.plot(steps, [row[i] for row in t.lrs], label=f"lr (group {i})" if groups > 1 else "lr")
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.set_title(title)
    moving = [
        i
        for i in range(groups)
        if t.momenta[0][i] is not None and len({row[i] for row in t.momenta}) > 1
    ]
    if moving:
        twin = ax.twinx()
        for i in moving:
            twin.plot(steps, [row[i] for row in t.momenta], "--", color="tab:orange")
        twin.set_ylabel("momentum (beta1)", color="tab:orange")
    return ax
