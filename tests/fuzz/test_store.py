"""Corrupted results stores: a clear StoreError naming the file, and the file left as it was.

Random bytes, a store truncated anywhere, another program's SQLite database, rows of invalid
JSON and random byte flips go through ``Store`` and the ``report``, ``export`` and ``run``
commands. Opening must raise :class:`~descentlab.store.StoreError` (never a raw ``sqlite3``
error) or work; a refused file keeps every byte.
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from typer.testing import CliRunner

from descentlab.cli import app
from descentlab.store import Curve, Store, StoreError, Trial, TrialResult

from ._strategies import assert_raised_by_us, fuzz

EXAMPLES = 100  # per fuzzed test; deterministic (derandomized), reported in docs/reliability.md
FUZZ = fuzz(EXAMPLES)
TRIALS = 40


def _result(i: int) -> TrialResult:
    return TrialResult(
        "finished",
        wall_time=0.1 * i,
        summary={"final": {"val": {"loss": 1.0 / (i + 1)}}, "main_metric": "loss"},
        curves=(
            Curve("train", "loss", "step", [1.0 / (i + 1)] * 60),
            Curve("val", "loss", "epoch", [0.5, 0.25]),
        ),
    )


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    """A healthy store of 40 finished trials (several pages), closed."""
    path = tmp_path_factory.mktemp("good") / "runs.db"
    with Store(path) as store:
        store.save_experiment("exp", {"name": "exp"})
        keys = []
        for i in range(TRIALS):
            trial = Trial("p", i, 1, 8, "sgd", hparams={"lr": 0.1})
            keys.append(trial.key())
            store.mark_running(keys[-1], trial)
            store.save_result(keys[-1], trial, _result(i))
        store.set_tags("exp", "final", "p", "sgd", keys)
    assert not Path(f"{path}-wal").exists()  # closing checkpointed everything into the file
    return path


def _fresh(tmp_path: Path, name: str) -> Path:
    """A path in a new folder: no ``-wal`` or ``-shm`` file of an earlier example beside it."""
    return Path(tempfile.mkdtemp(dir=tmp_path)) / name


def _read_all(path: Path) -> None:
    """Everything a report reads (every trial of the fixture is tagged)."""
    with Store(path) as store:
        store.experiments()
        for t in store.records(role=None):
            store.record(t.key)  # with its curves


def _refused(path: Path, *words: str) -> StoreError:
    """Opening and reading ``path`` raises a StoreError naming it (and ``words``); no change."""
    before = path.read_bytes()
    with pytest.raises(StoreError) as info:
        _read_all(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    assert all(w in message for w in words), message
    assert_raised_by_us(info.value)
    assert path.read_bytes() == before
    return info.value


@FUZZ
@given(data=st.binary(min_size=1, max_size=8192))
def test_random_bytes_are_not_a_store(tmp_path, data):
    path = _fresh(tmp_path, "junk.db")
    path.write_bytes(data)
    _refused(path)


@FUZZ
@given(rest=st.binary(min_size=0, max_size=8192))
def test_random_bytes_behind_sqlites_magic_are_refused(tmp_path, rest):
    path = _fresh(tmp_path, "junk.db")
    path.write_bytes(b"SQLite format 3\x00" + rest)
    _refused(path)


def test_a_text_file_is_named_as_not_sqlite(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n")
    _refused(path, "not a SQLite database")


@FUZZ
@given(fraction=st.floats(0.0, 1.0, exclude_max=True))
def test_a_truncated_store_is_refused(tmp_path, good, fraction):
    data = good.read_bytes()
    path = _fresh(tmp_path, "cut.db")
    path.write_bytes(data[: max(1, int(len(data) * fraction))])
    _refused(path, "truncated" if len(data) * fraction >= 16 else "not a SQLite database")


@pytest.mark.parametrize("pages", [1, 2, 5])
def test_a_store_cut_at_a_page_boundary_is_refused(tmp_path, good, pages):
    path = tmp_path / "cut.db"
    path.write_bytes(good.read_bytes()[: 4096 * pages])
    _refused(path, "truncated", "header says")


@pytest.mark.parametrize(
    ("script", "words"),
    [
        ("CREATE TABLE users (id, name); INSERT INTO users VALUES (1, 'a');", "tables (users)"),
        (
            "CREATE TABLE trials (id, score); CREATE TABLE curves (x);"
            "CREATE TABLE tags (x); CREATE TABLE experiments (x);",
            "table 'trials' has the columns id, score",
        ),
    ],
    ids=["other-tables", "other-trials-table"],
)
def test_another_programs_database_is_refused(tmp_path, script, words):
    path = tmp_path / "other.db"
    con = sqlite3.connect(path)
    con.executescript(script)
    con.close()
    _refused(path, words)


def test_a_store_missing_a_table_is_refused(tmp_path, good):
    path = tmp_path / "runs.db"
    path.write_bytes(good.read_bytes())
    con = sqlite3.connect(path)
    con.execute("DROP TABLE tags")
    con.close()
    _refused(path, "no table 'tags'")


def test_an_empty_sqlite_database_becomes_a_store(tmp_path):
    path = tmp_path / "empty.db"
    sqlite3.connect(path).close()  # zero bytes
    with Store(path) as store:
        assert store.records(role=None) == []


def _corrupt(path: Path, good: Path, sql: str) -> str:
    path.write_bytes(good.read_bytes())
    con = sqlite3.connect(path)
    key = con.execute("SELECT key FROM trials ORDER BY key LIMIT 1").fetchone()[0]
    con.execute(sql, (key,))
    con.commit()
    con.close()
    return key


@pytest.mark.parametrize(
    ("sql", "words"),
    [
        ("UPDATE trials SET config='{\"seed\": 1' WHERE key=?", ["trial {key}: config", "JSON"]),
        ("UPDATE trials SET summary='[nan]' WHERE key=?", ["trial {key}: summary", "JSON"]),
        ("UPDATE trials SET config='{\"seed\": 1}' WHERE key=?", ["trial {key}: config", "not a"]),
        ("UPDATE trials SET placement='[1' WHERE key=?", ["trial {key}: placement", "JSON"]),
        ("UPDATE trials SET config=x'00ff' WHERE key=?", ["trial {key}: config", "JSON"]),
        ("UPDATE curves SET vals='[1, 2' WHERE key=?", ["trial {key}: curve train/loss", "JSON"]),
        ("UPDATE experiments SET spec='{' WHERE name<>?", ["experiment exp: spec", "JSON"]),
    ],
    ids=["config", "summary", "not-a-trial", "placement", "bytes", "curve", "experiment"],
)
def test_invalid_json_in_rows_is_named(tmp_path, good, sql, words):
    path = tmp_path / "runs.db"
    key = _corrupt(path, good, sql)
    _refused(path, *(w.format(key=key) for w in words))


@FUZZ
@given(
    flips=st.lists(st.tuples(st.integers(0, 10**9), st.integers(1, 255)), min_size=1, max_size=8)
)
def test_flipped_bytes_give_a_store_error_or_a_readable_store(tmp_path, good, flips):
    path = _fresh(tmp_path, "flipped.db")
    data = bytearray(good.read_bytes())
    for at, mask in flips:
        data[at % len(data)] ^= mask
    path.write_bytes(bytes(data))
    try:
        _read_all(path)
    except StoreError as e:
        assert str(e).startswith(f"{path}: ")
        assert_raised_by_us(e)
        assert path.read_bytes() == data
        event("refused")
    else:
        event("still readable")


EXPERIMENT = """
problems = ["tests.lab.tiny:problem"]
[tuning]
method = "defaults"
[[optimizers]]
name = "sgd"
"""


def _bad_stores(tmp_path: Path, good: Path) -> dict[str, Path]:
    stores = {"junk": tmp_path / "junk.db", "cut": tmp_path / "cut.db"}
    stores["junk"].write_bytes(bytes(range(256)) * 4)
    stores["cut"].write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    stores["other"] = tmp_path / "other.db"
    con = sqlite3.connect(stores["other"])
    con.execute("CREATE TABLE users (id INTEGER)")
    con.close()
    stores["json"] = tmp_path / "json.db"
    _corrupt(stores["json"], good, "UPDATE trials SET summary='{' WHERE key=?")
    return stores


@pytest.mark.parametrize("command", ["report", "export", "run"])
def test_commands_exit_2_with_one_line_naming_the_store(tmp_path, good, command):
    exp = tmp_path / "exp.toml"
    exp.write_text(EXPERIMENT)
    runner = CliRunner()
    for name, db in _bad_stores(tmp_path, good).items():
        before = db.read_bytes()
        args = {
            "report": ["report", str(db), "-o", str(tmp_path / "report")],
            "export": ["export", str(db), "--csv", str(tmp_path / "out.csv")],
            "run": ["run", str(exp), "--db", str(db)],
        }[command]
        r = runner.invoke(app, args, env={"COLUMNS": "1000"})  # no wrapping of long paths
        assert r.exit_code == 2, (name, r.output)
        lines = r.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {db}: "), (name, r.output)
        assert db.read_bytes() == before, name
        assert not (tmp_path / "out.csv").exists()
