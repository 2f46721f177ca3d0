"""The full tuning protocol: weight decay searched with the learning rate for decoupled-decay
optimizers (same budget), one search per tuning seed, a problem entry's own epochs, and the keys
of every trial today's spec files plan unchanged."""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from pathlib import Path

import pytest

from descentlab.lab import SpecError, load, parse, run_experiment
from descentlab.lab.tuning import (
    candidates,
    decoupled,
    lr_candidates,
    plan_final,
    plan_initial,
    searches,
    tunes_weight_decay,
)
from descentlab.store import Store

TINY = "tests.lab.tiny:problem"
ROOT = Path(__file__).resolve().parents[2]
FROZEN = Path(__file__).parent / "frozen_specs"
WD = [1e-3, 1.0]


def _exp(tuning, optimizers=("adam", "adamw"), seeds=2, **more):
    doc = {"problems": [TINY], "optimizers": list(optimizers), "seeds": seeds, "tuning": tuning}
    return parse({**doc, **more})


def _score(trial):
    """A deterministic stand-in for a search run's validation score: a hash of its key."""
    return True, (int(trial.key()[:8], 16) / 16**8, 0.0)


def _rows(exp):
    initial = plan_initial(exp)
    final = plan_final(exp, initial, _score)
    return sorted({(p.tag, p.problem, p.label, p.trial.key()) for p in initial + final})


# --- keys -------------------------------------------------------------------------------------

# The plans (search runs, and the reruns under _score) of the spec files as they were before
# these options existed (copies in frozen_specs/, the running sitting of issue 16 among them),
# digested by that code (commit 0ddc2bc): (distinct tagged trials, sha256 of the sorted rows).
# A mismatch means a trial of these files has another key now: a store would rerun it.
BEFORE = {
    "adam-fixes.toml": (168, "2721578ebf81fcbf591de2fb1d5b85245b9e38e85e0c168ce243b888d78ebddb"),
    "charlm-transformer.toml": (
        5,
        "2c1ae89d8fcb4292b5ce33216d19a53afc4e86738d1e041fb4af90c46b9fd520",
    ),
    "default.toml": (112, "a6f9d381412fd418a22eeb0170e1afe70cf6db2bb4f7c4334934bc5a24c8f2b1"),
    "team-sgd-vs-team-adam-sitting1.toml": (
        330,
        "b1f5c6b9f0308fbd02f23a9d07a54cb70dd26e630ab92e25e1b1dfaecd79db7e",
    ),
    "team-sgd-vs-team-adam.toml": (
        210,
        "32ad5e892911cf8ac8cf8c7be6825a0345f1797be4568433eb86d8428d66645d",
    ),
    "tricks.toml": (456, "6ac5f00d744a0628ac55d86c17c8b79774a5d1ad541f2f40935576cf04a52bf3"),
    "store-0.1.0.toml": (24, "fd3e0d9a98c99d2b9d8c0ae02253558fb45258aeb77bd4a2c0449b00a0c5c913"),
}


@pytest.mark.parametrize("name", sorted(BEFORE))
def test_specs_without_the_new_options_keep_every_key(name):
    path = FROZEN / name if name != "store-0.1.0.toml" else ROOT / "tests/fixtures" / name
    rows = _rows(load(path))
    assert (len(rows), hashlib.sha256(json.dumps(rows).encode()).hexdigest()) == BEFORE[name]


def test_the_first_tuning_seed_plans_the_single_seed_trials():
    one = _exp({"method": "random", "budget": 3, "seed": 0, "weight_decay_range": WD})
    two = _exp({"method": "random", "budget": 3, "seeds": [0, 1], "weight_decay_range": WD})
    first = [row for row in _rows(two) if "@" not in row[0]]
    assert first == _rows(one)
    assert {row[0] for row in _rows(two)} == {"tune", "final", "tune@1", "final@1"}


