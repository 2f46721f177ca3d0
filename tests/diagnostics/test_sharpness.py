"""Sharpness against known answers: quadratics and least squares."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from descentlab.diagnostics import (
    epsilon_sharpness,
    hessian_vector_product,
    sharpness,
    top_eigenvalue,
)

from ._models import ONE_BATCH, Quadratic, identity_loss, spd


def test_hvp_is_A_v():
    A = spd(6)
    model = Quadratic(A, torch.randn(6, dtype=torch.float64))
    v = torch.randn(6, dtype=torch.float64)
    (hv,) = hessian_vector_product(model, identity_loss, ONE_BATCH, [v])
    torch.testing.assert_close(hv, A @ v)


def test_top_eigenvalue_of_a_known_hessian():
    A = spd(8)  # eigenvalues 0.5 ... 10
    model = Quadratic(A, torch.randn(8, dtype=torch.float64))
    eig, iters = top_eigenvalue(model, identity_loss, ONE_BATCH, iters=500, tol=1e-10)
    assert eig == pytest.approx(10.0, rel=1e-6)
    assert 1 < iters < 500


def test_least_squares_over_several_batches():
    # mean((Xw - y)^2) has Hessian 2 X^T X / N whatever the batching.
    g = torch.Generator().manual_seed(1)
    X, y = torch.randn(60, 4, generator=g), torch.randn(60, 1, generator=g)
    model = nn.Linear(4, 1, bias=False)
    loader = [(X[i : i + 16], y[i : i + 16]) for i in range(0, 60, 16)]  # uneven last batch
    eig, _ = top_eigenvalue(model, nn.functional.mse_loss, loader, iters=300, tol=1e-9)
    expected = torch.linalg.eigvalsh(2 * X.T @ X / 60).max().item()
    assert eig == pytest.approx(expected, rel=1e-4)


def test_epsilon_sharpness_of_a_diagonal_quadratic():
    # At the minimum x = 0 the box is |y_i| <= eps and the max of 0.5 y^T A y over it is at a
    # corner: 0.5 eps^2 trace(A); the metric divides by 1 + f(x) = 1 and multiplies by 100.
    A = torch.diag(torch.tensor([1.0, 4.0, 9.0], dtype=torch.float64))
    model = Quadratic(A, torch.zeros(3, dtype=torch.float64))
    eps = 1e-2
    phi = epsilon_sharpness(model, identity_loss, ONE_BATCH, epsilon=eps)
    assert phi == pytest.approx(0.5 * eps**2 * 14.0 * 100, rel=1e-9)


def test_epsilon_box_is_relative_to_the_weights():
    # Minimum at c = (3, 3): the box is |y_i| <= eps (|x_i| + 1) = 4 eps.
    A = torch.diag(torch.tensor([2.0, 2.0], dtype=torch.float64))
    c = torch.tensor([3.0, 3.0], dtype=torch.float64)
    model = Quadratic(A, c, c)
    eps = 1e-3
    phi = epsilon_sharpness(model, identity_loss, ONE_BATCH, epsilon=eps)
    assert phi == pytest.approx(0.5 * 2 * (4 * eps) ** 2 * 2 * 100, rel=1e-9)


def test_sharpness_orders_sharp_above_flat_and_restores_the_model():
    w = torch.randn(4, dtype=torch.float64)
    flat = Quadratic(torch.eye(4, dtype=torch.float64), w)
    sharp = Quadratic(50 * torch.eye(4, dtype=torch.float64), w)
    sharp.train()
    s_flat = sharpness(flat, identity_loss, ONE_BATCH)
    s_sharp = sharpness(sharp, identity_loss, ONE_BATCH)
    assert s_flat.top_eigenvalue == pytest.approx(1.0, rel=1e-6)
    assert s_sharp.top_eigenvalue == pytest.approx(50.0, rel=1e-6)
    assert s_sharp.epsilon_sharpness > s_flat.epsilon_sharpness > 0
    assert torch.equal(sharp.w.detach(), w) and sharp.training
    assert set(s_sharp.as_dict()) == {
        "loss",
        "top_eigenvalue",
        "eigen_iterations",
        "epsilon_sharpness",
        "epsilon",
    }


def test_empty_loader_is_an_error():
    model = Quadratic(torch.eye(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="no batches"):
        sharpness(model, identity_loss, [])


class _Attention(torch.nn.Module):
    """One head of self-attention through torch's fused kernel, and a linear read-out."""

    def __init__(self):
        super().__init__()
        self.qkv, self.out = torch.nn.Linear(4, 12), torch.nn.Linear(4, 1)

    def forward(self, x):
        q, k, v = self.qkv(x).unsqueeze(1).split(4, dim=-1)  # (batch, 1 head, time, 4)
        y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out(y).mean(dim=(1, 2, 3))


def test_second_order_through_fused_attention():
    """torch's CPU flash attention has no second derivative: the diagnostics take the math
    kernel, so the Hessian of an attention model is defined (and its top eigenvalue finite)."""
    torch.manual_seed(0)
    model, x = _Attention(), torch.randn(8, 6, 4)
    batches = [(x, torch.zeros(8))]
    mse = torch.nn.functional.mse_loss
    with pytest.raises(RuntimeError, match="derivative"):  # what the diagnostics avoid
        loss = mse(model(x), torch.zeros(8))
        (g,) = torch.autograd.grad(loss, [model.qkv.weight], create_graph=True)
        torch.autograd.grad(g.sum(), [model.qkv.weight])
    value, _ = top_eigenvalue(model, mse, batches, iters=20)
    assert math.isfinite(value) and value != 0
