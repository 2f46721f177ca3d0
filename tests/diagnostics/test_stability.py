"""Edge of stability against known answers: quadratics, the momentum thresholds, Adam's P."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from descentlab import create
from descentlab.diagnostics import (
    adam_preconditioner,
    ema_threshold,
    preconditioned_sharpness,
    stability_threshold,
    track_stability,
)

from ._models import ONE_BATCH, Quadratic, identity_loss, spd

EXACT = {"iters": 1000, "tol": 1e-12}


def _gd(model: Quadratic, opt: torch.optim.Optimizer, steps: int) -> float:
    for _ in range(steps):
        opt.zero_grad()
        identity_loss(model(None), None).backward()
        opt.step()
    return float(model.w.detach().norm())


@pytest.mark.parametrize("factor", [0.95, 1.05])
def test_gd_diverges_exactly_above_2_over_lambda_max(factor):
    A = spd(6)  # eigenvalues 0.5 ... 10
    model = Quadratic(A, torch.ones(6, dtype=torch.float64))
    lr = factor * 2 / 10.0
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    with track_stability(opt, model, identity_loss, ONE_BATCH, every=50, **EXACT) as tracker:
        start = float(model.w.detach().norm())
        end = _gd(model, opt, 200)
    assert [r.step for r in tracker.records] == [50, 100, 150, 200]
    for r in tracker.records:
        assert r.sharpness == pytest.approx(10.0, rel=1e-9)
        assert r.threshold == pytest.approx(2 / lr)
        assert np.isnan(r.preconditioned)
    # |1 - lr * 10| = 0.9 or 1.1 along the top eigenvector: shrinks or grows geometrically
    assert (end > 100 * start) == (factor > 1) == (tracker.records[-1].sharpness > 2 / lr)


@pytest.mark.parametrize(
    "options",
    [
        {"momentum": 0.9},  # heavy ball: (2 + 2 mu) / lr
        {"momentum": 0.9, "dampening": 0.9},  # an EMA of the gradients, as Adam's m
        {"momentum": 0.5, "nesterov": True},
    ],
)
@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_momentum_thresholds_separate_convergence_from_divergence(options, factor):
    # A 1-D quadratic a x^2 / 2: the iteration is linear, stable iff a < the threshold.
    lr = 0.01
    x = torch.ones(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([x], lr=lr, **options)
    a = factor * stability_threshold(opt)
    for _ in range(800):
        opt.zero_grad()
        (0.5 * a * x**2).sum().backward()
        opt.step()
    diverged = not abs(float(x.detach())) <= 1.0  # overflow ends in NaN
    assert diverged == (factor > 1)


def test_ema_threshold_is_38_over_lr_at_beta1_09():
    assert ema_threshold(0.01, 0.9) == pytest.approx(3800.0)
    assert ema_threshold(0.01, 0.0) == pytest.approx(200.0)
    opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1e-3, betas=(0.9, 0.99))
    assert stability_threshold(opt) == pytest.approx(38_000.0)


def _adam_by_hand(grads: list[torch.Tensor], b1: float, b2: float, eps: float) -> torch.Tensor:
    v = torch.zeros_like(grads[0])
    for g in grads:
        v = b2 * v + (1 - b2) * g**2
    t = len(grads)
    return (1 - b1**t) * ((v / (1 - b2**t)).sqrt() + eps)


@pytest.mark.parametrize("make", ["descentlab", "torch"])
def test_preconditioner_and_diagonal_preconditioned_sharpness(make):
    a = torch.tensor([1.0, 30.0, 5.0, 200.0], dtype=torch.float64)
    model = Quadratic(torch.diag(a), torch.tensor([1.0, -2.0, 0.5, 0.1], dtype=torch.float64))
    b1, b2, eps = 0.8, 0.95, 1e-3
    params = list(model.parameters())
    opt = (
        create("adam", params, lr=0.01, betas=(b1, b2), eps=eps, impl="forloop")
        if make == "descentlab"
        else torch.optim.Adam(params, lr=0.01, betas=(b1, b2), eps=eps)
    )
    grads = []
    for _ in range(7):
        opt.zero_grad()
        identity_loss(model(None), None).backward()
        grads.append(model.w.grad.clone())
        opt.step()
    (P,) = adam_preconditioner(opt, params)
    torch.testing.assert_close(P, _adam_by_hand(grads, b1, b2, eps))
    eig, _, _ = preconditioned_sharpness(model, identity_loss, ONE_BATCH, [P], **EXACT)
    assert eig == pytest.approx(float((a / P).max()), rel=1e-9)  # P^-1 H is diagonal


def test_preconditioned_sharpness_of_a_full_hessian():
    A = spd(5, seed=3)
    model = Quadratic(A, torch.zeros(5, dtype=torch.float64))
    P = torch.tensor([0.1, 2.0, 0.5, 1.0, 3.0], dtype=torch.float64)
    eig, _, v = preconditioned_sharpness(model, identity_loss, ONE_BATCH, [P], **EXACT)
    expected = np.linalg.eigvals(np.diag(1 / P.numpy()) @ A.numpy()).real.max()
    assert eig == pytest.approx(expected, rel=1e-9)
    # warm-started from its own eigenvector, it stops at once with the same value
    again, iters, _ = preconditioned_sharpness(
        model, identity_loss, ONE_BATCH, [P], init=v, **EXACT
    )
    assert again == pytest.approx(expected, rel=1e-9) and iters == 2


def test_tracker_with_adam_records_both_sharpnesses():
    a = torch.tensor([2.0, 50.0], dtype=torch.float64)
    model = Quadratic(torch.diag(a), torch.tensor([1.0, 1.0], dtype=torch.float64))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    with track_stability(opt, model, identity_loss, ONE_BATCH, every=3, **EXACT) as tracker:
        _gd(model, opt, 9)
        (P,) = adam_preconditioner(opt, list(model.parameters()))
        loss = float(model(None).detach())
    _gd(model, opt, 3)  # detached: no more records
    assert [r.step for r in tracker.records] == [3, 6, 9]
    last = tracker.records[-1]
    assert last.sharpness == pytest.approx(50.0, rel=1e-9)
    # a_i / P_i ~ 1 / |w_i| (Adam normalizes): close eigenvalues, slower power iteration
    assert last.preconditioned == pytest.approx(float((a / P).max()), rel=1e-6)
    assert last.threshold == pytest.approx(38 / 0.01)
    assert last.loss == pytest.approx(loss, rel=1e-12)
    steps, values = tracker.series("preconditioned")
    assert steps == [3, 6, 9] and values[-1] == last.preconditioned
    assert set(tracker.rows()[0]) == {
        "step",
        "loss",
        "lr",
        "sharpness",
        "preconditioned",
        "threshold",
        "iterations",
    }


def test_errors():
    model = Quadratic(torch.eye(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64))
    params = list(model.parameters())
    with pytest.raises(ValueError, match="every must be >= 1, got 0"):
        track_stability(torch.optim.SGD(params, lr=0.1), model, identity_loss, ONE_BATCH, every=0)
    with pytest.raises(ValueError, match="take a step first"):
        adam_preconditioner(torch.optim.Adam(params), params)
    with pytest.raises(TypeError, match="Adam or AdamW, not SGD"):
        adam_preconditioner(torch.optim.SGD(params, lr=0.1), params)
    with pytest.raises(TypeError, match="no stability threshold known for RMSprop"):
        stability_threshold(torch.optim.RMSprop(params))
    with pytest.raises(TypeError, match="no stability threshold known for Adagrad"):
        track_stability(torch.optim.Adagrad(params), model, identity_loss, ONE_BATCH)


def test_wrappers_are_unwrapped():
    a = torch.tensor([2.0, 50.0], dtype=torch.float64)
    model = Quadratic(torch.diag(a), torch.ones(2, dtype=torch.float64))
    opt = create("lookahead(adam)", model.parameters(), lr=0.01, impl="forloop")
    with track_stability(opt, model, identity_loss, ONE_BATCH, every=4, **EXACT) as tracker:
        _gd(model, opt, 4)
    (P,) = adam_preconditioner(opt, list(model.parameters()))  # read from the inner Adam
    (record,) = tracker.records
    assert record.threshold == pytest.approx(38 / 0.01)
    assert record.preconditioned == pytest.approx(float((a / P).max()), rel=1e-6)
