"""The flat-vs-sharp demo at a tiny size: equal-loss points, Keskar's pair, Dinh's rescaling."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from descentlab.demos import flat_sharp, plot_equal_loss, plot_small_large_batch

LEVELS = (1.0, 0.5)


@pytest.fixture(scope="module")
def tiny():
    return flat_sharp(
        options={"n_train": 120},
        iters=10,
        levels=LEVELS,
        seeds=2,
        max_epochs=40,
        check_every=2,
        keskar_level=0.5,
        large_fraction=0.5,
        alphas=np.linspace(-0.5, 1.5, 9),
    )


def test_equal_loss_points_are_first_crossings(tiny):
    assert [r["level"] for r in tiny.equal_loss] == [1.0, 1.0, 0.5, 0.5]
    assert all(r["n"] == "2/2" for r in tiny.equal_loss)
    for results in tiny.runs.values():
        for result in results:
            assert [p.level for p in result.points] == list(LEVELS)
            for p in result.points:
                assert p.train_loss <= p.level
                earlier = [loss for step, loss in result.checks if step < p.step]
                assert earlier and min(earlier) > p.level  # nothing crossed it before
                assert p.step % 2 == 0 and p.sharpness.top_eigenvalue > 0
    row = next(r for r in tiny.equal_loss if r["opt"] == "adam" and r["level"] == 0.5)
    eigs = [
        p.sharpness.top_eigenvalue for r in tiny.runs["adam"] for p in r.points if p.level == 0.5
    ]
    assert row["λmax"] == pytest.approx(np.median(eigs))


def test_small_and_large_batch_at_the_same_loss(tiny):
    small, large = tiny.small_large
    assert (small["batch"], large["batch"]) == (32, 60)  # half of 120 examples
    for row in (small, large):
        assert row["n"] == "2/2"
        assert row["ε 1e-3"] > row["ε 5e-4"] > 0
    assert tiny.line_train.shape == tiny.line_test.shape == (2, 9)
    # alpha = 0 and 1 are the two points themselves: the train loss there is at most the level
    at = {a: i for i, a in enumerate(tiny.alphas)}
    assert np.all(tiny.line_train[:, at[0.0]] <= 0.5) and np.all(tiny.line_train[:, at[1.0]] <= 0.5)
    assert [r["α"] for r in tiny.line] == [-0.5, 0.0, 0.5, 1.0, 1.5]
    assert tiny.line[1]["train loss"] == pytest.approx(np.median(tiny.line_train[:, at[0.0]]))


def test_rescaling_keeps_the_function_and_changes_the_sharpness(tiny):
    assert len(tiny.rescaled) == 3
    for row in tiny.rescaled:
        assert row["max |Δ out|"] < 1e-4
        assert row["λmax rescaled"] > 10 * row["λmax"]  # alpha = 10: W2 / 10, curvature * 100


def test_figures(tiny, tmp_path):
    a = plot_equal_loss(tiny, tmp_path / "a.png")
    b = plot_small_large_batch(tiny, tmp_path / "b.png")
    assert a.stat().st_size > 0 and b.stat().st_size > 0


def test_bad_settings():
    with pytest.raises(ValueError, match="large_fraction"):
        flat_sharp(large_fraction=0.0)


def test_a_model_that_cannot_be_rescaled_skips_dinh():
    # digits-cnn has BatchNorm between its layers: not positively homogeneous. Level 5 is
    # reached before the first step (the initial loss is about 2.3).
    result = flat_sharp(
        problem="digits-cnn",
        options={"n_train": 40},
        levels=(5.0,),
        seeds=1,
        max_epochs=1,
        keskar_level=5.0,
        iters=3,
    )
    assert result.rescaled == []
    assert "BatchNorm2d between two weighted layers" in result.settings["not rescalable"]
    assert all(p.step == 0 for r in result.runs.values() for p in r[0].points)
