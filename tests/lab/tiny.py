"""A tiny problem for the lab's tests, built on the problem API: softmax regression on 3 blobs.

Each build takes milliseconds, so sweeps of dozens of trials stay fast. ``slow()`` sleeps in every
step so that a test can kill a sweep in the middle of a trial; ``dies()`` kills the process that trains
it (run it only in a pool worker); ``dies_once()`` does so only for the first trial to reach a step
while the environment variable ``DESCENTLAB_TINY_DIE_ONCE`` names a marker file not yet there (the
retry, and every other trial, then train as ``problem()`` does).
"""

from __future__ import annotations

import os
import signal
import time

import torch
from torch import nn

from descentlab.problems import Budget, Problem, SupervisedTask, Target

__all__ = ["DIE_ONCE", "dies", "dies_once", "problem", "slow"]

DIE_ONCE = "DESCENTLAB_TINY_DIE_ONCE"


def _splits(n: int = 96) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1234)  # the data is fixed; the seed sets init and order
    centers = torch.tensor([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])
    out = {}
    for split in ("train", "val", "test"):
        y = torch.arange(n) % 3
        x = centers[y] + torch.randn(n, 2, generator=g)
        out[split] = (x, y)
    return out


class _SlowTask(SupervisedTask):
    def train_step(self, optimizers, batch):
        time.sleep(0.05)
        return super().train_step(optimizers, batch)


class _DyingTask(SupervisedTask):
    def train_step(self, optimizers, batch):
        os.kill(os.getpid(), signal.SIGKILL)  # as the out-of-memory killer would


class _DyingOnceTask(SupervisedTask):
    def train_step(self, optimizers, batch):
        marker = os.environ.get(DIE_ONCE)
        if marker:
            try:  # O_EXCL: exactly one process creates the marker, and only that one dies
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)
                os.kill(os.getpid(), signal.SIGKILL)
        return super().train_step(optimizers, batch)


def _build(task_cls):
    def build(seed: int, *, data_dir=None, batch_size: int, width: int = 8):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(2, width), nn.Tanh(), nn.Linear(width, 3))
        return task_cls(model, _splits(), nn.CrossEntropyLoss(), seed=seed, batch_size=batch_size)

    return build


def _problem(name: str, task_cls) -> Problem:
    return Problem(
        name=name,
        description="softmax regression on three Gaussian blobs (tests only)",
        source="synthetic (tests/lab/tiny.py)",
        kind="supervised",
        budget=Budget(epochs=3, batch_size=32),
        target=Target("accuracy", 0.9, higher_is_better=True),
        main_metric="accuracy",
        higher_is_better=True,
        axes=frozenset({"batch_size", "data_dir", "width"}),
        factory=_build(task_cls),
    )


def problem() -> Problem:
    """The tiny problem (3 epochs of 3 steps)."""
    return _problem("tiny", SupervisedTask)


def slow() -> Problem:
    """The tiny problem with 50 ms per step, for killing a sweep mid-trial."""
    return _problem("tiny-slow", _SlowTask)


def dies() -> Problem:
    """The tiny problem whose first step kills its own process."""
    return _problem("tiny-dies", _DyingTask)


def dies_once() -> Problem:
    """The tiny problem; the first step under ``DESCENTLAB_TINY_DIE_ONCE`` kills its process."""
    return _problem("tiny-dies-once", _DyingOnceTask)
