"""The lecture's claims that are facts about the update rules, and training on real data."""

from __future__ import annotations

import pytest
import torch
from sklearn.datasets import load_digits

import descentlab


def _final_step(name, lr, **kw):
    """Gradient 1 for 20,000 steps (steady state), then one gradient of 1e5: the last step."""
    x = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = descentlab.create(name, [x], lr=lr, **kw)
    for _ in range(20_000):
        x.grad = torch.ones(1, dtype=torch.float64)
        opt.step()
    before = x.item()
    x.grad = torch.full((1,), 1e5, dtype=torch.float64)
    opt.step()
    return abs(x.item() - before)


def test_adam_small_gradients_dominate():
    """Adam (beta1=0, beta2=0.999) moves ~10*sqrt(10)*lr on the 1e5 gradient; SGD 1e5*lr."""
    lr = 1e-3
    adam = _final_step("adam", lr, betas=(0.0, 0.999))
    assert adam == pytest.approx(10 * 10**0.5 * lr, rel=1e-3)
    assert _final_step("sgd", lr) == pytest.approx(1e5 * lr, rel=1e-12)


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32)
    return x, torch.tensor(y)


@pytest.mark.parametrize(
    "name", [*descentlab.names(), "lookahead(adam)", "lookahead(sgdm)", "noisy(sgdm)"]
)
def test_trains_logistic_regression_on_digits(name, digits):
    x, y = digits
    torch.manual_seed(0)
    model = torch.nn.Linear(64, 10)
    base = name.split("(")[-1].rstrip(")")
    opt = descentlab.create(name, model.parameters(), lr=descentlab.optim.REGISTRY[base].lr * 3)
    loss_fn = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(0)
    first = loss_fn(model(x), y).item()
    for _ in range(10):
        for idx in torch.randperm(len(x), generator=gen).split(64):
            opt.zero_grad()
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()
    last = loss_fn(model(x), y).item()
    assert last < 0.65 * first, (first, last)
