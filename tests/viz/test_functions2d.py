"""The 2-D functions: their listed minima and saddles are what they claim to be."""

from __future__ import annotations

import pytest
import torch
from torch.func import grad, hessian

from descentlab.optim import REGISTRY
from descentlab.viz import FUNCTIONS, LR_FAMILY
from descentlab.viz.functions2d import get


def _at(fn, point):
    z = torch.tensor(point, dtype=torch.float64)

    def f(v):
        return fn.f(v[0], v[1])

    return f(z), grad(f)(z), torch.linalg.eigvalsh(hessian(f)(z))


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_minima_are_minima(name):
    fn = FUNCTIONS[name]
    for point in fn.minima:
        _, g, eig = _at(fn, point)
        assert g.norm() < 1e-8, (name, point, g)
        assert eig.min() > 0, (name, point, eig)
        lo, hi = fn.xlim, fn.ylim
        assert lo[0] < point[0] < lo[1] and hi[0] < point[1] < hi[1]


@pytest.mark.parametrize("name", [n for n, f in FUNCTIONS.items() if f.saddles])
def test_saddles_are_saddles(name):
    for point in FUNCTIONS[name].saddles:
        _, g, eig = _at(FUNCTIONS[name], point)
        assert g.norm() < 1e-6
        assert eig.min() < 0 < eig.max()


def test_known_values():
    assert FUNCTIONS["rosenbrock"].min_value() == 0.0
    assert FUNCTIONS["saddle"].min_value() == -0.25
    assert float(FUNCTIONS["beale"](torch.tensor(3.0), torch.tensor(0.5))) == 0.0


def test_sharp_minimum_is_sharper_than_flat():
    fn = FUNCTIONS["sharp_flat"]
    flat, sharp = (_at(fn, p)[2].max().item() for p in fn.minima)
    assert flat == pytest.approx(1.0, rel=0.01)
    assert sharp == pytest.approx(7.25 / 0.02)  # |A-B|^2 / w^2


def test_every_family_has_a_rate_on_every_function():
    assert set(LR_FAMILY) == set(REGISTRY)
    for fn in FUNCTIONS.values():
        assert set(LR_FAMILY.values()) <= set(fn.lrs), fn.name


def test_unknown_function_names_the_known_ones():
    with pytest.raises(ValueError, match="rosenbrock"):
        get("rosenbrok")