def test_the_full_team_file_reruns_the_first_sitting_but_adamw():
    sitting = load(FROZEN / "team-sgd-vs-team-adam-sitting1.toml")
    full = load(ROOT / "experiments" / "team-sgd-vs-team-adam.toml")
    small = {p.label for p in sitting.problems}

    def rows(exp):
        return {
            (p.tag, p.problem, p.label, p.trial.key())
            for p in plan_initial(exp)
            if p.repeat is None and p.problem in small
        }

    old, new = rows(sitting), rows(full)
    assert {r for r in old if r[2] != "adamw"} == {r for r in new if r[2] != "adamw"}
    assert len(new) == len(old) == 5 * 6 * 6  # problems x optimizers x budget
    adamw = {r for r in new if r[2] == "adamw"}
    assert adamw and not adamw & old  # its weight decay is searched now
    assert {p.label for p in full.problems} - small == {
        "charlm-transformer[n_eval=20,steps_per_epoch=100]"
    }
    assert [s.repeat for s in searches(full)] == [None, 1]


# --- weight decay -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "hparams", "expected"),
    [
        ("adamw", {}, True),
        ("sgdw", {}, True),
        ("sgdwm", {}, True),
        ("lookahead(adamw)", {}, True),
        ("torch.optim.AdamW", {}, True),
        ("adam", {"decoupled_weight_decay": True}, True),
        ("adam", {}, False),
        ("sgdm", {}, False),
        ("rmsprop", {}, False),
        ("lookahead(adam)", {}, False),
    ],
)
def test_decoupled_is_read_from_the_optimizers_flag(name, hparams, expected):
    exp = _exp({"method": "grid", "budget": 2}, optimizers=[{"name": name, "hparams": hparams}])
    assert decoupled(exp.optimizers[0]) is expected


def test_only_tuned_decoupled_optimizers_without_a_fixed_weight_decay_search_it():
    optimizers = [
        "adamw",
        "adam",
        {"name": "adamw", "label": "fixed", "hparams": {"weight_decay": 0.1}},
        {"name": "adamw", "label": "untuned", "tune": False},
    ]
    exp = _exp({"method": "random", "budget": 4, "weight_decay_range": WD}, optimizers)
    assert [tunes_weight_decay(o, exp.tuning) for o in exp.optimizers] == [True] + [False] * 3
    no_range = _exp({"method": "random", "budget": 4}, optimizers)
    assert not any(tunes_weight_decay(o, no_range.tuning) for o in no_range.optimizers)
    by_label = Counter(
        (p.label, "weight_decay" in p.trial.hparams) for p in plan_initial(exp) if p.role == "tune"
    )
    assert by_label == {("adamw", True): 4, ("adam", False): 4, ("fixed", True): 4}
    fixed = {p.trial.hparams["weight_decay"] for p in plan_initial(exp) if p.label == "fixed"}
    assert fixed == {0.1}


def test_a_weight_decay_axis_is_not_searched_over():
    doc = {"weight_decay": [0, {"value": 1e-4, "coupling": "l2"}], "design": "one-at-a-time"}
    exp = _exp({"method": "grid", "budget": 4, "weight_decay_range": WD}, ["adamw"], **doc)
    base, axis = exp.variants_for(exp.problems[0])
    assert tunes_weight_decay(exp.optimizers[0], exp.tuning, base)
    assert not tunes_weight_decay(exp.optimizers[0], exp.tuning, axis)


def test_random_joint_search_keeps_everyones_learning_rate_quantiles():
    exp = _exp(
        {"method": "random", "budget": 6, "seed": 3, "weight_decay_range": WD},
        optimizers=["adam", "adamw", "sgdw"],
    )
    adam, adamw, sgdw = exp.optimizers
    joint = candidates(adamw, exp.tuning, weight_decay=True)
    assert len(joint) == 6 == len(lr_candidates(adam, exp.tuning))
    # adam and adamw share lr0 = 1e-3: the same learning rates, the weight decay besides
    assert [c["lr"] for c in joint] == lr_candidates(adam, exp.tuning)
    assert all(WD[0] <= c["weight_decay"] <= WD[1] for c in joint)
    assert len({c["weight_decay"] for c in joint}) == 6
    # every decoupled optimizer gets the same weight decays (the range is absolute)
    assert [c["weight_decay"] for c in candidates(sgdw, exp.tuning, weight_decay=True)] == [
        c["weight_decay"] for c in joint
    ]
    other = candidates(adamw, exp.tuning, seed=4, weight_decay=True)
    assert [c["weight_decay"] for c in other] != [c["weight_decay"] for c in joint]


