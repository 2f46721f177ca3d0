"""The `descentlab demo` commands of issue 17 (edge of stability, flat vs sharp, Hessian spectra,
gradient noise) at tiny sizes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from typer.testing import CliRunner

from descentlab.cli import app
from descentlab.diagnostics import DINH_NOTE

runner = CliRunner(env={"COLUMNS": "250"})


def test_edge_of_stability(tmp_path):
    args = ["demo", "edge-of-stability", "-o", str(tmp_path), "--steps", "20", "--every", "10"]
    tiny = [
        "--seeds",
        "1",
        "--n-train",
        "50",
        "--width",
        "8",
        "--gd-lr",
        "0.5",
        "--adam-lr",
        "0.01",
    ]
    result = runner.invoke(app, [*args, *tiny])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "edge_of_stability.png").exists()
    assert f"wrote {tmp_path / 'edge_of_stability.png'}" in result.output
    assert "GD λmax(H)" in result.output and "Adam λmax(P⁻¹H)" in result.output
    assert " ".join(DINH_NOTE.split()[:5]) in " ".join(result.output.split())


def test_edge_of_stability_every_above_steps():
    result = runner.invoke(app, ["demo", "edge-of-stability", "--steps", "5", "--every", "10"])
    assert result.exit_code == 2 and "--every" in result.output


def test_flat_sharp(tmp_path):
    args = ["demo", "flat-sharp", "-o", str(tmp_path), "--n-train", "60", "--seeds", "1"]
    result = runner.invoke(
        app, [*args, "--max-epochs", "10", "--level", "1.5", "--keskar-level", "1.5"]
    )
    assert result.exit_code == 0, result.output
    for name in ("equal_loss.png", "small_large_batch.png"):
        assert (tmp_path / name).exists() and f"wrote {tmp_path / name}" in result.output
    assert "Keskar" in result.output and "Dinh" in result.output and "sgdm" in result.output


def test_flat_sharp_unknown_problem():
    result = runner.invoke(app, ["demo", "flat-sharp", "--problem", "digits-mpl"])
    assert result.exit_code == 2 and "did you mean digits-mlp" in result.output


def test_hessian_heterogeneity(tmp_path):
    args = ["demo", "hessian-heterogeneity", "-o", str(tmp_path), "--seeds", "1", "--steps", "2"]
    tiny = ["--layers", "1", "--quadratic-seeds", "1", "--quadratic-steps", "2"]
    result = runner.invoke(app, [*args, *tiny])
    assert result.exit_code == 0, result.output
    for name in ("spectrum-blocks.png", "spectrum-quadratic.png"):
        assert (tmp_path / name).exists() and f"wrote {tmp_path / name}" in result.output
    assert "heterogeneous" in result.output and "homogeneous" in result.output


def test_gradient_noise(tmp_path):
    args = ["demo", "gradient-noise", "-o", str(tmp_path), "--seeds", "1", "--batches", "4"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "noise-tails.png").exists()
    assert "charlm-transformer" in result.output and "alpha = 2 is Gaussian" in result.output
