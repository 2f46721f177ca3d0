"""The problem registry (names, user problems) and the training loop."""

from __future__ import annotations

import math
import sys
import types

import pytest

from descentlab import problems
from descentlab.problems import Budget, History, Problem, Target


def test_unknown_name_lists_the_closest():
    with pytest.raises(ValueError, match="closest: digits-mlp"):
        problems.get("digit-mlp")


def test_user_problem_by_module_function(monkeypatch):
    mine = Problem(
        "mine",
        "a user's problem",
        "the test",
        "supervised",
        Budget(1, 8),
        Target("accuracy", 0.5, True),
        "accuracy",
        True,
        frozenset({"batch_size", "data_dir"}),
        factory=problems.get("digits-logreg").factory,
    )
    module = types.ModuleType("user_problems_mod")
    module.make = lambda: mine
    module.obj = mine
    module.bad = lambda: 3
    monkeypatch.setitem(sys.modules, "user_problems_mod", module)
    assert problems.get("user_problems_mod:make") is mine
    assert problems.get("user_problems_mod:obj") is mine
    with pytest.raises(ValueError, match="must be"):
        problems.get("user_problems_mod:bad")
    with pytest.raises(ValueError, match="no attribute"):
        problems.get("user_problems_mod:nope")
    with pytest.raises(ValueError, match="problem 'no_such_module_xyz:make': cannot import"):
        problems.get("no_such_module_xyz:make")


def test_target_reached():
    t = Target("bpc", 2.0, higher_is_better=False)
    assert t.reached(1.9) and t.reached(2.0) and not t.reached(2.1) and not t.reached(math.nan)


def test_train_records_curves_and_evaluations():
    task = problems.get("digits-logreg").build(0, n_train=100, batch_size=25)
    seen = []
    h = problems.train(
        task, problems.optimizers_for(task, "sgdm"), 2, lambda s, v: seen.append((s, v))
    )
    assert isinstance(h, History)
    assert h.steps == 8 and len(h.train_loss) == 8 and [s for s, _ in seen] == list(range(1, 9))
    assert [set(e) for e in h.epochs] == [{"val", "test"}] * 2
    assert set(h.final) == {"train", "val", "test"}
    assert 0 < h.train_time <= h.wall_time and not h.diverged


def test_train_stops_and_marks_divergence():
    task = problems.get("digits-logreg").build(0, n_train=100, batch_size=25)
    losses = iter([1.0, 0.5, math.inf, 0.1])
    task.train_step = lambda optimizers, batch: next(losses)
    h = problems.train(task, problems.optimizers_for(task, "sgd"), 3)
    assert h.diverged and h.train_loss == [1.0, 0.5, math.inf] and h.steps == 3
    assert h.epochs == [] and set(h.final) == {"train", "val", "test"}


def test_train_checks_the_optimizer_keys():
    task = problems.get("digits-logreg").build(0, n_train=50)
    with pytest.raises(ValueError, match="keys"):
        problems.train(task, {}, 1)


def test_optimizers_for_uses_the_base_default_lr():
    task = problems.get("digits-logreg").build(0, n_train=50)
    opt = problems.optimizers_for(task, "lookahead(sgdm)")["model"]
    assert opt.param_groups[0]["lr"] == 0.01
