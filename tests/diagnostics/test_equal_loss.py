"""Sharpness at equal training loss: the first crossing of each level, on known answers."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from torch import nn

from descentlab.diagnostics import sharpness_at_levels

from ._models import ONE_BATCH, Quadratic, identity_loss

A, LR, W0 = 4.0, 0.05, 1.0  # GD on 0.5 a w^2: w_k = (1 - lr a)^k w0 = 0.8^k


def _quadratic() -> Quadratic:
    return Quadratic(
        torch.tensor([[A]], dtype=torch.float64), torch.tensor([W0], dtype=torch.float64)
    )


def _loss_after(k: int) -> float:
    return 0.5 * A * (W0 * (1 - LR * A) ** k) ** 2


def _first_step(level: float) -> int:
    return next(k for k in range(10_000) if _loss_after(k) <= level)


def _run(levels, **kw):
    return sharpness_at_levels(
        _quadratic(),
        identity_loss,
        ONE_BATCH,
        functools.partial(torch.optim.SGD, lr=LR),
        levels,
        loss_data=ONE_BATCH,
        iters=200,
        tol=1e-12,
        **kw,
    )


def test_the_first_crossing_of_each_level_on_a_quadratic():
    levels = [1e-3, 0.3, 0.05]  # any order; reported from the highest down
    result = _run(levels, check_every=1)
    assert [p.level for p in result.points] == [0.3, 0.05, 1e-3] and result.missed == []
    eps = 1e-3
    for p in result.points:
        assert p.step == _first_step(p.level)  # 3, 10, 21
        assert p.train_loss == pytest.approx(_loss_after(p.step), rel=1e-12)
        assert p.train_loss <= p.level < _loss_after(p.step - 1)
        assert p.sharpness.top_eigenvalue == pytest.approx(A, rel=1e-9)
        # Keskar's box |y| <= eps (|w| + 1): the max of 0.5 a (w + y)^2 is at w + sign(w) box
        w = W0 * (1 - LR * A) ** p.step
        top = 0.5 * A * (w + eps * (w + 1)) ** 2
        expected = (top - p.train_loss) / (1 + p.train_loss) * 100
        assert p.sharpness.epsilon_sharpness == pytest.approx(expected, rel=1e-9)
        assert math.isnan(p.test_loss)
    assert result.steps == result.points[-1].step  # training stops at the lowest level
    assert result.checks[0] == (0, pytest.approx(_loss_after(0)))


def test_coarse_checks_resolve_the_crossing_to_check_every():
    result = _run([0.05], check_every=4)
    (p,) = result.points
    # first crossing at step 10; checks at 0, 4, 8, 12: found at 12, and the check before (8) is
    # still above the level
    assert p.step == 12 and p.train_loss <= 0.05
    steps = [s for s, _ in result.checks]
    assert steps == [0, 4, 8, 12]
    assert result.checks[-2][1] > 0.05


def test_one_check_can_cross_several_levels():
    result = _run([0.3, 0.29, 0.28], check_every=5)
    assert [p.step for p in result.points] == [5, 5, 5]
    assert len({p.sharpness.top_eigenvalue for p in result.points}) == 1


def test_budget_and_divergence_leave_levels_missed():
    short = _run([0.3, 1e-6], check_every=2, max_steps=7)
    assert [p.level for p in short.points] == [0.3] and short.missed == [1e-6]
    assert short.steps == 7 and short.checks[-1][0] == 7  # the last step is checked too
    diverging = sharpness_at_levels(
        _quadratic(),
        identity_loss,
        ONE_BATCH,
        functools.partial(torch.optim.SGD, lr=1e5),  # |1 - lr a| = 4e5 per step: overflows
        [0.1],
        loss_data=ONE_BATCH,
        check_every=1,
    )
    assert diverging.points == [] and diverging.missed == [0.1]
    assert not math.isfinite(diverging.checks[-1][1]) and diverging.steps < 100


def test_a_minibatch_mlp_reaches_its_levels_in_order():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(96, 5, generator=g), torch.randint(0, 3, (96,), generator=g)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 3))
    batches = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 96, 32)]
    result = sharpness_at_levels(
        model,
        nn.functional.cross_entropy,
        batches,
        functools.partial(torch.optim.Adam, lr=0.02),
        [0.8, 0.5, 0.3],
        loss_data=[(x, y)],
        sharpness_data=[(x[:48], y[:48])],
        test_data=[(x[:10], y[:10])],
        check_every=3,
        max_steps=3000,
    )
    assert result.missed == []
    steps = [p.step for p in result.points]
    assert steps == sorted(steps) and all(s % 3 == 0 for s in steps)
    for p in result.points:
        assert p.train_loss <= p.level and math.isfinite(p.test_loss)
        assert p.sharpness.top_eigenvalue > 0
        previous = [loss for s, loss in result.checks if s < p.step]
        assert min(previous) > p.level  # no earlier check had reached it
    # the model is left at the last point
    with torch.no_grad():
        final = float(nn.functional.cross_entropy(model(x), y))
    assert final == pytest.approx(result.points[-1].train_loss, rel=1e-6)


def test_errors():
    with pytest.raises(ValueError, match="levels must not be empty"):
        _run([])
    with pytest.raises(ValueError, match="check_every >= 1"):
        _run([0.1], check_every=0)
    with pytest.raises(ValueError, match="yielded no batches"):
        sharpness_at_levels(
            _quadratic(),
            identity_loss,
            [],
            functools.partial(torch.optim.SGD, lr=LR),
            [0.1],
            loss_data=ONE_BATCH,
        )
