"""``descentlab trajectories`` and ``descentlab demo adam-failures``."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from typer.testing import CliRunner

from descentlab.cli import app

runner = CliRunner(env={"COLUMNS": "250"})


def test_trajectories_png(tmp_path):
    out = tmp_path / "r.png"
    args = ["trajectories", "-f", "beale", "--optimizers", "sgdm,adam", "--steps", "5"]
    result = runner.invoke(app, [*args, "--lr", "adam=0.2", "--start", "1,1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.exists()
    assert "adam: lr=0.2" in result.output
    assert result.output.strip().endswith(f"wrote {out}")


def test_trajectories_gif(tmp_path):
    out = tmp_path / "s.gif"
    args = ["trajectories", "-f", "saddle", "--optimizers", "sgd", "--steps", "4"]
    result = runner.invoke(app, [*args, "--frames", "2", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.exists()


def test_trajectories_bad_input():
    for args in (
        ["-f", "nope"],
        ["--optimizers", "adamm"],
        ["--lr", "adam"],
        ["--start", "1"],
    ):
        result = runner.invoke(app, ["trajectories", *args, "--steps", "2"])
        assert result.exit_code == 2, (args, result.output)


def test_demo_adam_failures(tmp_path):
    args = ["demo", "adam-failures", "-o", str(tmp_path), "--warmup", "200", "--steps", "30"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    for name in ("large_gradient.png", "online_counterexample.png"):
        assert (tmp_path / name).exists()
        assert f"wrote {tmp_path / name}" in result.output
    assert "amsgrad" in result.output and "Reddi" in result.output
