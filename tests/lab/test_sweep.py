"""Sweeps: pool, serial and Ray give the same rows; re-runs skip finished trials; SIGKILL loses
only the trials in flight."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from descentlab.lab import load, run_experiment
from descentlab.store import Store

ROOT = Path(__file__).resolve().parents[2]

EXPERIMENT = """
problems = ["tests.lab.tiny:{problem}"]
seeds = {seeds}
[tuning]
method = "{method}"
budget = 2
[[optimizers]]
name = "sgdm"
[[optimizers]]
name = "adam"
"""


def _write(tmp_path, *, problem="problem", seeds=2, method="grid"):
    path = tmp_path / "exp.toml"
    path.write_text(EXPERIMENT.format(problem=problem, seeds=seeds, method=method))
    return path


def rows(db):
    """Everything a trial computed (not its timings), by key."""
    with Store(db) as store:
        out = {}
        for t in store.records(role=None, curves=True):
            r = t.result
            curves = {(c.split, c.metric): c.values for c in r.curves if c.split != "time"}
            out[t.key, t.tag.role, t.tag.label] = (
                t.status,
                r.diverged,
                r.summary.get("final"),
                r.summary.get("epochs_to_target"),
                curves,
            )
        return out


def test_sweep_runs_search_then_best_on_every_seed(tmp_path):
    exp = load(_write(tmp_path))
    summary = run_experiment(exp, db=tmp_path / "runs.db", progress=False)
    # 2 optimizers x 2 lrs on seed 0, then the best lr on seeds 0 (already run) and 1
    assert summary.finished == 2 * 2 + 2 and summary.failed == 0
    with Store(tmp_path / "runs.db") as store:
        final = store.records(experiment="exp", role="final")
        tune = store.records(experiment="exp", role="tune")
    assert len(tune) == 4 and len(final) == 4
    for label in ("sgdm", "adam"):
        lrs = {t.trial.hparams["lr"] for t in final if t.tag.label == label}
        assert len(lrs) == 1
        best = max(
            (t for t in tune if t.tag.label == label),
            key=lambda t: t.result.final("val", "accuracy"),
        )
        assert lrs == {best.trial.hparams["lr"]}


def test_rerun_skips_finished_trials(tmp_path):
    exp = load(_write(tmp_path))
    run_experiment(exp, db=tmp_path / "runs.db", progress=False)
    again = run_experiment(exp, db=tmp_path / "runs.db", progress=False)
    assert again.ran == 0 and again.skipped == again.planned == 6


def test_max_trials_caps_and_the_next_run_finishes(tmp_path):
    exp = load(_write(tmp_path))
    capped = run_experiment(exp, db=tmp_path / "a.db", max_trials=3, progress=False)
    # sgdm's search is complete after 3 runs, so its rerun on seed 1 is planned and capped too
    assert capped.ran == 3 and capped.capped == 2
    rest = run_experiment(exp, db=tmp_path / "a.db", progress=False)
    assert rest.skipped == 3 and rest.ran == 3
    run_experiment(exp, db=tmp_path / "b.db", progress=False)
    assert rows(tmp_path / "a.db") == rows(tmp_path / "b.db")


def test_pool_gives_the_same_rows_as_serial(tmp_path):
    exp = load(_write(tmp_path))
    run_experiment(exp, db=tmp_path / "serial.db", workers=1, progress=False)
    run_experiment(exp, db=tmp_path / "pool.db", workers=2, progress=False)
    serial = rows(tmp_path / "serial.db")
    assert len(serial) == 8  # 4 search runs, 4 reported runs (2 of them also search runs)
    assert rows(tmp_path / "pool.db") == serial


def test_ray_gives_the_same_rows_as_the_pool(tmp_path):
    pytest.importorskip("ray")
    exp = load(_write(tmp_path))
    run_experiment(exp, db=tmp_path / "pool.db", workers=2, progress=False)
    run_experiment(exp, db=tmp_path / "ray.db", workers=2, backend="ray", progress=False)
    assert rows(tmp_path / "ray.db") == rows(tmp_path / "pool.db")


def _count(db, status):
    if not db.exists():
        return 0
    with sqlite3.connect(db, timeout=30) as con:
        try:
            query = "SELECT COUNT(*) FROM trials WHERE status=?"
            return con.execute(query, (status,)).fetchone()[0]
        except sqlite3.OperationalError:  # the sweep has created the file, not yet its tables
            return 0


def test_an_edited_experiment_reports_only_what_it_contains(tmp_path):
    db = tmp_path / "runs.db"
    run_experiment(load(_write(tmp_path)), db=db, progress=False)
    fewer = tmp_path / "exp.toml"
    fewer.write_text(fewer.read_text().replace('[[optimizers]]\nname = "adam"\n', ""))
    again = run_experiment(load(fewer), db=db, progress=False)
    assert again.ran == 0  # sgdm's trials are all there
    with Store(db) as store:
        assert {t.tag.label for t in store.records(experiment="exp", role=None)} == {"sgdm"}
    assert _count(db, "finished") == 6  # adam's trials stay in the store


def test_a_dead_worker_fails_its_trial_not_the_sweep(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text(
        'problems = ["tests.lab.tiny:dies", "tests.lab.tiny:problem"]\nseeds = 2\n'
        '[tuning]\nmethod = "defaults"\n[[optimizers]]\nname = "sgdm"\n'
    )
    db = tmp_path / "runs.db"
    first = run_experiment(load(path), db=db, workers=2, progress=False)
    assert first.failed >= 2 and first.ran == 4  # the dying trials, maybe one beside them
    second = run_experiment(load(path), db=db, workers=2, progress=False)
    assert second.skipped == first.finished and second.finished == 4 - first.finished - 2
    with Store(db) as store:
        for t in store.records(role=None):
            dies = t.trial.problem.endswith(":dies")
            assert t.status == ("failed" if dies else "finished")
            assert not dies or "died" in t.result.error
