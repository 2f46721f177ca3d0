"""The edge-of-stability demo at a tiny size: structure, and the thresholds it compares with."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

from descentlab.demos import edge_of_stability, plot_edge_of_stability
from descentlab.demos.edge_of_stability import square_loss


@pytest.fixture(scope="module")
def tiny():
    return edge_of_stability(
        gd_lrs=(0.5,), adam_lrs=(0.01,), seeds=2, steps=60, every=10, n_train=100, width=16
    )


def test_rows_runs_and_thresholds(tiny):
    gd, adam = tiny.rows
    assert (gd["tracked"], adam["tracked"]) == ("GD λmax(H)", "Adam λmax(P⁻¹H)")
    assert gd["theory"] == pytest.approx(2 / 0.5)
    assert adam["theory"] == pytest.approx(38 / 0.01)
    assert len(tiny.runs) == 4
    for run in tiny.runs:
        assert list(run.steps) == [10, 20, 30, 40, 50, 60]
        assert np.all(np.isfinite(run.sharpness)) and np.all(run.sharpness > 0)
        assert run.diverged is None
    for row, name in ((gd, "sgd"), (adam, "adam")):
        runs = [r for r in tiny.runs if r.optimizer == name]
        # the plateau is the median over the last half (steps 40, 50, 60), median over seeds
        per_seed = [np.median(r.tracked[r.steps > 30]) for r in runs]
        assert row["plateau"] == pytest.approx(np.median(per_seed))
        assert row["ratio"] == pytest.approx(row["plateau"] / runs[0].threshold)
    gd_run = next(r for r in tiny.runs if r.optimizer == "sgd")
    assert np.array_equal(gd_run.tracked, gd_run.sharpness)  # GD tracks lambda_max(H) itself
    adam_run = next(r for r in tiny.runs if r.optimizer == "adam")
    assert np.all(adam_run.tracked > 10 * adam_run.sharpness)  # P ~ sqrt(v) << 1 here


def test_the_loss_falls(tiny):
    for run in tiny.runs:
        assert run.loss[-1] < run.loss[0]


def test_figure(tiny, tmp_path):
    assert plot_edge_of_stability(tiny, tmp_path / "e.png").stat().st_size > 0


def test_square_loss():
    out = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 2.0]])
    # targets 0 and 1: the first row is exact, the second is off by (0, -1, 2): 0.5 * 5
    assert float(square_loss(out, torch.tensor([0, 1]))) == pytest.approx(0.5 * 5 / 2)


def test_bad_settings():
    with pytest.raises(ValueError, match="every <= steps"):
        edge_of_stability(steps=5, every=10)
