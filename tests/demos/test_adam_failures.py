"""Adam's failure cases: the lecture's numbers and Reddi et al.'s counterexample."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import pytest

from descentlab.demos import (
    large_gradient,
    online_counterexample,
    plot_large_gradient,
    plot_online_counterexample,
)


@pytest.fixture(scope="module")
def big():
    # 4000 gradients of 1: the bias correction 1 - 0.999^4001 = 0.982, within 1% of "many steps".
    return large_gradient(warmup=4000, window=12)


def _row(result, name):
    return next(r for r in result.rows if r["optimizer"] == name)


def test_adam_step_on_the_large_gradient_is_10_sqrt_10_lr(big):
    for name in ("adam", "amsgrad"):
        assert _row(big, name)["step on 1e5 gradient / lr"] == pytest.approx(
            10 * math.sqrt(10), rel=0.01
        )
        assert _row(big, name)["step before / lr"] == pytest.approx(1.0, rel=1e-6)


def test_sgd_moves_1e5_lr(big):
    assert _row(big, "sgd")["step on 1e5 gradient / lr"] == pytest.approx(1e5, rel=1e-9)
    # momentum 0.9: the buffer holds 1 / (1 - 0.9) = 10 before, then 0.9 * 10 + 1e5
    assert _row(big, "sgdm")["step on 1e5 gradient / lr"] == pytest.approx(1e5 + 9, rel=1e-9)


def test_after_the_large_gradient_adam_and_amsgrad_crawl(big):
    # v stays ~ 0.001 * 1e10 (AMSGrad: forever), so a gradient of 1 moves ~ 1/sqrt(1e7) lr
    assert _row(big, "adam")["step 10 later / lr"] < 1e-3
    assert _row(big, "amsgrad")["step 10 later / lr"] < 1e-3


def test_adabound_is_clipped_to_its_lower_bound(big):
    # final_lr = lr, gamma = 1e-3, t = 4001: lower = lr (1 - 1/(1e-3 t + 1)) = 0.80 lr
    lower = 1 - 1 / (1e-3 * 4001 + 1)
    assert _row(big, "adabound")["step on 1e5 gradient / lr"] == pytest.approx(1e5 * lower)


def test_reddi_counterexample():
    result = online_counterexample(steps=600)
    adam, ams = (_row(result, n) for n in ("adam", "amsgrad"))
    assert adam["final x"] == pytest.approx(1.0, abs=0.02)
    assert ams["final x"] == pytest.approx(-1.0, abs=0.02)
    assert adam["average regret R_T/T"] > 0.5 > 0.05 > ams["average regret R_T/T"]
    assert adam["converges to"].endswith("(wrong)") and ams["converges to"].endswith("(right)")


def test_reddi_needs_c_above_2():
    with pytest.raises(ValueError, match="C must be > 2"):
        online_counterexample(C=2.0, steps=3)


def test_figures(tmp_path, big):
    a = plot_large_gradient(big, tmp_path / "a.png")
    b = plot_online_counterexample(online_counterexample(steps=30), tmp_path / "b.png")
    assert a.exists() and b.exists()


def test_by_hand_column(big):
    for name in ("sgd", "sgdm"):
        row = _row(big, name)
        assert row["step on 1e5 gradient / lr"] == pytest.approx(row["by hand / lr"], rel=1e-9)
    assert _row(big, "adam")["by hand / lr"] == pytest.approx(31.6228, rel=1e-5)
    assert math.isnan(_row(big, "adabound")["by hand / lr"])
    assert _row(big, "sgdm")["settings"] == "momentum=0.9"


def test_a_warm_up_shorter_than_the_window_plots_from_step_0(tmp_path):
    short = large_gradient(["adam", "sgd"], warmup=10, window=50)
    assert short.steps[0] == 0 and len(short.steps) == 61
    assert all(len(s) == len(short.steps) for s in short.sizes.values())
    assert plot_large_gradient(short, tmp_path / "short.png").exists()


@pytest.mark.parametrize("kw", [{"warmup": 0}, {"later": 50, "window": 50}, {"later": -1}])
def test_bad_large_gradient_arguments_are_refused(kw):
    with pytest.raises(ValueError, match="warmup >= 1"):
        large_gradient(["adam"], **kw)
