"""Every listing fits 80 columns with no name cut, whatever the terminal; details behind NAME."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from types import SimpleNamespace

import pytest
import typer
from typer.testing import CliRunner

from descentlab.cli import app
from descentlab.cli._common import show
from descentlab.cli.lab import _results
from descentlab.optim import REGISTRY, WRAPPERS
from descentlab.problems import PROBLEMS
from descentlab.report import SummaryRow
from descentlab.schedules import REGISTRY as SCHEDULES

LISTINGS = {
    "problems": list(PROBLEMS),
    "optimizers": [*REGISTRY, *(f"{w}(<name>)" for w in WRAPPERS)],
    "schedules": list(SCHEDULES),
}


def _invoke(monkeypatch, columns: int, *args: str) -> str:
    monkeypatch.setenv("COLUMNS", str(columns))
    r = CliRunner().invoke(app, list(args))
    assert r.exit_code == 0, r.output
    return r.stdout


def _readable(text: str) -> list[str]:
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    assert "…" not in text
    return lines


@pytest.mark.parametrize("command", LISTINGS)
def test_listing_one_line_per_name_at_80_columns(monkeypatch, command):
    narrow, wide = (_invoke(monkeypatch, c, command) for c in (40, 200))
    assert narrow == wide  # the terminal's width changes nothing
    lines = _readable(narrow)
    starts = [line.split()[0] for line in lines if line.strip()]
    for name in LISTINGS[command]:
        assert starts.count(name) == 1, name  # each name whole, on one line of its own
    assert lines[-1] == f"Details{lines[-1].partition('Details')[2]}"
    assert lines[-1].endswith(f"descentlab {command} NAME")


@pytest.mark.parametrize(
    ("command", "name", "words"),
    [
        ("problems", "digits-mlp", ["description:", "source:", "val accuracy >= 0.96"]),
        ("optimizers", "nag", ["paper:", "Sutskever et al. 2013", "momentum=0.9, nesterov=True"]),
        ("optimizers", "lookahead", ["descentlab.optim.lookahead.Lookahead", "k=5, alpha=0.5"]),
        ("optimizers", "noisy(<name>)", ["GradientNoise"]),
        ("schedules", "onecycle", ["momentum:", "max_lr, pct_start"]),
    ],
)
def test_details_behind_a_name(monkeypatch, command, name, words):
    narrow, wide = (_invoke(monkeypatch, c, command, name) for c in (40, 200))
    assert narrow == wide
    text = " ".join(line.strip() for line in _readable(narrow))
    assert text.startswith(name.removesuffix("(<name>)"))
    for word in words:
        assert word in text


@pytest.mark.parametrize(
    ("command", "name", "hint"),
    [
        ("problems", "digit-mlp", "did you mean digits-mlp"),
        ("optimizers", "adma", "did you mean adam"),
        ("schedules", "cosin", "did you mean cosine?"),
        ("problems", "zzz", "known: " + ", ".join(PROBLEMS)),
    ],
)
def test_an_unknown_name_is_one_error_line_with_close_matches(command, name, hint):
    r = CliRunner().invoke(app, [command, name])
    assert r.exit_code == 2 and r.stdout == ""
    (line,) = r.stderr.splitlines()
    assert line.startswith(f"error: unknown {command[:-1]} {name!r}; {hint}")


def _stats(median: float, q1: float, q3: float) -> SimpleNamespace:
    return SimpleNamespace(median=median, q1=q1, q3=q3)


def test_compare_table_keeps_names_and_iqr_on_one_line(capsys):
    labels = ["lookahead(adam)", "lookahead(sgdm)", "adabound"]
    rows = [
        SummaryRow(
            label=label,
            lrs=[0.0003],
            runs=5,
            diverged=0,
            metric="accuracy",
            train_loss=_stats(0.01234, 0.01102, 0.01391),
            test=_stats(0.9694, 0.9667, 0.9694),  # the widest: a 2-digit IQR of 0.0027
            wall_time=_stats(12.34, 11.0, 13.0),
            device="cpu",
            epochs_to_target=1.0,
        )
        for label in labels
    ]
    rows[-1] = dataclasses.replace(rows[-1], test=_stats(0.9656, 0.9611, 0.9702))
    show(_results(rows, "accuracy"))
    lines = _readable(capsys.readouterr().out)
    assert lines[0].split() == ["train", "test", "accuracy"]
    head = ["optimizer", "lr", "runs", "diverged", "loss", "median", "[IQR]", "s/run"]
    assert lines[1].split() == head
    body = [line.split() for line in lines[2:]]
    assert [cells[0] for cells in body] == labels
    assert body[0][1:] == ["0.0003", "5", "0", "0.0123", "0.9694", "[0.9667,", "0.9694]", "12.3"]
    assert body[1][1:] == body[0][1:]
    assert body[2][5:8] == ["0.966", "[0.961,", "0.970]"]


def test_no_warnings_at_startup():
    cmd = [sys.executable, "-W", "default", "-m", "descentlab", "optimizers"]
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert r.stderr == ""


@pytest.mark.parametrize("group", [[], ["demo"]])
def test_every_command_summary_whole_in_help(monkeypatch, group):
    text = _invoke(monkeypatch, 80, *group, "--help")
    commands = text.partition("Commands:")[2].splitlines()
    cli = typer.main.get_command(app)
    for name in group:
        cli = cli.commands[name]
    assert sorted(line.split()[0] for line in commands if line.strip()) == sorted(cli.commands)
    assert not any(line.rstrip().endswith("...") for line in commands)
    _readable(text)
