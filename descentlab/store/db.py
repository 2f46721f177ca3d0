"""The results store: one SQLite file, resumable, nothing finished is ever lost.

Schema (SQLite in WAL mode, so a reader never blocks the writer):

* ``trials``: one row per trial, keyed by a hash of its full configuration and the package
  version (:func:`trial_key`); ``status`` is ``running``, ``finished`` or ``failed``; ``summary``
  holds the final metrics as JSON.
* ``curves``: the trial's curves (train loss per step; train/val/test loss and metrics per epoch),
  one row per series with its values as a JSON array.
* ``tags``: which experiment ran the trial, under which optimizer label and role (``tune`` for a
  learning-rate search run, ``final`` for a reported run). A trial can serve several experiments.
* ``experiments``: each experiment's specification, as JSON.

Every write is one transaction: a trial's row and its curves appear together or not at all, so a
process killed (even with SIGKILL) loses only the trials that were still running, and those are
rerun next time because their status is not ``finished``.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .. import __version__

__all__ = ["Store", "trial_key"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS trials (
    key TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    version TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'finished', 'failed')),
    started REAL NOT NULL,
    finished REAL,
    wall_time REAL,
    diverged INTEGER,
    error TEXT,
    summary TEXT
);
CREATE TABLE IF NOT EXISTS curves (
    key TEXT NOT NULL REFERENCES trials (key) ON DELETE CASCADE,
    split TEXT NOT NULL,
    metric TEXT NOT NULL,
    unit TEXT NOT NULL CHECK (unit IN ('step', 'epoch')),
    vals TEXT NOT NULL,
    PRIMARY KEY (key, split, metric)
);
CREATE TABLE IF NOT EXISTS tags (
    experiment TEXT NOT NULL,
    role TEXT NOT NULL,
    problem TEXT NOT NULL,
    label TEXT NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (experiment, role, problem, label, key)
);
CREATE TABLE IF NOT EXISTS experiments (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    updated REAL NOT NULL
);
"""


def trial_key(config: Mapping[str, Any], version: str = __version__) -> str:
    """The trial's identity: a hash of its full configuration and the package version."""
    blob = json.dumps({"config": config, "version": version}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


class Store:
    """A results database (``runs.db``); safe to open from several processes.

    Args:
        path: the SQLite file, created with its tables (and its folder) if missing.
    """

    def __init__(self, path: str | Path = "runs.db") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        with self._transaction():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # --- writes -------------------------------------------------------------------------------

    def save_experiment(self, name: str, spec: Mapping[str, Any]) -> None:
        """Record (or replace) an experiment's specification."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO experiments VALUES (?, ?, ?)",
                (name, json.dumps(spec, sort_keys=True, default=str), time.time()),
            )

    def clear_tags(self, experiment: str) -> None:
        """Forget which trials an experiment had (the trials themselves stay)."""
        with self._transaction() as db:
            db.execute("DELETE FROM tags WHERE experiment=?", (experiment,))

    def set_tags(
        self, experiment: str, role: str, problem: str, label: str, keys: Iterable[str]
    ) -> None:
        """Make ``keys`` the trials of one (experiment, role, problem, label) group."""
        with self._transaction() as db:
            db.execute(
                "DELETE FROM tags WHERE experiment=? AND role=? AND problem=? AND label=?",
                (experiment, role, problem, label),
            )
            db.executemany(
                "INSERT OR IGNORE INTO tags VALUES (?, ?, ?, ?, ?)",
                [(experiment, role, problem, label, k) for k in keys],
            )

    def mark_running(self, key: str, config: Mapping[str, Any]) -> None:
        """Record that a trial started; a finished trial of the same key is replaced."""
        with self._transaction() as db:
            db.execute("DELETE FROM curves WHERE key=?", (key,))
            db.execute(
                "INSERT OR REPLACE INTO trials (key, config, version, status, started)"
                " VALUES (?, ?, ?, 'running', ?)",
                (key, json.dumps(config, sort_keys=True), __version__, time.time()),
            )

    def save_result(self, key: str, config: Mapping[str, Any], result: Mapping[str, Any]) -> None:
        """Store a trial's outcome and curves in one transaction."""
        with self._transaction() as db:
            db.execute("DELETE FROM curves WHERE key=?", (key,))
            db.execute(
                "INSERT OR REPLACE INTO trials VALUES (?, ?, ?, ?,"
                " COALESCE((SELECT started FROM trials WHERE key=?), ?), ?, ?, ?, ?, ?)",
                (
                    key,
                    json.dumps(config, sort_keys=True),
                    __version__,
                    result["status"],
                    key,
                    time.time(),
                    time.time(),
                    result["wall_time"],
                    int(result["diverged"]),
                    result.get("error"),
                    json.dumps(result["summary"], sort_keys=True),
                ),
            )
            db.executemany(
                "INSERT INTO curves VALUES (?, ?, ?, ?, ?)",
                [
                    (key, c["split"], c["metric"], c["unit"], json.dumps(c["values"]))
                    for c in result["curves"]
                ],
            )

    # --- reads --------------------------------------------------------------------------------

    def statuses(self, keys: Iterable[str]) -> dict[str, str]:
        """The status of each stored key (keys never started are absent)."""
        keys = list(keys)
        out: dict[str, str] = {}
        for i in range(0, len(keys), 500):  # SQLite caps the number of bound parameters
            chunk = keys[i : i + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(f"SELECT key, status FROM trials WHERE key IN ({marks})", chunk)
            out.update({r["key"]: r["status"] for r in rows})
        return out

    def trial(self, key: str) -> dict[str, Any] | None:
        """One trial's row, with ``config`` and ``summary`` decoded; ``None`` if absent."""
        row = self._db.execute("SELECT * FROM trials WHERE key=?", (key,)).fetchone()
        return None if row is None else _decode(row)

    def trials(self, *, experiment: str | None = None, role: str | None = "final") -> list[dict]:
        """Trials with their tags (one entry per tag), optionally of one experiment and role."""
        sql = (
            "SELECT t.*, g.experiment, g.role, g.problem AS tag_problem, g.label FROM tags g"
            " JOIN trials t ON t.key = g.key WHERE 1=1"
        )
        args: list[Any] = []
        if experiment is not None:
            sql += " AND g.experiment=?"
            args.append(experiment)
        if role is not None:
            sql += " AND g.role=?"
            args.append(role)
        sql += " ORDER BY g.experiment, g.problem, g.label, t.key"
        return [_decode(r) for r in self._db.execute(sql, args)]

    def experiments(self) -> dict[str, dict[str, Any]]:
        """Every stored experiment's specification, by name."""
        rows = self._db.execute("SELECT name, spec FROM experiments ORDER BY name")
        return {r["name"]: json.loads(r["spec"]) for r in rows}

    def curves(self, key: str) -> dict[tuple[str, str], dict[str, Any]]:
        """A trial's curves by ``(split, metric)``: ``{"unit": ..., "values": [...]}``."""
        rows = self._db.execute("SELECT * FROM curves WHERE key=?", (key,))
        return {
            (r["split"], r["metric"]): {"unit": r["unit"], "values": json.loads(r["vals"])}
            for r in rows
        }


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    d = dict(row)
    d["config"] = json.loads(d["config"])
    d["summary"] = json.loads(d["summary"]) if d.get("summary") else {}
    d["diverged"] = bool(d["diverged"]) if d.get("diverged") is not None else False
    return d
