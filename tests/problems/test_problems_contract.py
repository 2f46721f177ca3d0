"""Every problem keeps the contract: builds, trains a few steps, evaluates, is deterministic."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from descentlab import problems
from descentlab.problems import SPLITS, Problem, Task

from .problem_cases import TINY


def _run(name: str, seed: int, steps: int = 3) -> tuple[list[float], dict[str, float]]:
    task = problems.get(name).build(seed, **TINY[name])
    opts = problems.optimizers_for(task, "sgdm")
    batches = itertools.chain.from_iterable(task.epoch_batches() for _ in itertools.count())
    losses = [task.train_step(opts, b) for b in itertools.islice(batches, steps)]
    return losses, task.evaluate("val")


def test_every_problem_has_a_case():
    assert set(TINY) == set(problems.names())


@pytest.mark.parametrize("name", sorted(TINY))
def test_problem_description(name):
    p = problems.get(name)
    assert isinstance(p, Problem) and p.name == name
    assert p.kind in ("supervised", "gan", "rl")
    assert p.description and p.source
    assert p.budget.epochs >= 1 and p.budget.batch_size >= 1
    assert p.target.metric == p.main_metric
    assert p.target.higher_is_better == p.higher_is_better
    assert {"batch_size", "data_dir"} <= p.axes
    assert set(TINY[name]) <= p.axes


@pytest.mark.parametrize("name", sorted(TINY))
def test_builds_trains_and_evaluates(name):
    p = problems.get(name)
    task = p.build(0, **TINY[name])
    assert isinstance(task, Task)
    groups = {k: list(v) for k, v in task.param_groups().items()}
    assert groups and all(groups.values())
    losses, _ = _run(name, 0)
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)
    for split in SPLITS:
        result = task.evaluate(split)
        assert "loss" in result and p.main_metric in result
        assert all(isinstance(v, float) for v in result.values())


@pytest.mark.parametrize("name", sorted(TINY))
def test_same_seed_same_run_other_seed_other_run(name):
    losses_a, eval_a = _run(name, 1)
    losses_b, eval_b = _run(name, 1)
    losses_c, eval_c = _run(name, 2)
    assert losses_a == losses_b and eval_a == eval_b
    assert losses_a != losses_c and eval_a != eval_c


SUPERVISED = sorted(n for n in TINY if problems.get(n).kind == "supervised")


@pytest.mark.parametrize("name", SUPERVISED)
def test_training_lowers_the_loss(name):
    p = problems.get(name)
    task = p.build(0, **TINY[name])
    before = task.evaluate("train")["loss"]
    problems.train(task, problems.optimizers_for(task, "adam"), 2, eval_splits=())
    assert task.evaluate("train")["loss"] < before


@pytest.mark.parametrize("name", SUPERVISED)
def test_epoch_is_reshuffled_by_the_seed(name):
    task = problems.get(name).build(0, **TINY[name])
    first = [b[1] for b in task.epoch_batches()]
    second = [b[1] for b in task.epoch_batches()]
    assert not all(torch.equal(a, b) for a, b in zip(first, second))
    assert torch.equal(
        torch.cat(first).flatten().sort().values, torch.cat(second).flatten().sort().values
    )
