"""The schedules area's commands: ``schedules``, ``schedule-plot`` and ``lr-find``."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from descentlab import schedules
from descentlab.cli import app

runner = CliRunner(env={"COLUMNS": "250"})


def test_schedules_lists_every_name() -> None:
    out = runner.invoke(app, ["schedules"])
    assert out.exit_code == 0
    first_words = {line.split()[0] for line in out.stdout.splitlines() if line.strip()}
    assert set(schedules.names()) <= first_words  # one row per name, the name first


def test_schedule_plot_writes_png(tmp_path) -> None:
    path = tmp_path / "onecycle.png"
    out = runner.invoke(app, ["schedule-plot", "onecycle", "--steps", "200", "-o", str(path)])
    assert out.exit_code == 0, out.output
    assert out.stdout.strip() == str(path) and path.stat().st_size > 5000


def test_schedule_plot_passes_options(tmp_path) -> None:
    path = tmp_path / "w.png"
    args = ["schedule-plot", "warmup", "--steps", "100", "-o", str(path)]
    out = runner.invoke(
        app, [*args, "-p", "after=sgdr", "-p", "warmup_steps=10", "-p", "T_mult=1.5"]
    )
    assert out.exit_code == 0, out.output
    assert path.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "Unknown schedule 'nope'"),
        (["sgdr", "-p", "T_mult=0.5"], "Invalid T_mult: 0.5; valid range is [1, inf)"),
        (["sgdr", "-p", "T_mult"], "--option expects key=value, got 'T_mult'"),
        (["cosine", "-p", "eta_mim=0"], "did you mean eta_min"),
    ],
)
def test_schedule_plot_errors(args, message, tmp_path) -> None:
    out = runner.invoke(app, ["schedule-plot", *args, "-o", str(tmp_path / "x.png")])
    assert out.exit_code == 2
    assert message in " ".join(out.output.split())
    assert not (tmp_path / "x.png").exists()


def test_lr_find_on_digits(tmp_path) -> None:
    pytest.importorskip("descentlab.problems")
    path = tmp_path / "lr_find.png"
    args = ["lr-find", "--problem", "digits-mlp", "--optimizer", "sgdm", "--steps", "40"]
    out = runner.invoke(app, [*args, "-o", str(path)])
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert lines[0].startswith("digits-mlp / sgdm: ")
    for method in ("steepest", "valley", "min/10"):
        assert any(line.strip().startswith(f"{method}: ") for line in lines)
    assert lines[-1] == str(path) and path.stat().st_size > 5000


def test_lr_find_errors(tmp_path, monkeypatch) -> None:
    problems = pytest.importorskip("descentlab.problems")
    path = str(tmp_path / "x.png")
    out = runner.invoke(app, ["lr-find", "--problem", "no-such-problem", "-o", path])
    assert out.exit_code == 2 and "no-such-problem" in out.output
    out = runner.invoke(app, ["lr-find", "--mode", "log", "--steps", "5", "-o", path])
    assert out.exit_code == 2 and "Invalid mode: 'log'" in out.output
    monkeypatch.setattr(problems, "get", lambda name: SimpleNamespace(kind="gan"))
    out = runner.invoke(app, ["lr-find", "--problem", "some-gan", "-o", path])
    assert out.exit_code == 2 and "needs a supervised problem" in " ".join(out.output.split())
