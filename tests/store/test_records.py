"""The typed records read from a store: a trial's summary and a stored experiment, from any
release's JSON, written back as they were read, and a bad stored value refused by name."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from descentlab.store import (
    Pretrained,
    Row,
    Store,
    StoredExperiment,
    StoreError,
    Summary,
    Target,
    Trial,
    TrialResult,
    Tuning,
)

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "store-0.1.0.db"
OLD = {  # a summary as release 0.1.0 stored it (one of the fixture's)
    "epochs_done": 3,
    "epochs_to_target": None,
    "examples_per_epoch": 96,
    "final": {"test": {"accuracy": 0.0417, "loss": 1.1978}, "val": {"loss": 1.2}},
    "higher_is_better": True,
    "main_metric": "accuracy",
    "seconds_to_target": None,
    "steps": 9,
    "steps_per_epoch": 3,
    "target": {"higher_is_better": True, "metric": "accuracy", "split": "val", "value": 0.9},
    "train_seconds": 0.0849,
}


def test_a_stored_summary_reads_typed_and_writes_back_as_it_was():
    s = Summary.from_json(OLD)
    assert s.main_metric == "accuracy" and s.higher_is_better is True and s.steps == 9
    assert s.target == Target("accuracy", 0.9, True, "val") and not s.target.reached(0.5)
    assert s.value("test", "loss") == 1.1978 and s.epochs_to_target is None
    assert s.sharpness is None and s.pretrained is None and s.extra == {}
    text = json.dumps(OLD, sort_keys=True)
    assert json.dumps(s.to_json()) == text  # the same JSON, nulls and key order included
    assert s["final"] == OLD["final"] and dict(s) == OLD  # the plain dict's reads still work


@pytest.mark.parametrize(
    "doc",
    [
        {"final": {"val": {"loss": 1.0}}, "main_metric": "loss"},  # absent keys stay absent
        {"device": "cuda:1", "epochs_to_target": 2},  # a key this release does not know
        {**OLD, "sharpness": None},  # measured on a task without one: null stays null
        {**OLD, "pretrained": {"problem": "digits-mlp", "epochs": 2, "seconds": 1.5}},
        {},
    ],
)
def test_any_summary_round_trips(doc):
    s = Summary.from_json(doc)
    assert s.to_json() == doc and Summary.from_json(s.to_json()) == s


def test_a_summary_built_in_code_writes_its_times_to_target_as_null():
    s = Summary(
        main_metric="loss", final={"val": {"loss": 1.0}}, pretrained=Pretrained("p", 2, 0.5)
    )
    assert s.to_json() == {
        "epochs_to_target": None,
        "final": {"val": {"loss": 1.0}},
        "main_metric": "loss",
        "pretrained": {"epochs": 2, "problem": "p", "seconds": 0.5},
        "seconds_to_target": None,
    }
    assert TrialResult("finished", summary=s.to_json()).summary == s  # a mapping is read


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"main_metric": 3}, "summary.main_metric: 3; expected a string"),
        ({"steps": 2.5}, "summary.steps: 2.5; expected an integer"),
        ({"train_seconds": True}, "summary.train_seconds: True; expected a number"),
        ({"final": {"val": 1.0}}, "summary.final.val: 1.0; expected a table"),
        ({"target": {"metric": "loss"}}, "summary.target.value: missing; expected a number"),
        ({"pretrained": {"problem": 1}}, "summary.pretrained.problem: 1; expected a string"),
        ([1], r"summary: \[1\]; expected a table"),
    ],
)
def test_a_bad_summary_value_names_the_field(doc, message):
    with pytest.raises(ValueError, match=message):
        Summary.from_json(doc)


def test_the_store_refuses_a_bad_summary_naming_the_file_trial_and_field(tmp_path):
    db = tmp_path / "runs.db"
    shutil.copy(FIXTURE, db)
    con = sqlite3.connect(db)
    with con:
        (key,) = con.execute("SELECT key FROM trials LIMIT 1").fetchone()
        con.execute("UPDATE trials SET summary=? WHERE key=?", ('{"steps": "9"}', key))
    con.close()
    with Store(db) as store, pytest.raises(StoreError) as info:
        store.record(key)
    message = str(info.value)
    assert str(db) in message and f"trial {key}: summary" in message
    assert "summary.steps: '9'; expected an integer" in message


def test_a_stored_experiment_reads_typed(tmp_path):
    shutil.copy(FIXTURE, tmp_path / "runs.db")  # opening a store may write beside it
    with Store(tmp_path / "runs.db") as store:
        (spec,) = store.experiments().values()
    assert spec.name == "fixture-0.1.0" and spec.seeds == (0, 1)
    assert spec.tuning == Tuning(method="grid", budget=2, defaults=True)
    assert spec.problem_labels == ("tests.lab.tiny:problem",)
    assert spec.rows[1] == Row(
        "sgdm [wd=0.001 decoupled]", "sgdm", "wd=0.001 decoupled", ("weight_decay",)
    )
    assert spec.labels[0] == "sgdm [wd=0]" and spec.changed("adam [wd=0]") == ()
    assert spec.optimizers == ("sgdm", "adam") and spec.variants == ("wd=0", "wd=0.001 decoupled")
    assert spec.tuning_seeds == [0]  # a single search trains on the first seed


def test_an_older_or_smaller_stored_experiment_takes_defaults():
    spec = StoredExperiment.from_json("e", {"name": "e", "optimizers": [{"label": "adam"}]})
    assert spec.labels == ["adam"]  # no rows: the optimizers' order
    assert spec.tuning.method == "defaults" and spec.tuning_seeds == []  # no tuning: not tuned
    t = StoredExperiment.from_json("e", {"tuning": {"method": "random", "seeds": [3, 1]}}).tuning
    assert t.seeds == (3, 1) and t.budget == Tuning.budget


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"seeds": "x"}, "seeds: 'x'; expected a list"),
        ({"seeds": [0, "1"]}, r"seeds\[1\]: '1'; expected an integer"),
        ({"tuning": {"budget": "6"}}, "tuning.budget: '6'; expected an integer"),
        ({"tuning": {"lr_range": [1e-3]}}, r"tuning.lr_range: \[0.001\]; expected \[low, high\]"),
        ({"rows": [{"label": "a"}]}, r"rows\[0\]: .*; expected a table with label and optimizer"),
        ({"rows": [{"label": "a", "optimizer": "a", "changed": "x"}]}, "rows.0..changed: 'x'"),
        ({"optimizers": [{"label": 2}]}, r"optimizers\[0\].label: 2; expected a string"),
    ],
)
def test_a_bad_stored_experiment_value_names_the_field(doc, message):
    with pytest.raises(ValueError, match=message):
        StoredExperiment.from_json("e", doc)


def test_the_store_refuses_a_bad_experiment_naming_the_file_experiment_and_field(tmp_path):
    db = tmp_path / "runs.db"
    with Store(db) as store:
        store.save_experiment("e", {"name": "e", "tuning": {"method": "grid", "budget": "3"}})
    with Store(db) as store, pytest.raises(StoreError) as info:
        store.experiments()
    message = str(info.value)
    assert str(db) in message and "experiment e: spec" in message
    assert "tuning.budget: '3'; expected an integer" in message


def test_a_trial_result_saved_and_read_keeps_its_summary(tmp_path):
    trial = Trial("p", 0, 1, 8, "sgd", hparams={"lr": 0.1})
    result = TrialResult("finished", summary=OLD)
    with Store(tmp_path / "runs.db") as store:
        store.save_result(trial.key(), trial, result)
        stored = store.record(trial.key())
    assert stored.result.summary == result.summary and stored.result.summary.to_json() == OLD
