"""Every problem keeps the contract: builds, trains a few steps, evaluates, is deterministic."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from descentlab import problems
from descentlab.problems import SPLITS, Problem, Task

from .problem_cases import CASES

NAMES = sorted(CASES)
SUPERVISED = [n for n in NAMES if problems.get(n).kind == "supervised"]


@pytest.fixture
def build(request, tmp_path_factory):
    """``build(seed)`` for the test's problem, with its tiny options and data files."""
    name = request.param
    case = CASES[name]
    if case.requires:
        pytest.importorskip(case.requires)
    options = dict(case.options)
    if case.files is not None:
        options["data_dir"] = str(case.files(tmp_path_factory.mktemp(name)))
    return lambda seed: problems.get(name).build(seed, **options)


def _steps(task, steps: int = 3, optimizer: str = "sgdm") -> list[float]:
    opts = problems.optimizers_for(task, optimizer)
    batches = itertools.chain.from_iterable(task.epoch_batches() for _ in itertools.count())
    return [task.train_step(opts, b) for b in itertools.islice(batches, steps)]


def test_every_problem_has_a_case():
    assert set(CASES) == set(problems.names())


@pytest.mark.parametrize("name", NAMES)
def test_problem_description(name):
    p = problems.get(name)
    assert isinstance(p, Problem) and p.name == name
    assert p.kind in ("supervised", "gan", "rl", "lm")
    assert p.description and p.source
    assert p.budget.epochs >= 1 and p.budget.batch_size >= 1
    assert p.target.metric == p.main_metric
    assert p.target.higher_is_better == p.higher_is_better
    assert {"batch_size", "data_dir"} <= p.axes
    assert set(CASES[name].options) <= p.axes


@pytest.mark.parametrize("build", NAMES, indirect=True)
def test_builds_trains_and_evaluates(build):
    task = build(0)
    assert isinstance(task, Task)
    groups = {k: list(v) for k, v in task.param_groups().items()}
    assert groups and all(groups.values())
    assert len(task.train_loader) >= 1
    losses = _steps(task)
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)
    for split in SPLITS:
        result = task.evaluate(split)
        assert "loss" in result and all(isinstance(v, float) for v in result.values())
        assert all(math.isfinite(v) for v in result.values())


@pytest.mark.parametrize("build", NAMES, indirect=True)
def test_main_metric_is_evaluated(build, request):
    name = request.node.callspec.params["build"]
    assert problems.get(name).main_metric in build(0).evaluate("test")


@pytest.mark.parametrize("build", NAMES, indirect=True)
def test_same_seed_same_run_other_seed_other_run(build):
    runs = {}
    for key, seed in (("a", 1), ("b", 1), ("c", 2)):
        task = build(seed)
        runs[key] = (_steps(task), task.evaluate("val"))
    assert runs["a"] == runs["b"]
    assert runs["a"][0] != runs["c"][0] and runs["a"][1] != runs["c"][1]


@pytest.mark.parametrize("build", SUPERVISED, indirect=True)
def test_training_lowers_the_loss(build):
    task = build(0)
    before = task.evaluate("train")["loss"]
    problems.train(task, problems.optimizers_for(task, "adam"), 2, eval_splits=())
    assert task.evaluate("train")["loss"] < before


@pytest.mark.parametrize("build", SUPERVISED, indirect=True)
def test_epoch_is_reshuffled_by_the_seed(build):
    task = build(0)
    first = [b[1] for b in task.epoch_batches()]
    second = [b[1] for b in task.epoch_batches()]
    assert not all(torch.equal(a, b) for a, b in zip(first, second))
    flat = [torch.cat(e).flatten().sort().values for e in (first, second)]
    assert torch.equal(*flat)