@pytest.mark.parametrize(
    ("budget", "n_lr", "n_wd"), [(1, 1, 1), (3, 3, 1), (5, 2, 2), (6, 3, 2), (9, 3, 3)]
)
def test_grid_joint_search_is_a_product_within_the_budget(budget, n_lr, n_wd):
    exp = _exp(
        {"method": "grid", "budget": budget, "lr_range": [1e-3, 1e-1], "weight_decay_range": WD}
    )
    grid = candidates(exp.optimizers[1], exp.tuning, weight_decay=True)
    lrs = sorted({c["lr"] for c in grid})
    wds = sorted({c["weight_decay"] for c in grid})
    assert (len(lrs), len(wds), len(grid)) == (n_lr, n_wd, n_lr * n_wd)
    assert len(grid) <= budget
    assert {(c["lr"], c["weight_decay"]) for c in grid} == {(a, b) for a in lrs for b in wds}
    if n_wd == 1:  # one weight decay: the middle of the range (log scale)
        assert wds == [pytest.approx(math.sqrt(WD[0] * WD[1]), rel=1e-3)]
    else:  # the ends of the range
        assert (wds[0], wds[-1]) == (WD[0], WD[1])
    assert [c["lr"] for c in grid] == sorted(c["lr"] for c in grid)


def test_reruns_take_the_chosen_weight_decay():
    exp = _exp({"method": "grid", "budget": 4, "weight_decay_range": WD}, optimizers=["adamw"])
    plan = plan_initial(exp)
    best = {"lr": 1e-2, "weight_decay": 1.0}  # the largest lr and the largest weight decay

    def score(trial):
        hit = all(trial.hparams[k] == v for k, v in best.items())
        return True, (1.0 if hit else 0.5, 1.0)

    final = plan_final(exp, plan, score)
    assert {(p.trial.hparams["lr"], p.trial.hparams["weight_decay"]) for p in final} == {
        (1e-2, 1.0)
    }
    assert sorted(p.trial.seed for p in final) == [0, 1]
    diverged = plan_final(exp, plan, lambda t: (True, None))  # all diverged: the smallest lr
    assert {p.trial.hparams["lr"] for p in diverged} == {1e-4}


# --- tuning seeds -----------------------------------------------------------------------------


def test_each_tuning_seed_draws_and_trains_its_own_search():
    exp = _exp({"method": "random", "budget": 3, "seeds": [0, 1]}, seeds=3)
    tune = [p for p in plan_initial(exp) if p.role == "tune"]
    by_search = {}
    for p in tune:
        by_search.setdefault(p.repeat, []).append(p)
    assert {k: len(v) for k, v in by_search.items()} == {None: 6, 1: 6}  # the same budget
    assert {p.trial.seed for p in by_search[None]} == {0}
    assert {p.trial.seed for p in by_search[1]} == {1}
    lrs = [{p.trial.hparams["lr"] for p in by_search[k] if p.label == "adam"} for k in (None, 1)]
    assert lrs[0] != lrs[1]  # other draws
    assert {p.tag for p in by_search[1]} == {"tune@1"}


def test_each_search_reruns_its_own_choice_on_every_seed():
    exp = _exp({"method": "grid", "budget": 3, "seeds": [0, 1]}, optimizers=["adam"], seeds=3)
    # the search trained from seed 0 likes the smallest lr, the one from seed 1 the largest
    want = {0: 1e-4, 1: 1e-2}

    def score(trial):
        return True, (1.0 if trial.hparams["lr"] == want[trial.seed] else 0.0, 1.0)

    final = plan_final(exp, plan_initial(exp), score)
    chosen = {(p.tag, p.trial.hparams["lr"]) for p in final}
    assert chosen == {("final", 1e-4), ("final@1", 1e-2)}
    assert Counter(p.tag for p in final) == {"final": 3, "final@1": 3}


def test_untuned_rows_are_in_every_search_and_defaults_method_has_one():
    exp = _exp(
        {"method": "grid", "budget": 2, "seeds": [0, 5], "defaults": True}, optimizers=["adam"]
    )
    tags = Counter((p.tag, p.label) for p in plan_initial(exp) if p.role == "final")
    assert tags == {("final", "adam@defaults"): 2, ("final@5", "adam@defaults"): 2}
    plain = _exp({"method": "defaults", "seeds": [0, 5]}, optimizers=["adam"])
    assert {p.tag for p in plan_initial(plain)} == {"final"}


