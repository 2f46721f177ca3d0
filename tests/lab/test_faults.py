"""Faults during a sweep: a Ray worker killed mid-trial, and the sweep killed at several moments.

* Ray: the worker process running a trial is killed (SIGKILL of its own pid, as the
  out-of-memory killer would); Ray retries the task, so the trial is finished once, with the
  result of a clean run: nothing lost, nothing duplicated.
* SIGKILL of the sweep after 1, 3 and 5 finished trials and at a random moment (fixed seed;
  seconds after the first trial finished, capped so that the kill comes before the last round):
  every trial the store had as finished is still there after the rerun with the same result and
  timestamp (lost = 0), the rerun skips them all, each trial is stored once, and SQLite's
  ``PRAGMA integrity_check`` passes after the kill and after the rerun. ``pytest -s`` prints the
  totals (reported in the README's reliability section).
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from descentlab.lab import load, run_experiment
from descentlab.store import Store

from .test_sweep import ROOT, _count, rows
from .tiny import DIE_ONCE

EXPERIMENT = """
problems = ["tests.lab.tiny:{problem}"]
seeds = {seeds}
[tuning]
method = "defaults"
[[optimizers]]
name = "sgdm"
[[optimizers]]
name = "adam"
"""
TRIALS = 8  # 2 optimizers x 4 seeds, untuned
_rng = random.Random(2026)  # the random kill moments: fixed, so CI is deterministic
KILLS = [("after", 1), ("after", 3), ("after", 5), ("at", round(_rng.uniform(0.0, 2.0), 2))]
TOTALS = {"kill points": 0, "finished before the kills": 0, "lost": 0, "rerun": 0}
KILLED: list[str] = []  # one line per kill point, printed with the totals


def _experiment(tmp_path: Path, problem: str, seeds: int) -> Path:
    path = tmp_path / "exp.toml"
    path.write_text(EXPERIMENT.format(problem=problem, seeds=seeds))
    return path


def _integrity(db: Path) -> str:
    with sqlite3.connect(db, timeout=30) as con:
        return con.execute("PRAGMA integrity_check").fetchone()[0]


def test_a_killed_ray_worker_gets_its_trial_retried(tmp_path, monkeypatch):
    pytest.importorskip("ray")
    exp = load(_experiment(tmp_path, "dies_once", 3))
    monkeypatch.delenv(DIE_ONCE, raising=False)
    clean = run_experiment(exp, db=tmp_path / "clean.db", progress=False)
    assert clean.finished == 6

    marker = tmp_path / "killed"
    monkeypatch.setenv(DIE_ONCE, str(marker))  # the local Ray instance's workers inherit it
    summary = run_experiment(exp, db=tmp_path / "ray.db", workers=2, backend="ray", progress=False)
    pid = int(marker.read_text())  # a worker did kill itself in the middle of a trial...
    assert pid != os.getpid()
    assert summary.finished == 6 and summary.failed == 0  # ...and its trial came back once
    with sqlite3.connect(tmp_path / "ray.db") as con:
        n, keys, done = con.execute(
            "SELECT COUNT(*), COUNT(DISTINCT key), SUM(status = 'finished') FROM trials"
        ).fetchone()
    assert n == keys == done == 6
    assert rows(tmp_path / "ray.db") == rows(tmp_path / "clean.db")  # the clean run's results


def _finished(db: Path) -> dict[str, tuple]:
    """Each finished trial's timestamp, outcome and curves (timings aside), by key."""
    with Store(db) as store:
        out = {}
        for t in store.records(role=None, curves=True):
            if t.status == "finished":
                r = t.result
                curves = {(c.split, c.metric): c.values for c in r.curves if c.split != "time"}
                out[t.key] = (t.finished, r.summary.get("final"), curves)
        return out


def _kill_sweep(exp_path: Path, db: Path, how: str, when: float) -> None:
    """Run the sweep in a child process (2 workers) and SIGKILL it at the given moment."""
    code = (
        "from descentlab.lab import load, run_experiment;"
        f"run_experiment(load({str(exp_path)!r}), db={str(db)!r}, workers=2, progress=False)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, start_new_session=True, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 120
        # "after": once `when` trials are finished; "at": `when` seconds after the first one
        while _count(db, "finished") < (when if how == "after" else 1):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the sweep did not get there in time"
            time.sleep(0.02)
        if how == "at":  # ...but before the sweep's last round, whatever the machine's speed
            end = time.monotonic() + when
            while time.monotonic() < end and _count(db, "finished") < TRIALS - 2:
                time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the pool's orphaned workers


@pytest.fixture(scope="module")
def totals():
    yield TOTALS
    print("\n" + "\n".join(KILLED))
    print(
        f"SIGKILL of the sweep: {TOTALS['kill points']} kill points, "
        f"{TOTALS['finished before the kills']} trials finished before the kills, "
        f"{TOTALS['lost']} lost; {TOTALS['rerun']} trials rerun"
    )


@pytest.mark.parametrize(("how", "when"), KILLS, ids=[f"{h}-{w}" for h, w in KILLS])
def test_sigkill_at_several_moments_loses_no_finished_trial(tmp_path, totals, how, when):
    exp_path = _experiment(tmp_path, "slow", TRIALS // 2)
    db = tmp_path / "runs.db"
    _kill_sweep(exp_path, db, how, when)
    assert _integrity(db) == "ok"
    before = _finished(db)
    assert len(before) >= (when if how == "after" else 1)
    assert len(before) < TRIALS, "the sweep ended before the kill: nothing was tested"
    running = _count(db, "running")
    assert running <= 2  # at most the two workers' trials were in flight

    summary = run_experiment(load(exp_path), db=db, workers=1, progress=False)
    assert summary.skipped == len(before) and summary.ran == TRIALS - len(before)
    after = _finished(db)
    lost = [k for k, v in before.items() if after.get(k) != v]
    totals["kill points"] += 1
    totals["finished before the kills"] += len(before)
    totals["lost"] += len(lost)
    totals["rerun"] += summary.ran
    KILLED.append(f"kill {how} {when}: {len(before)} finished, {running} running; {len(lost)} lost")
    assert not lost
    assert len(after) == TRIALS
    with sqlite3.connect(db) as con:
        n, keys = con.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM trials").fetchone()
        curves = con.execute("SELECT COUNT(*) FROM curves").fetchone()[0]
    assert n == keys == TRIALS
    assert curves == 8 * TRIALS  # every curve of every trial, once
    assert _integrity(db) == "ok"
