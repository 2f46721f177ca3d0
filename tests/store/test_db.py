"""The store: keys, WAL, atomic writes, tags, and the CSV / pandas exports."""

from __future__ import annotations

import sqlite3
import sys

import pytest

from descentlab.store import (
    Curve,
    Placement,
    Store,
    Trial,
    TrialResult,
    load_results,
    results,
    to_csv,
    trial_key,
)

CONFIG = {"problem": "p", "seed": 0, "optimizer": "adam", "hparams": {"lr": 0.1, "eps": 1e-8}}
TRIAL = Trial("p", 0, 2, 8, "adam", hparams={"lr": 0.1, "eps": 1e-8})


def _result(status="finished", value=1.0, curves=None):
    return TrialResult(
        status,
        wall_time=0.5,
        summary={"final": {"test": {"loss": value}}, "epochs_to_target": 2},
        curves=curves
        or (
            Curve("train", "step_loss", "step", [3.0, 2.0]),
            Curve("test", "loss", "epoch", [3.0, value]),
        ),
        placement=Placement("cuda", "H200", "2.13.0", "12.8", "bf16"),
    )


def test_key_hashes_the_full_config_and_the_version():
    same = {"seed": 0, "hparams": {"eps": 1e-8, "lr": 0.1}, "optimizer": "adam", "problem": "p"}
    assert trial_key(CONFIG) == trial_key(same)  # key order does not matter
    assert trial_key(CONFIG) != trial_key({**CONFIG, "seed": 1})
    assert trial_key(CONFIG) != trial_key({**CONFIG, "hparams": {"lr": 0.1}})
    assert trial_key(CONFIG, "0.1.0") != trial_key(CONFIG, "0.2.0")


def test_trial_key_is_the_key_of_its_config():
    assert TRIAL.key() == trial_key(TRIAL) == trial_key(TRIAL.config())
    old = {**CONFIG, "epochs": 2, "batch_size": 8, "options": {}}
    assert TRIAL.config() == {**old, "schedule": None, "schedule_args": {}}  # as 0.1.0 wrote it
    on_gpu = Trial("p", 0, 2, 8, "adam", hparams={"lr": 0.1, "eps": 1e-8}, device="cuda")
    bf16 = Trial("p", 0, 2, 8, "adam", hparams={"lr": 0.1, "eps": 1e-8}, precision="bf16")
    assert len({TRIAL.key(), on_gpu.key(), bf16.key()}) == 3
    assert Trial.from_config(on_gpu.config()) == on_gpu
    with pytest.raises(ValueError, match="unknown keys colour"):
        Trial.from_config({**TRIAL.config(), "colour": "red"})


def _curve_rows(db):
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT COUNT(*) FROM curves").fetchone()[0]
    finally:
        con.close()


def test_wal_mode_and_lifecycle(tmp_path):
    with Store(tmp_path / "new" / "runs.db") as store:
        key = TRIAL.key()
        assert store.statuses([key]) == {}
        store.mark_running(key, TRIAL)
        assert store.statuses([key]) == {key: "running"}
        assert store.record(key).result is None
        store.save_result(key, TRIAL, _result())
        row = store.record(key)
        assert row.status == "finished" and row.trial == TRIAL
        assert row.result == _result()
        assert row.result.summary["epochs_to_target"] == 2 and row.started <= row.finished
        assert row.result.curve("test", "loss") == [3.0, 1.0]
        assert row.result.curves[1] == Curve("test", "loss", "epoch", [3.0, 1.0])  # in order
    con = sqlite3.connect(tmp_path / "new" / "runs.db")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_failed_write_leaves_nothing_half_written(tmp_path):
    with Store(tmp_path / "runs.db") as store:
        key = TRIAL.key()
        store.mark_running(key, TRIAL)
        twice = Curve("train", "step_loss", "step", [3.0, 2.0])
        broken = _result(curves=(twice, twice))  # the same series twice: rejected
        with pytest.raises(sqlite3.IntegrityError):
            store.save_result(key, TRIAL, broken)
        assert store.statuses([key]) == {key: "running"}
    assert _curve_rows(tmp_path / "runs.db") == 0


def test_rerunning_a_trial_replaces_its_row_and_curves(tmp_path):
    with Store(tmp_path / "runs.db") as store:
        key = TRIAL.key()
        store.save_result(key, TRIAL, _result(value=1.0))
        store.mark_running(key, TRIAL)
        assert store.record(key).result is None
        assert _curve_rows(tmp_path / "runs.db") == 0
        store.save_result(key, TRIAL, _result(value=0.5))
        assert store.record(key).result.curve("test", "loss") == [3.0, 0.5]
        assert len(store.statuses([key])) == 1


def _filled(tmp_path):
    db = tmp_path / "runs.db"
    with Store(db) as store:
        for seed in (0, 1):
            trial = Trial("p", seed, 2, 8, "adam", hparams={"lr": 0.1, "eps": 1e-8})
            key = trial.key()
            store.save_result(key, trial, _result(value=1.0 + seed))
            store.set_tags("exp", "final", "p", "adam", [key])  # replaces: only seed 1 stays
        store.set_tags("exp", "tune", "p", "adam", [key])
    return db


def test_tags_and_flat_rows(tmp_path):
    db = _filled(tmp_path)
    final = results(db)
    assert [(r["experiment"], r["label"], r["seed"], r["test_loss"]) for r in final] == [
        ("exp", "adam", 1, 2.0)
    ]
    assert len(results(db, role=None)) == 2 and len(results(db, experiment="other")) == 0


def test_csv_export(tmp_path):
    path = to_csv(_filled(tmp_path), tmp_path / "out" / "runs.csv", role=None)
    lines = path.read_text().splitlines()
    assert lines[0].startswith("experiment,role,problem,label,seed,optimizer,lr,status")
    assert len(lines) == 3


def test_load_results_dataframe(tmp_path):
    pd = pytest.importorskip("pandas")
    df = load_results(_filled(tmp_path))
    assert isinstance(df, pd.DataFrame) and list(df["test_loss"]) == [2.0]


def test_load_results_without_pandas_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"pip install 'descentlab\[lab\]'"):
        load_results(_filled(tmp_path))


def test_missing_store_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no results store"):
        results(tmp_path / "none.db")