def test_shared_reruns_run_once(tmp_path):
    # one setting per search: both searches choose it, so every rerun is shared, and each
    # search's run on its own training seed is also that seed's rerun
    exp = _exp({"method": "grid", "budget": 1, "seeds": [0, 1]}, optimizers=["sgdm", "adam"])
    summary = run_experiment(exp, db=tmp_path / "runs.db", progress=False)
    assert summary.planned == summary.finished == 2 * 2  # optimizers x seeds
    with Store(tmp_path / "runs.db") as store:
        first = store.records(role="final")
        second = store.records(role="final@1")
        tune = store.records(role="tune") + store.records(role="tune@1")
    assert sorted(t.key for t in first) == sorted(t.key for t in second)
    assert {t.key for t in tune} <= {t.key for t in first} and len(tune) == 4


# --- a problem's own epochs -------------------------------------------------------------------


def test_a_problem_entry_carries_its_own_epochs():
    doc = {
        "problems": [TINY, {"name": TINY, "options": {"width": 4}, "epochs": 7}],
        "optimizers": ["adam"],
        "tuning": {"method": "grid", "budget": 1},
    }
    epochs = {p.problem: p.trial.epochs for p in plan_initial(parse(doc))}
    assert epochs == {TINY: 3, f"{TINY}[width=4]": 7}  # the problem's budget, its own
    over = {p.problem: p.trial.epochs for p in plan_initial(parse({**doc, "epochs": 2}))}
    assert over == {TINY: 2, f"{TINY}[width=4]": 7}  # its own wins over the experiment's
    short = parse({**doc, "tuning": {"method": "grid", "budget": 1, "epochs": 1}})
    assert {p.trial.epochs for p in plan_initial(short) if p.role == "tune"} == {1}
    assert {p.trial.epochs for p in plan_final(short, plan_initial(short), _score)} == {3, 7}


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tuning", "message"),
    [
        ({"weight_decay_range": 0.1}, r"^tuning\.weight_decay_range: 0\.1; expected \[low, high\]"),
        ({"weight_decay_range": [1e-3]}, r"^tuning\.weight_decay_range: \[0\.001\]; expected"),
        ({"weight_decay_range": [0, 1]}, r"^tuning\.weight_decay_range\[0\]: 0"),
        ({"weight_decay_range": [1e-3, "x"]}, r"^tuning\.weight_decay_range\[1\]: 'x'"),
        ({"weight_decay_range": [1, 1e-3]}, r"^tuning\.weight_decay_range: .*low <= high"),
        ({"seeds": []}, r"^tuning\.seeds: \[\]; expected a count"),
        ({"seeds": [0, 0]}, r"^tuning\.seeds: \[0, 0\]; expected distinct seeds"),
        ({"seeds": [0, -1]}, r"^tuning\.seeds\[1\]: -1"),
        ({"seeds": "0"}, r"^tuning\.seeds: '0'; expected a count"),
        ({"seeds": [0, 1], "seed": 0}, r"^tuning\.seeds: \[0, 1\]; .*tuning\.seed is also given"),
        ({"weight_decay_ranges": [1e-3, 1]}, r"tuning\.weight_decay_ranges.*weight_decay_range"),
    ],
)
def test_invalid_tuning_options_name_the_key(tuning, message):
    with pytest.raises(SpecError, match=message):
        _exp(tuning)


@pytest.mark.parametrize(
    ("epochs", "message"),
    [(0, r"^problems\[0\]\.epochs: 0; expected an integer >= 1"), ("4", r"problems\[0\]\.epochs")],
)
def test_invalid_problem_epochs_name_the_entry(epochs, message):
    with pytest.raises(SpecError, match=message):
        parse({"problems": [{"name": TINY, "epochs": epochs}], "optimizers": ["adam"]})


def test_a_count_of_tuning_seeds():
    exp = _exp({"seeds": 2})
    assert exp.tuning.seeds == (0, 1) and [s.repeat for s in searches(exp)] == [None, 1]
