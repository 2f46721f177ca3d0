"""The gradient-noise demo at a tiny size: its records, and its figure."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import pytest

from descentlab.demos.gradient_noise import noise_tails, plot_noise_tails


def test_noise_tails_rows_and_figure(tmp_path):
    result = noise_tails(("mnist1d-cnn", "digits-mlp"), seeds=(0, 1), batches=8, coordinates=500)
    rows = {r["model"]: r for r in result.rows}
    assert rows["digits-mlp"]["parameters"] == 64 * 128 + 128 + 128 * 64 + 64 + 640 + 10
    assert rows["mnist1d-cnn"]["batch size"] == 100 and rows["digits-mlp"]["batch size"] == 32
    runs = result.results["digits-mlp"]
    alphas = sorted(r.alpha for r in runs)  # two seeds: the median is the midpoint
    assert rows["digits-mlp"]["alpha (pooled) median"] == pytest.approx(sum(alphas) / 2)
    q1, q3 = (alphas[0] + f * (alphas[1] - alphas[0]) for f in (0.25, 0.75))
    assert rows["digits-mlp"]["alpha (pooled) IQR"] == f"[{q1:.4g}, {q3:.4g}]"
    for r in result.rows:
        assert 0 < r["alpha (standardized) median"] < 4
        assert math.isfinite(r["norm excess kurtosis median"])
    assert len(runs) == 2 and runs[0].coordinates == 500 and len(runs[0].norms) == 8
    assert runs[0].alpha != runs[1].alpha  # the seeds draw different minibatches
    assert plot_noise_tails(result, tmp_path / "noise.png").exists()


def test_an_unknown_model_is_refused():
    with pytest.raises(ValueError, match="unknown model 'resnet'; choose from charlm-transformer"):
        noise_tails(("resnet",))


def test_noise_after_training_steps():
    # two Adam steps move the model: a different noise than at initialisation, same minibatches
    at_init = noise_tails(("digits-mlp",), seeds=(0,), batches=4, coordinates=200)
    trained = noise_tails(("digits-mlp",), seeds=(0,), batches=4, coordinates=200, train_steps=2)
    assert trained.rows[0]["Adam steps before"] == 2 and at_init.rows[0]["Adam steps before"] == 0
    assert (
        trained.results["digits-mlp"][0].gradient_norm
        != at_init.results["digits-mlp"][0].gradient_norm
    )
