"""The results store: one SQLite file, resumable, nothing finished is ever lost.

Schema (SQLite in WAL mode, so a reader never blocks the writer):

* ``trials``: one row per trial, keyed by a hash of its configuration (:func:`trial_key`), with
  the package version that wrote it; ``status`` is ``running``, ``finished`` or ``failed``;
  ``config`` (the :class:`~descentlab.store.records.Trial`), ``summary`` (the final metrics) and
  ``placement`` (where it ran) are JSON. A store of release 0.1.0 has no ``placement`` column:
  opening it adds the column, and its trials read as CPU, float32 trials.
* ``curves``: the trial's curves (train loss per step; train/val/test loss and metrics per epoch),
  one row per series with its values as a JSON array.
* ``tags``: which experiment ran the trial, under which optimizer label and role (``tune`` for a
  learning-rate search run, ``final`` for a reported run). A trial can serve several experiments.
* ``experiments``: each experiment's specification, as JSON.

Every write is one transaction: a trial's row and its curves appear together or not at all, so a
process killed (even with SIGKILL) loses only the trials that were still running, and those are
rerun next time because their status is not ``finished``.

A file that cannot be a store (not SQLite, truncated, another program's database, damaged pages,
rows of invalid JSON) raises :class:`StoreError` naming the file and the problem. The checks on
opening only read: they run before the store sets WAL mode or creates its tables, so a refused
file is left byte for byte as it was.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from .. import __version__
from ._experiment import StoredExperiment
from ._file import StoreError, check_file
from ._schema import ADDED, SCHEMA, table_columns
from ._summary import Summary
from .records import Curve, Placement, Stored, Tag, Trial, TrialResult

__all__ = ["Store", "StoreError"]

_F = TypeVar("_F", bound=Callable[..., Any])
_T = TypeVar("_T")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True)


def _guarded(method: _F) -> _F:
    """Turn SQLite's errors about the file (damaged, locked, unreadable) into a StoreError.

    Errors of the caller's own making (``IntegrityError``, ``ProgrammingError``) pass unchanged.
    """

    @functools.wraps(method)
    def wrapper(self: Store, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except (sqlite3.IntegrityError, sqlite3.ProgrammingError):
            raise
        except (sqlite3.DatabaseError, UnicodeDecodeError) as e:
            # "malformed", "not a database", or text that is not UTF-8: damaged pages
            damaged = type(e) in (sqlite3.DatabaseError, UnicodeDecodeError)
            hint = "; the file is damaged (restore a copy, or try sqlite3's .recover)"
            raise StoreError(f"{self.path}: {e}{hint if damaged else ''}") from e

    return wrapper  # type: ignore[return-value]


class Store:
    """A results database (``runs.db``); safe to open from several processes.

    Args:
        path: the SQLite file, created with its tables (and its folder) if missing.

    Raises:
        StoreError: the file is not a store (see the module's docstring); it is left unchanged.
    """

    def __init__(self, path: str | Path = "runs.db") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        check_file(self.path)
        try:
            self._db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: cannot open it as SQLite: {e}") from e
        try:
            self._open()
        except BaseException:
            self._db.close()
            raise

    @_guarded
    def _open(self) -> None:
        self._db.row_factory = sqlite3.Row
        exists, missing = self._check_schema()
        if exists:
            self._check_rows()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        with self._transaction():
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            if missing:  # a store of release 0.1.0; another process may have just added them
                found = self._trial_columns()
                for column in (c for c in missing if c not in found):
                    self._db.execute(f"ALTER TABLE trials ADD COLUMN {column} TEXT")

    def _check_schema(self) -> tuple[bool, list[str]]:
        """Whether the file already holds a store, and the columns that releases after it added
        (:data:`ADDED`); a StoreError if it holds something else."""
        rows = self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")
        tables = {r[0] for r in rows}
        expected = table_columns()
        if not tables & set(expected):
            if tables:
                raise StoreError(
                    f"{self.path}: not a descentlab results store: it holds another program's "
                    f"tables ({', '.join(sorted(tables))})"
                )
            return False, []
        missing: list[str] = []
        for table, columns in expected.items():
            if table not in tables:
                raise StoreError(f"{self.path}: not a complete results store: no table {table!r}")
            found = [r[1] for r in self._db.execute(f"PRAGMA table_info({table})")]
            added = [c for c in ADDED.get(table, ()) if c not in found]
            if found + added != columns:
                raise StoreError(
                    f"{self.path}: table {table!r} has the columns {', '.join(found)}; "
                    f"a results store's has {', '.join(columns)}"
                )
            missing += added
        return True, missing

    def _check_rows(self) -> None:
        """Every trial's configuration and summary, and every experiment's spec, is JSON."""
        placement = ", placement" if "placement" in self._trial_columns() else ""
        for r in self._db.execute(f"SELECT key, config, summary{placement} FROM trials"):
            self._trial(r["config"], r["key"])
            if r["summary"] is not None:
                self._json(r["summary"], f"trial {r['key']}: summary")
            if placement:
                self._placement(r["placement"], r["key"])
        for r in self._db.execute("SELECT name, spec FROM experiments"):
            self._json(r["spec"], f"experiment {r['name']}: spec")

    def _trial_columns(self) -> list[str]:
        return [r[1] for r in self._db.execute("PRAGMA table_info(trials)")]

    def _json(self, text: Any, where: str) -> Any:
        try:
            return json.loads(text)
        except (TypeError, ValueError) as e:
            raise StoreError(f"{self.path}: {where} is not valid JSON ({e})") from e

    def _read(self, read: Callable[[Any], _T], text: Any, where: str, kind: str = "one") -> _T:
        """``read`` of the JSON ``text`` (``where``: ``"trial <key>: config"``); a StoreError
        names ``where`` if it is not JSON or ``read`` refuses it (``"... is not a trial"``)."""
        value = self._json(text, where)
        try:
            return read(value)
        except (TypeError, ValueError) as e:
            raise StoreError(f"{self.path}: {where} is not {kind} ({e})") from e

    def _trial(self, text: Any, key: str) -> Trial:
        return self._read(Trial.from_config, text, f"trial {key}: config", "a trial")

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
            if self._db.in_transaction:  # SQLite rolls back by itself on some errors
                self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # --- writes -------------------------------------------------------------------------------

    @_guarded
    def save_experiment(self, name: str, spec: Mapping[str, Any]) -> None:
        """Record (or replace) an experiment's specification."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO experiments VALUES (?, ?, ?)",
                (name, json.dumps(spec, sort_keys=True, default=str), time.time()),
            )

    @_guarded
    def clear_tags(self, experiment: str) -> None:
        """Forget which trials an experiment had (the trials themselves stay)."""
        with self._transaction() as db:
            db.execute("DELETE FROM tags WHERE experiment=?", (experiment,))

    @_guarded
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

    @_guarded
    def mark_running(self, key: str, trial: Trial) -> None:
        """Record that a trial started; a finished trial of the same key is replaced."""
        with self._transaction() as db:
            db.execute("DELETE FROM curves WHERE key=?", (key,))
            db.execute(
                "INSERT OR REPLACE INTO trials (key, config, version, status, started)"
                " VALUES (?, ?, ?, 'running', ?)",
                (key, _dumps(trial.config()), __version__, time.time()),
            )

    @_guarded
    def save_result(self, key: str, trial: Trial, result: TrialResult) -> None:
        """Store a trial's outcome, curves and placement in one transaction."""
        with self._transaction() as db:
            db.execute("DELETE FROM curves WHERE key=?", (key,))
            db.execute(
                "INSERT OR REPLACE INTO trials VALUES (?, ?, ?, ?,"
                " COALESCE((SELECT started FROM trials WHERE key=?), ?), ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    _dumps(trial.config()),
                    __version__,
                    result.status,
                    key,
                    time.time(),
                    time.time(),
                    result.wall_time,
                    int(result.diverged),
                    result.error,
                    _dumps(result.summary.to_json()),
                    _dumps(asdict(result.placement)),
                ),
            )
            db.executemany(
                "INSERT INTO curves VALUES (?, ?, ?, ?, ?)",
                [(key, c.split, c.metric, c.unit, json.dumps(c.values)) for c in result.curves],
            )

    # --- reads --------------------------------------------------------------------------------

    @_guarded
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

    @_guarded
    def record(self, key: str, *, curves: bool = True) -> Stored | None:
        """One stored trial (with its curves unless ``curves=False``); ``None`` if absent."""
        row = self._db.execute("SELECT * FROM trials WHERE key=?", (key,)).fetchone()
        return None if row is None else self._stored(row, curves)

    @_guarded
    def records(
        self, *, experiment: str | None = None, role: str | None = "final", curves: bool = False
    ) -> list[Stored]:
        """Tagged trials (one per tag), optionally of one experiment and role; their results
        carry their curves only with ``curves=True``."""
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
        return [self._stored(r, curves) for r in self._db.execute(sql, args).fetchall()]

    def _stored(self, row: sqlite3.Row, curves: bool) -> Stored:
        key = row["key"]
        result = None
        if row["status"] != "running":
            result = TrialResult(
                status=row["status"],
                diverged=bool(row["diverged"]),
                wall_time=row["wall_time"] or 0.0,
                error=row["error"],
                summary=self._read(
                    Summary.from_json, row["summary"] or "{}", f"trial {key}: summary"
                ),
                curves=self._curves(key) if curves else (),
                placement=self._placement(row["placement"], key),
            )
        tag = None
        if "experiment" in row.keys():  # noqa: SIM118 (`in` on a Row tests its values)
            tag = Tag(row["experiment"], row["role"], row["tag_problem"], row["label"])
        return Stored(
            key=key,
            trial=self._trial(row["config"], key),
            version=row["version"],
            status=row["status"],
            started=row["started"],
            finished=row["finished"],
            result=result,
            tag=tag,
        )

    def _placement(self, text: str | None, key: str) -> Placement:
        if text is None:
            return Placement.unrecorded()
        return self._read(lambda p: Placement(**p), text, f"trial {key}: placement")

    def _curves(self, key: str) -> tuple[Curve, ...]:
        rows = self._db.execute("SELECT * FROM curves WHERE key=? ORDER BY rowid", (key,))
        return tuple(
            Curve(
                r["split"],
                r["metric"],
                r["unit"],
                self._json(r["vals"], f"trial {key}: curve {r['split']}/{r['metric']}"),
            )
            for r in rows
        )

    @_guarded
    def experiments(self) -> dict[str, StoredExperiment]:
        """Every stored experiment (what the report reads of its specification), by name."""
        rows = self._db.execute("SELECT name, spec FROM experiments ORDER BY name")
        read = StoredExperiment.from_json
        return {
            r["name"]: self._read(
                partial(read, r["name"]), r["spec"], f"experiment {r['name']}: spec"
            )
            for r in rows
        }
