"""Quasi-random search and refinement: even cover of the range at any budget, the same points for
every optimizer, a second stage around the first stage's best in the same budget, resumable."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from descentlab.lab import SpecError, parse, run_experiment
from descentlab.lab._points import unit_points
from descentlab.lab.tuning import (
    candidates,
    lr_candidates,
    plan_final,
    plan_initial,
    plan_refine,
    refinements,
)
from descentlab.store import Store

TINY = "tests.lab.tiny:problem"
LR = [1e-4, 1e-1]
WD = [1e-4, 1.0]


def _exp(tuning, optimizers=("adam", "sgd"), seeds=2):
    doc = {"problems": [TINY], "optimizers": list(optimizers), "seeds": seeds, "tuning": tuning}
    return parse(doc)


def _unit(x: float, lo: float, hi: float) -> float:
    return math.log(x / lo) / math.log(hi / lo)


# --- quasi-random points ----------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 4, 8, 16, 32, 64])
@pytest.mark.parametrize("seed", [0, 1, 7])
def test_the_unit_points_are_a_net(n, seed):
    u_lr, u_wd = unit_points("quasi-random", n, seed, joint=True)
    for u in (u_lr, u_wd):  # each of n equal bins of either coordinate: exactly one point
        assert sorted(np.floor(u * n).astype(int).tolist()) == list(range(n))
    assert list(u_lr) == sorted(u_lr)
    side = math.isqrt(n)
    if side * side == n:  # and each of the side x side cells of the square: exactly one
        cells = Counter(zip(np.floor(u_lr * side).tolist(), np.floor(u_wd * side).tolist()))
        assert len(cells) == n and set(cells.values()) == {1}


def _bins(values, lo, hi, n):
    """The bins of n equal log-bins of [lo, hi] that hold a value (within its rounding to 4
    significant digits: a value at a boundary counts for both bins)."""
    out = set()
    for x in values:
        u = _unit(x, lo, hi) * n
        out |= {math.floor(u - 1e-3 * n), math.floor(u + 1e-3 * n)} & set(range(n))
    return out


@pytest.mark.parametrize("budget", [2, 4, 8, 16, 32])
@pytest.mark.parametrize("seed", [0, 1, 7])
def test_every_equal_log_bin_of_the_range_gets_a_learning_rate(budget, seed):
    exp = _exp({"method": "quasi-random", "budget": budget, "lr_range": LR, "seed": seed})
    lrs = lr_candidates(exp.optimizers[0], exp.tuning)
    assert len(lrs) == budget and lrs == sorted(lrs)
    assert _bins(lrs, *LR, budget) == set(range(budget))


def test_joint_settings_cover_both_ranges():
    exp = _exp(
        {"method": "quasi-random", "budget": 16, "lr_range": LR, "weight_decay_range": WD},
        optimizers=["adamw"],
    )
    joint = candidates(exp.optimizers[0], exp.tuning, weight_decay=True)
    assert _bins([c["lr"] for c in joint], *LR, 16) == set(range(16))
    assert _bins([c["weight_decay"] for c in joint], *WD, 16) == set(range(16))
    u_lr, u_wd = unit_points("quasi-random", 16, 0, joint=True)  # the first search's draw seed
    assert [c["lr"] for c in joint] == pytest.approx(
        [LR[0] * (LR[1] / LR[0]) ** u for u in u_lr], rel=1e-3
    )
    assert [c["weight_decay"] for c in joint] == pytest.approx(
        [WD[0] * (WD[1] / WD[0]) ** u for u in u_wd], rel=1e-3
    )


def test_points_are_reproducible_and_differ_across_seeds():
    def lrs(seed):
        exp = _exp({"method": "quasi-random", "budget": 8, "seed": seed})
        return lr_candidates(exp.optimizers[0], exp.tuning)

    assert lrs(3) == lrs(3)
    assert lrs(3) != lrs(4)
    exp = _exp({"method": "quasi-random", "budget": 8, "seeds": [0, 1]})
    tune = [p for p in plan_initial(exp) if p.role == "tune" and p.label == "adam"]
    by_search = {r: {p.trial.hparams["lr"] for p in tune if p.repeat == r} for r in (None, 1)}
    assert by_search[None] == set(lrs(0)) and by_search[1] == set(lrs(1))


def test_every_optimizer_gets_the_same_points_in_its_own_range():
    exp = _exp(
        {"method": "quasi-random", "budget": 6, "lr_factor": 10.0, "weight_decay_range": WD},
        optimizers=["adam", "sgd", "adamw"],
    )
    adam, sgd, adamw = exp.optimizers
    a, b = lr_candidates(adam, exp.tuning), lr_candidates(sgd, exp.tuning)
    assert len(a) == len(b) == 6
    assert [x / 1e-3 for x in a] == pytest.approx([y / 0.1 for y in b], rel=1e-3)
    assert all(1e-4 * 0.999 <= x <= 1e-2 * 1.001 for x in a)
    joint = candidates(adamw, exp.tuning, weight_decay=True)
    assert [c["lr"] for c in joint] == a  # a joint search keeps everyone's learning rates
    assert all(WD[0] <= c["weight_decay"] <= WD[1] for c in joint)


def test_a_quasi_random_search_of_one_is_the_default():
    exp = _exp({"method": "quasi-random", "budget": 1})
    assert lr_candidates(exp.optimizers[0], exp.tuning) == [1e-3]


# --- refinement -------------------------------------------------------------------------------


def _best_at(target):
    """A score that prefers the learning rate closest to ``target`` (in log distance)."""

    def score(trial):
        return True, (-abs(math.log(trial.hparams["lr"] / target)), 0.0)

    return score


@pytest.mark.parametrize("method", ["random", "quasi-random"])
def test_refinement_points_lie_around_the_first_stages_best(method):
    tuning = {"method": method, "budget": 8, "refine": 3, "lr_range": LR, "seed": 2}
    exp = _exp(tuning, optimizers=["adam"])
    initial = plan_initial(exp)
    first = [p.trial.hparams["lr"] for p in initial if p.role == "tune"]
    assert len(first) == 8 - 3
    score = _best_at(3e-3)
    best = min(first, key=lambda lr: abs(math.log(lr / 3e-3)))
    refined = plan_refine(exp, initial, score)
    lrs = [p.trial.hparams["lr"] for p in refined]
    assert len(lrs) == 3 and all(p.refined and p.tag == "tune" for p in refined)
    assert all(best / 3 * 0.999 <= lr <= best * 3 * 1.001 for lr in lrs)
    assert not set(lrs) & set(first)
    assert {p.trial.seed for p in refined} == {p.trial.seed for p in initial if p.role == "tune"}
    assert plan_final(exp, initial, score) == []  # the search is complete with its refinement
    final = plan_final(exp, initial + refined, score)
    chosen = min(first + lrs, key=lambda lr: abs(math.log(lr / 3e-3)))
    assert {p.trial.hparams["lr"] for p in final} == {chosen}
    assert sorted(p.trial.seed for p in final) == [0, 1]


def test_refinement_keeps_the_budget_equal_and_stays_in_the_range():
    tuning = {"method": "quasi-random", "budget": 6, "refine": 2, "weight_decay_range": WD}
    exp = _exp(tuning, optimizers=["adam", "sgd", "adamw"])
    initial = plan_initial(exp)
    refined = plan_refine(exp, initial, _best_at(1.0))  # the largest lr of each: at the top edge
    budget = Counter(p.label for p in initial + refined if p.role == "tune")
    assert budget == {"adam": 6, "sgd": 6, "adamw": 6}
    for p in refined:
        top = {"sgd": 1.0, "adam": 1e-2, "adamw": 1e-2}[p.label]
        assert top / 3 * 0.999 <= p.trial.hparams["lr"] <= top  # clipped to the first range
    wds = {
        p.trial.hparams["weight_decay"] for p in initial if p.label == "adamw" and p.role == "tune"
    }
    best = max(
        (p for p in initial if p.label == "adamw" and p.role == "tune"),
        key=lambda p: p.trial.hparams["lr"],
    ).trial.hparams["weight_decay"]
    around = [p.trial.hparams["weight_decay"] for p in refined if p.label == "adamw"]
    assert wds and all(max(best / 3, WD[0]) * 0.999 <= w <= best * 3 * 1.001 for w in around)


def test_refinements_use_the_same_unit_points_for_every_optimizer():
    exp = _exp({"method": "quasi-random", "budget": 8, "refine": 4}, optimizers=["adam", "sgd"])
    adam, sgd = exp.optimizers
    a = refinements(adam, exp.tuning, {"lr": 1e-3}, seed=0)
    b = refinements(sgd, exp.tuning, {"lr": 0.1}, seed=0)
    assert [x["lr"] / 1e-3 for x in a] == pytest.approx([y["lr"] / 0.1 for y in b], rel=1e-3)
    u = sorted(math.log(x["lr"] / (1e-3 / 3)) / math.log(9) for x in a)
    assert Counter(math.floor(v * 4) for v in u) == {0: 1, 1: 1, 2: 1, 3: 1}
    assert refinements(adam, exp.tuning, {"lr": 1e-3}, seed=1) != a


def test_all_diverged_refines_around_the_smallest_lr():
    exp = _exp({"method": "random", "budget": 5, "refine": 2, "lr_range": LR}, optimizers=["sgd"])
    initial = plan_initial(exp)
    smallest = min(p.trial.hparams["lr"] for p in initial if p.role == "tune")
    refined = plan_refine(exp, initial, lambda t: (True, None))
    assert all(smallest * 0.999 / 3 <= p.trial.hparams["lr"] <= smallest * 3.001 for p in refined)


def test_an_incomplete_first_stage_is_not_refined():
    exp = _exp({"method": "random", "budget": 4, "refine": 1})
    initial = plan_initial(exp)
    refined = plan_refine(exp, initial, lambda t: (t.optimizer == "adam", (1.0, 1.0)))
    assert {p.label for p in refined} == {"adam"}


# --- a sweep with a refinement ----------------------------------------------------------------


def _rows(db):
    with Store(db) as store:
        return {
            (t.key, t.tag.role, t.tag.label): (t.status, t.result.summary.get("final"))
            for t in store.records(role=None)
        }


def test_a_resumed_sweep_runs_nothing_twice(tmp_path):
    exp = _exp({"method": "quasi-random", "budget": 4, "refine": 2}, optimizers=["sgdm", "adam"])
    full = run_experiment(exp, db=tmp_path / "full.db", progress=False)
    # 2 optimizers x (2 + 2 search runs), then the best on seed 1 (seed 0's run is a search run)
    assert full.finished == 2 * 4 + 2 and full.failed == 0
    ran = 0
    for cap in (3, 3, 3, None):  # stop inside the first stage, the refinement, the reruns
        s = run_experiment(exp, db=tmp_path / "parts.db", max_trials=cap, progress=False)
        ran += s.ran
    assert ran == full.ran
    assert _rows(tmp_path / "parts.db") == _rows(tmp_path / "full.db")
    again = run_experiment(exp, db=tmp_path / "parts.db", progress=False)
    assert again.ran == 0 and again.skipped == again.planned == full.planned
    with Store(tmp_path / "full.db") as store:
        tune = Counter(t.tag.label for t in store.records(role="tune"))
    assert tune == {"sgdm": 4, "adam": 4}


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tuning", "message"),
    [
        (
            {"method": "quasirandom"},
            r"^tuning\.method: 'quasirandom'; allowed: 'grid', 'random', 'defaults', "
            r"'quasi-random' \(did you mean 'quasi-random'\?\)",
        ),
        ({"budget": 6, "refine": 6}, r"^tuning\.refine: 6; expected .*< tuning\.budget \(6\)"),
        ({"budget": 2, "refine": 5}, r"^tuning\.refine: 5; expected .*< tuning\.budget \(2\)"),
        ({"refine": -1}, r"^tuning\.refine: -1; expected an integer >= 0"),
        ({"refine": "2"}, r"^tuning\.refine: '2'; expected an integer"),
        ({"refine": 1.5}, r"^tuning\.refine: 1\.5; expected an integer"),
        (
            {"method": "grid", "refine": 2},
            r"^tuning\.refine: 2; method 'grid' draws no points to refine; "
            r"use 'random' or 'quasi-random'",
        ),
        ({"method": "defaults", "refine": 1}, r"^tuning\.refine: 1; method 'defaults'"),
        ({"refine": 2, "refine_factor": 1}, r"^tuning\.refine_factor: 1\.0; expected a number > 1"),
        ({"refine_factor": 0}, r"^tuning\.refine_factor: 0; expected a positive"),
        ({"refines": 2}, r"tuning\.refines: unknown key.*did you mean 'refine'"),
    ],
)
def test_invalid_search_options_name_the_key_and_the_valid_values(tuning, message):
    with pytest.raises(SpecError, match=message):
        _exp(tuning)


def test_refine_zero_is_the_search_without_a_refinement():
    plain = _exp({"method": "random", "budget": 5, "seed": 3})
    zero = _exp({"method": "random", "budget": 5, "seed": 3, "refine": 0})
    assert [p.trial.key() for p in plan_initial(plain)] == [
        p.trial.key() for p in plan_initial(zero)
    ]
    assert plan_refine(zero, plan_initial(zero), lambda t: (True, (1.0, 1.0))) == []
    assert np.isclose(zero.tuning.refine_factor, 3.0)
