"""Sharpness at equal training loss: train, and measure where the loss first falls to each level.

Comparing the sharpness of two optimizers' final points confounds curvature with how far each
got: under cross-entropy the Hessian shrinks as the training loss goes to zero, so whichever
optimizer fits the training set more tightly looks flatter. Measuring each run at the first point
where its full training loss falls to the same levels removes that confound.

The full training loss is evaluated every ``check_every`` optimizer steps (and before the
first step and after the last of the budget); a level's point is the first check at which the loss is at or below it, so the crossing
is resolved to ``check_every`` steps. A check may cross several levels at once; each gets the same
point.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ._loss import Batches, LossFn, evaluation, full_loss
from .sharpness import Sharpness, sharpness

__all__ = ["EqualLoss", "LevelPoint", "sharpness_at_levels"]


@dataclass(frozen=True)
class LevelPoint:
    """The first check at which the full training loss was at or below ``level``.

    Attributes:
        level: the training-loss level.
        step: optimizer steps taken when it was reached.
        train_loss: the full training loss there (``<= level``).
        test_loss: the loss on ``test_data`` there (NaN without it).
        sharpness: :func:`~.sharpness.sharpness` there (on ``sharpness_data``).
    """

    level: float
    step: int
    train_loss: float
    test_loss: float
    sharpness: Sharpness


@dataclass(frozen=True)
class EqualLoss:
    """The points reached, the levels missed and the loss at every check.

    Attributes:
        points: one :class:`LevelPoint` per level reached, from the highest level down.
        missed: the levels not reached within ``max_steps`` (or before the loss went non-finite).
        steps: optimizer steps taken in all.
        checks: ``(step, full training loss)`` at every check.
    """

    points: list[LevelPoint]
    missed: list[float]
    steps: int
    checks: list[tuple[int, float]]


def sharpness_at_levels(
    model: nn.Module,
    loss_fn: LossFn,
    train_batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    make_optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer],
    levels: Sequence[float],
    *,
    loss_data: Batches,
    sharpness_data: Batches | None = None,
    test_data: Batches | None = None,
    check_every: int = 10,
    max_steps: int = 10_000,
    epsilon: float = 1e-3,
    ascent_steps: int = 10,
    iters: int = 50,
    tol: float = 1e-4,
    seed: int = 0,
) -> EqualLoss:
    """Train ``model`` and measure its sharpness where its training loss first reaches each level.

    Training stops once the lowest level is reached (the model is left at that point, for
    example to interpolate between two runs' points), after ``max_steps`` steps, or when the
    training loss is no longer finite.

    Args:
        model: the model to train (in place).
        loss_fn: ``loss_fn(model(x), y)``, the batch mean.
        train_batches: the training batches, iterated once per epoch (it may reshuffle).
        make_optimizer: ``params -> optimizer`` (``functools.partial(descentlab.create, "adam",
            lr=1e-3)``, ``torch.optim.SGD``...).
        levels: the training-loss levels, in any order.
        loss_data: fixed batches of the whole training set (the loss the levels refer to).
        sharpness_data: where the sharpness is measured (default ``loss_data``; a subset is
            cheaper).
        test_data: fixed batches whose loss is recorded at each point.
        check_every: optimizer steps between evaluations of the full training loss.
        max_steps: the training budget.
        epsilon, ascent_steps, iters, tol, seed: :func:`~.sharpness.sharpness`'s options.
    """
    if not levels:
        raise ValueError("levels must not be empty")
    if check_every < 1 or max_steps < 0:
        raise ValueError(
            f"need check_every >= 1 and max_steps >= 0, got {check_every} and {max_steps}"
        )
    todo = sorted({float(v) for v in levels}, reverse=True)
    optimizer = make_optimizer(model.parameters())
    points: list[LevelPoint] = []
    checks: list[tuple[int, float]] = []
    step = 0

    def check() -> bool:
        """Evaluate the training loss, record the levels it reached; ``True`` to stop."""
        with evaluation(model), torch.no_grad():
            loss = float(full_loss(model, loss_fn, loss_data))
            test = math.nan if test_data is None else float(full_loss(model, loss_fn, test_data))
        checks.append((step, loss))
        if not math.isfinite(loss):
            return True
        while todo and loss <= todo[0]:
            s = sharpness(
                model,
                loss_fn,
                sharpness_data or loss_data,
                epsilon=epsilon,
                ascent_steps=ascent_steps,
                iters=iters,
                tol=tol,
                seed=seed,
            )
            points.append(LevelPoint(todo.pop(0), step, loss, test, s))
        return not todo

    model.train()  # check() restores the mode it finds
    done = check()
    while not done and step < max_steps:
        seen = False
        for x, y in train_batches:
            seen = True
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            optimizer.step()
            step += 1
            if step % check_every == 0 or step == max_steps:
                done = check()
                if done or step >= max_steps:
                    break
        if not seen:
            raise ValueError("train_batches yielded no batches")
    return EqualLoss(points, todo, step, checks)
