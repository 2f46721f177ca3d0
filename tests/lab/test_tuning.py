"""Tuning: the same learning-rate budget for every optimizer, chosen on validation, rerun on seeds."""

from __future__ import annotations

import math

import pytest

from descentlab.lab import parse
from descentlab.lab.tuning import choose, lr_candidates, plan_final, plan_initial

TINY = "tests.lab.tiny:problem"


def _exp(tuning, optimizers=("adam", "sgd"), seeds=3):
    return parse(
        {"problems": [TINY], "optimizers": list(optimizers), "seeds": seeds, "tuning": tuning}
    )


@pytest.mark.parametrize("method", ["grid", "random"])
def test_every_optimizer_gets_the_same_budget_in_its_range(method):
    exp = _exp({"method": method, "budget": 5, "lr_factor": 10.0})
    for opt, lr0 in zip(exp.optimizers, (1e-3, 0.1)):  # the registry's default learning rates
        lrs = lr_candidates(opt, exp.tuning)
        assert len(lrs) == 5
        assert lrs == sorted(lrs)
        assert all(lr0 / 10 * 0.999 <= lr <= lr0 * 10 * 1.001 for lr in lrs)
    if method == "grid":  # log-spaced, ends included, the default in the middle
        assert lr_candidates(exp.optimizers[0], exp.tuning) == [
            1e-4,
            3.162e-4,
            1e-3,
            3.162e-3,
            1e-2,
        ]
    else:  # the same quantiles for every optimizer: the ratios to lr0 agree
        a, b = (lr_candidates(o, exp.tuning) for o in exp.optimizers)
        assert [x / 1e-3 for x in a] == pytest.approx([y / 0.1 for y in b], rel=1e-3)


def test_random_search_is_seeded():
    a = _exp({"method": "random", "budget": 4, "seed": 1})
    b = _exp({"method": "random", "budget": 4, "seed": 2})
    assert lr_candidates(a.optimizers[0], a.tuning) == lr_candidates(a.optimizers[0], a.tuning)
    assert lr_candidates(a.optimizers[0], a.tuning) != lr_candidates(b.optimizers[0], b.tuning)


def test_absolute_range_is_shared():
    exp = _exp({"method": "grid", "budget": 3, "lr_range": [1e-3, 1e-1]})
    assert all(lr_candidates(o, exp.tuning) == [1e-3, 1e-2, 1e-1] for o in exp.optimizers)


def test_choose_skips_diverged_and_respects_direction():
    scores = [(0.1, (0.5, 1.0)), (0.2, None), (0.3, (math.nan, 1.0)), (0.4, (0.7, 1.0))]
    assert choose(scores, higher_is_better=True) == 0.4
    assert choose(scores, higher_is_better=False) == 0.1
    assert choose([(0.1, None)], higher_is_better=True) is None


def test_choose_breaks_metric_ties_with_the_validation_loss():
    scores = [(0.1, (0.9, 0.5)), (0.2, (0.9, 0.3)), (0.3, (0.9, 0.3)), (0.4, (0.8, 0.1))]
    assert choose(scores, higher_is_better=True) == 0.2  # then the first of equal losses


def test_plan_initial_tunes_on_one_seed_and_runs_defaults_on_all():
    exp = _exp({"method": "grid", "budget": 2, "seed": 7, "defaults": True})
    plan = plan_initial(exp)
    tune = [p for p in plan if p.role == "tune"]
    final = [p for p in plan if p.role == "final"]
    assert len(tune) == 2 * 2 and {p.trial.seed for p in tune} == {7}
    assert {p.label for p in final} == {"adam@defaults", "sgd@defaults"}
    assert sorted(p.trial.seed for p in final) == [0, 0, 1, 1, 2, 2]
    assert {p.trial.hparams["lr"] for p in final if p.label == "sgd@defaults"} == {0.1}
    assert {p.trial.epochs for p in plan} == {3}  # the problem's budget


def test_defaults_method_runs_no_search():
    plan = plan_initial(_exp({"method": "defaults"}))
    assert {p.role for p in plan} == {"final"}
    assert {p.label for p in plan} == {"adam", "sgd"}


def test_plan_final_reruns_the_best_on_every_seed_once_search_is_complete():
    exp = _exp({"method": "grid", "budget": 3}, optimizers=("adam", "sgd"))
    plan = plan_initial(exp)
    # validation score: adam best at its largest lr, sgd at its smallest; sgd incomplete if asked
    best = {"adam": 1e-2, "sgd": 0.01}

    def score(trial):
        lr = trial.hparams["lr"]
        return True, (1.0 if lr == best[trial.optimizer] else 0.5, 1.0)

    final = plan_final(exp, plan, score)
    assert {(p.label, p.trial.hparams["lr"]) for p in final} == {("adam", 1e-2), ("sgd", 0.01)}
    assert sorted(p.trial.seed for p in final if p.label == "adam") == [0, 1, 2]

    def incomplete(trial):
        return trial.optimizer == "adam", (1.0, 1.0)

    assert {p.label for p in plan_final(exp, plan, incomplete)} == {"adam"}


def test_all_diverged_reruns_the_smallest_lr():
    exp = _exp({"method": "grid", "budget": 3}, optimizers=("sgd",))
    final = plan_final(exp, plan_initial(exp), lambda c: (True, None))
    assert {p.trial.hparams["lr"] for p in final} == {0.01}
