"""The store's tables (see :mod:`descentlab.store.db` for what each row holds)."""

from __future__ import annotations

import functools
import sqlite3

__all__ = ["ADDED", "SCHEMA", "table_columns"]

ADDED = {"trials": ("placement",)}
"""Columns added after release 0.1.0, last in their table; an older store gains them on opening."""

SCHEMA = """
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
    summary TEXT,
    placement TEXT
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


@functools.cache
def table_columns() -> dict[str, list[str]]:
    """Each table of the schema and its columns, read from the schema itself (in memory)."""
    db = sqlite3.connect(":memory:")
    try:
        db.executescript(SCHEMA)
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: [r[1] for r in db.execute(f"PRAGMA table_info({t})")] for t in tables}
    finally:
        db.close()
