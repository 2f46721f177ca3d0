"""Trajectories run the real optimizers: the paths equal a hand-written loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import descentlab
from descentlab.viz import FUNCTIONS, default_lr, trajectories


def _manual(fn, make, start, steps):
    p = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    opt = make([p])
    out = [p.detach().clone().numpy()]
    for _ in range(steps):
        opt.zero_grad()
        fn.f(p[0], p[1]).backward()
        opt.step()
        out.append(p.detach().clone().numpy())
    return np.array(out)


def test_registry_name_equals_a_manual_loop():
    fn = FUNCTIONS["rosenbrock"]
    (t,) = trajectories(fn, ["adam"], steps=20)
    lr = fn.lrs["adam"]
    ref = _manual(fn, lambda ps: descentlab.create("adam", ps, lr=lr), fn.start, 20)
    np.testing.assert_allclose(t.xy, ref, rtol=1e-12)
    assert t.lr == lr and t.xy.shape == (21, 2)
    assert t.loss[0] == pytest.approx(float(fn.f(*map(torch.tensor, fn.start))))


def test_torch_class_and_factory_and_labels():
    paths = trajectories(
        "quadratic",
        {"torch adam": torch.optim.Adam, "mine": lambda ps: torch.optim.SGD(ps, lr=0.01)},
        steps=5,
        lrs={"torch adam": 0.1},
    )
    assert [p.label for p in paths] == ["torch adam", "mine"]
    assert paths[0].lr == 0.1 and paths[1].lr == 0.01
    ref = _manual(FUNCTIONS["quadratic"], lambda ps: torch.optim.Adam(ps, lr=0.1), (-2.5, -1.5), 5)
    np.testing.assert_allclose(paths[0].xy, ref)


def test_comma_string_and_default_lrs():
    paths = trajectories("saddle", "sgd, nag,lookahead(adam)", steps=3, start=(1.0, 0.5))
    assert [p.label for p in paths] == ["sgd", "nag", "lookahead(adam)"]
    assert [p.lr for p in paths] == [0.05, 0.01, 0.02]
    assert np.array_equal(paths[0].xy[0], [1.0, 0.5])
    assert default_lr("rosenbrock", "amsbound") == FUNCTIONS["rosenbrock"].lrs["adam"]


def test_converges_to_a_known_minimum():
    (t,) = trajectories("quadratic", ["sgd"], steps=300)
    assert np.linalg.norm(t.xy[-1]) < 1e-6


def test_divergence_is_recorded_and_the_path_stops():
    (t,) = trajectories("quadratic", ["sgd"], steps=2000, lrs={"sgd": 1.0})  # 1 > 2/25
    assert t.diverged_at is not None and t.diverged_at < 2000
    assert np.isnan(t.xy[t.diverged_at :]).all()
    assert np.isfinite(t.xy[: t.diverged_at]).all()


def test_errors():
    with pytest.raises(ValueError, match="steps"):
        trajectories("quadratic", ["sgd"], steps=0)
    with pytest.raises(ValueError, match="Unknown optimizer"):
        trajectories("quadratic", ["adamm"], steps=1)
    with pytest.raises(ValueError, match="no default learning rate"):
        trajectories("quadratic", [torch.optim.Adadelta], steps=1)


def test_sharp_flat_picture_large_sgd_steps_leave_the_sharp_well():
    # From the default start next to the sharp well (curvature 362.5 > 2 / 0.05), SGD's steps are
    # unstable there and it ends in the flat minimum; Adam's ~lr-sized steps stay in the sharp one.
    fn = FUNCTIONS["sharp_flat"]
    sgd, adam = trajectories(fn, ["sgd", "adam"], steps=300)
    flat, sharp = (np.array(m) for m in fn.minima)
    assert np.linalg.norm(sgd.xy[-1] - flat) < 1e-3
    assert np.linalg.norm(adam.xy[-1] - sharp) < 1e-3
