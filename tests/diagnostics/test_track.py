"""track(): effective learning rates from the optimizers' state, ratios, norms, hooks."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from torch import nn

import descentlab
from descentlab.diagnostics import track


def _data():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(64, 5, generator=g)
    return X, X @ torch.randn(5, 1, generator=g)


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 1))


def _train(model, opt, steps):
    X, y = _data()
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.mse_loss(model(X), y).backward()
        opt.step()


def test_adam_rates_ratio_and_norm_match_a_hand_computation():
    model = _model()
    opt = descentlab.create("adam", model.parameters(), lr=0.01)
    with track(opt, model=model) as t:
        _train(model, opt, 2)
        p = model[0].weight
        before = p.detach().clone()
        _train(model, opt, 1)
    r = next(r for r in t.records if r.step == 3 and r.name == "0.weight")
    state, b2 = opt.state[p], 0.999
    rate = 0.01 / ((state["exp_avg_sq"] / (1 - b2**3)).sqrt() + 1e-8)
    assert r.lr_mean == pytest.approx(rate.mean().item(), rel=1e-5)
    assert r.lr_median == pytest.approx(rate.median().item(), rel=1e-5)
    assert r.lr_min == pytest.approx(rate.min().item(), rel=1e-5)
    assert r.lr_max == pytest.approx(rate.max().item(), rel=1e-5)
    assert r.grad_norm == pytest.approx(p.grad.norm().item(), rel=1e-5)
    ratio = (p.detach() - before).norm() / p.detach().norm()
    assert r.update_ratio == pytest.approx(ratio.item(), rel=1e-4)
    assert t.names() == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert len(t.records) == 3 * 4


def test_hooks_removed_on_exit_and_every():
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with track(opt, every=3) as t:
        _train(model, opt, 7)
    _train(model, opt, 3)
    assert sorted({r.step for r in t.records}) == [3, 6]
    assert {r.name for r in t.records} == {f"group0.param{i}" for i in range(4)}
    assert all(r.lr_min == r.lr_max == pytest.approx(0.05) for r in t.records)


def test_unknown_optimizer_still_tracks_norms():
    model = _model()
    opt = torch.optim.Adadelta(model.parameters())
    with track(opt) as t:
        _train(model, opt, 2)
    assert all(math.isnan(r.lr_mean) and r.grad_norm > 0 for r in t.records)


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: torch.optim.Adam(ps, lr=0.01, amsgrad=True),
        lambda ps: descentlab.create("lookahead(radam)", ps, lr=0.01),
        lambda ps: descentlab.create("rmsprop", ps, lr=0.01, centered=True),
        lambda ps: descentlab.create("adagrad", ps, lr=0.1, lr_decay=0.01),
        lambda ps: torch.optim.NAdam(ps, lr=0.01),
    ],
)
def test_other_adaptive_optimizers_have_finite_positive_rates(make):
    model = _model()
    opt = make(model.parameters())
    with track(opt) as t:
        _train(model, opt, 8)
    assert all(0 < r.lr_min <= r.lr_median <= r.lr_max < math.inf for r in t.records)


def test_adabound_range_narrows_toward_final_lr():
    model = _model()
    final = 0.1
    opt = descentlab.create("adabound", model.parameters(), lr=1e-3, final_lr=final, gamma=1e-2)
    with track(opt, model=model) as t:
        _train(model, opt, 150)
    for name in ("0.weight", "0.bias", "2.weight"):  # not 2.bias: one element, no range
        _steps, lo = t.series("lr_min", name)
        hi = t.series("lr_max", name)[1]
        lower, upper = t.series("lower", name)[1], t.series("upper", name)[1]
        assert np.all(lo >= lower * (1 - 1e-6)) and np.all(hi <= upper * (1 + 1e-6))
        width = hi - lo
        assert width[-1] < 0.1 * width[:5].max()
        spread = np.maximum(abs(lo - final), abs(hi - final))  # farthest rate from final_lr
        assert spread[-1] < 0.5 * final < spread[0]
        assert upper[-1] - lower[-1] < 0.02 * (upper[0] - lower[0])  # the bounds close in


def test_swats_switch_shows_up():
    model = _model()
    opt = descentlab.create("swats", model.parameters(), lr=1e-2, switch_tol=1e-3)
    with track(opt, model=model) as t:
        _train(model, opt, 80)
    switches = t.switch_steps()
    assert switches, "no switch recorded"
    for name, step in switches.items():
        state = opt.state[dict(model.named_parameters())[name]]
        assert step == int(state["switch_step"])
        after = [r for r in t.records if r.name == name and r.step >= step]
        assert all(r.phase == "sgd" and r.lr_min == r.lr_max for r in after)
        assert after[0].lr_mean == pytest.approx(float(state["sgd_lr"]), rel=1e-5)
        before = [r for r in t.records if r.name == name and r.step < step]
        assert all(r.phase == "adam" for r in before)


def test_plot_and_rows(tmp_path):
    model = _model()
    opt = descentlab.create("adabound", model.parameters(), lr=1e-3)
    with track(opt, model=model) as t:
        _train(model, opt, 3)
    out = t.plot(tmp_path / "t.png")
    assert out.exists()
    assert {"step", "name", "lr_median", "update_ratio", "lower"} <= set(t.rows()[0])
    with pytest.raises(ValueError, match="unknown metrics"):
        t.plot(tmp_path / "x.png", metrics=["loss"])
    with pytest.raises(ValueError, match="every"):
        track(opt, every=0)
