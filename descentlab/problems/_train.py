"""A plain training loop over a task: the steps, per-epoch evaluation, divergence, wall time.

``compare`` uses it directly; the lab's trial runner may reuse it. It never raises on divergence:
a NaN or infinite training loss stops the run and marks it ``diverged``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..optim import create
from ..optim.schedule_free import evaluating, has_modes
from ._base import SPLITS, Task

__all__ = ["History", "optimizers_for", "train"]


@dataclass
class History:
    """What one training run produced.

    Attributes:
        train_loss: the training loss of every step, in order.
        epochs: per finished epoch, ``{split: evaluate(split)}`` for the evaluated splits.
        final: ``{split: evaluate(split)}`` after training, for every split.
        steps: optimizer steps taken.
        train_time: seconds spent in training steps only.
        wall_time: seconds for the whole run, evaluations included.
        diverged: a training loss was NaN or infinite (the run stopped there).
    """

    train_loss: list[float] = field(default_factory=list)
    epochs: list[dict[str, dict[str, float]]] = field(default_factory=list)
    final: dict[str, dict[str, float]] = field(default_factory=dict)
    steps: int = 0
    train_time: float = 0.0
    wall_time: float = 0.0
    diverged: bool = False


def optimizers_for(task: Task, name: str, **hparams: Any) -> dict[str, torch.optim.Optimizer]:
    """One registry optimizer ``name`` (see :func:`descentlab.create`) per param group of ``task``.

    Without ``lr`` each uses the registry's default for the base name (wrappers use their base's).
    """
    if "lr" not in hparams:
        from ..optim.registry import resolve

        hparams["lr"] = resolve(name)[1].lr
    return {group: create(name, params, **hparams) for group, params in task.param_groups().items()}


def train(
    task: Task,
    optimizers: Mapping[str, torch.optim.Optimizer],
    epochs: int,
    on_step: Callable[[int, float], None] | None = None,
    *,
    eval_splits: Sequence[str] = ("val", "test"),
    final_splits: Sequence[str] = SPLITS,
) -> History:
    """Train ``task`` for ``epochs`` epochs and evaluate it after each.

    Args:
        task: a built problem (``problem.build(seed)``).
        optimizers: one optimizer per key of ``task.param_groups()``.
        epochs: passes over ``task.epoch_batches()``.
        on_step: called as ``on_step(step, loss)`` after every step (step counts from 1).
        eval_splits: splits evaluated after every epoch (``()`` for none).
        final_splits: splits evaluated once at the end.

    Returns:
        A :class:`History`.
    """
    expected = set(task.param_groups())
    if set(optimizers) != expected:
        raise ValueError(
            f"optimizers must have the keys {sorted(expected)}, got {sorted(optimizers)}"
        )
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    history = History()
    start = time.perf_counter()
    for o in optimizers.values():  # steps are taken in train mode (Schedule-Free's)
        if has_modes(o):
            o.train()
    for _ in range(epochs):
        for batch in task.epoch_batches():
            t0 = time.perf_counter()
            loss = task.train_step(optimizers, batch)
            history.train_time += time.perf_counter() - t0
            history.steps += 1
            history.train_loss.append(loss)
            if on_step is not None:
                on_step(history.steps, loss)
            if not math.isfinite(loss):
                history.diverged = True
                break
        if history.diverged:
            break
        with evaluating(*optimizers.values()):  # the average, where an optimizer keeps one
            history.epochs.append({s: task.evaluate(s) for s in eval_splits})
    with evaluating(*optimizers.values()):
        history.final = {s: task.evaluate(s) for s in final_splits}
    history.wall_time = time.perf_counter() - start
    return history
