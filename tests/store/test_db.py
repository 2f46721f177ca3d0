"""The store: keys, WAL, atomic writes, tags, and the CSV / pandas exports."""

from __future__ import annotations

import sqlite3
import sys

import pytest

from descentlab.store import Store, load_results, results, to_csv, trial_key

CONFIG = {"problem": "p", "seed": 0, "optimizer": "adam", "hparams": {"lr": 0.1, "eps": 1e-8}}


def _result(status="finished", value=1.0):
    return {
        "status": status,
        "diverged": False,
        "wall_time": 0.5,
        "error": None,
        "summary": {"final": {"test": {"loss": value}}, "epochs_to_target": 2},
        "curves": [
            {"split": "train", "metric": "step_loss", "unit": "step", "values": [3.0, 2.0]},
            {"split": "test", "metric": "loss", "unit": "epoch", "values": [3.0, value]},
        ],
    }


def test_key_hashes_the_full_config_and_the_version():
    same = {"seed": 0, "hparams": {"eps": 1e-8, "lr": 0.1}, "optimizer": "adam", "problem": "p"}
    assert trial_key(CONFIG) == trial_key(same)  # key order does not matter
    assert trial_key(CONFIG) != trial_key({**CONFIG, "seed": 1})
    assert trial_key(CONFIG) != trial_key({**CONFIG, "hparams": {"lr": 0.1}})
    assert trial_key(CONFIG, "0.1.0") != trial_key(CONFIG, "0.2.0")


def test_wal_mode_and_lifecycle(tmp_path):
    with Store(tmp_path / "new" / "runs.db") as store:
        key = trial_key(CONFIG)
        assert store.statuses([key]) == {}
        store.mark_running(key, CONFIG)
        assert store.statuses([key]) == {key: "running"}
        store.save_result(key, CONFIG, _result())
        row = store.trial(key)
        assert row["status"] == "finished" and row["config"] == CONFIG
        assert row["summary"]["epochs_to_target"] == 2 and row["started"] <= row["finished"]
        assert store.curves(key)["test", "loss"] == {"unit": "epoch", "values": [3.0, 1.0]}
    con = sqlite3.connect(tmp_path / "new" / "runs.db")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_failed_write_leaves_nothing_half_written(tmp_path):
    with Store(tmp_path / "runs.db") as store:
        key = trial_key(CONFIG)
        store.mark_running(key, CONFIG)
        broken = _result()
        broken["curves"].append(broken["curves"][0])  # the same series twice: rejected
        with pytest.raises(sqlite3.IntegrityError):
            store.save_result(key, CONFIG, broken)
        assert store.statuses([key]) == {key: "running"}
        assert store.curves(key) == {}


def test_rerunning_a_trial_replaces_its_row_and_curves(tmp_path):
    with Store(tmp_path / "runs.db") as store:
        key = trial_key(CONFIG)
        store.save_result(key, CONFIG, _result(value=1.0))
        store.mark_running(key, CONFIG)
        assert store.curves(key) == {}
        store.save_result(key, CONFIG, _result(value=0.5))
        assert store.curves(key)["test", "loss"]["values"] == [3.0, 0.5]
        assert len(store.statuses([key])) == 1


def _filled(tmp_path):
    db = tmp_path / "runs.db"
    with Store(db) as store:
        for seed in (0, 1):
            config = {**CONFIG, "seed": seed, "epochs": 2, "batch_size": 8}
            key = trial_key(config)
            store.save_result(key, config, _result(value=1.0 + seed))
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
