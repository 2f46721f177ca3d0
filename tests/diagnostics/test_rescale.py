"""Dinh et al.'s rescaling: the same function, a Hessian transformed by (2), another sharpness."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from descentlab.diagnostics import (
    epsilon_sharpness,
    hessian_vector_product,
    rescale,
    scale_factors,
    top_eigenvalue,
)

CE = nn.functional.cross_entropy
EXACT = {"iters": 2000, "tol": 1e-12}


def _mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3)
    ).double()


def _data() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 5, generator=g, dtype=torch.float64)
    return [(x, torch.randint(0, 3, (40,), generator=g))]


def test_same_function_and_the_factors_of_1():
    model, data = _mlp(), _data()
    twin = rescale(model, [10.0, 0.25])
    x = data[0][0]
    torch.testing.assert_close(twin(x), model(x), rtol=1e-12, atol=1e-12)
    # (1): W1 * 10, b1 * 10, W2 * 0.25 / 10, b2 * 0.25, W3 / 0.25, b3 unchanged
    expected = [10.0, 10.0, 0.025, 0.25, 4.0, 1.0]
    for p, q, t, e in zip(
        model.parameters(), twin.parameters(), scale_factors(model, [10, 0.25]), expected
    ):
        torch.testing.assert_close(q, p * e)
        assert torch.all(t == e)
    assert not torch.equal(twin[0].weight, model[0].weight)  # a copy; the original is untouched


def test_hessian_transforms_as_t_inverse_h_t_inverse():
    model, data = _mlp(), _data()
    alphas = [3.0, 0.5]
    twin = rescale(model, alphas)
    T = scale_factors(model, alphas)
    g = torch.Generator().manual_seed(2)
    v = [torch.randn(p.shape, generator=g, dtype=p.dtype) for p in model.parameters()]
    hv_twin = hessian_vector_product(twin, CE, data, v)
    hv = hessian_vector_product(model, CE, data, [x / t for x, t in zip(v, T)])
    for a, b, t in zip(hv_twin, hv, T):
        torch.testing.assert_close(a, b / t)  # (2)


def test_top_eigenvalue_grows_as_alpha_squared_while_the_loss_stays():
    model, data = _mlp(), _data()
    alpha = 10.0
    twin = rescale(model, [alpha, 1.0])  # layer 2's weights are divided by alpha
    x, y = data[0]
    with torch.no_grad():
        assert float(CE(twin(x), y)) == pytest.approx(float(CE(model(x), y)), rel=1e-12)
    eig, _ = top_eigenvalue(model, CE, data, **EXACT)
    eig_twin, _ = top_eigenvalue(twin, CE, data, **EXACT)
    # lower bound: the block of W2 alone, whose curvature (2) multiplies by alpha^2
    frozen = rescale(model, [1.0, 1.0])
    for name, p in frozen.named_parameters():
        p.requires_grad_(name == "2.weight")
    block, _ = top_eigenvalue(frozen, CE, data, **EXACT)
    assert alpha**2 * block <= eig_twin * (1 + 1e-6)
    # upper bound: ||T^-1 H T^-1|| <= max(1/t)^2 ||H|| = alpha^2 ||H||
    assert eig_twin <= alpha**2 * abs(eig) * (1 + 1e-6)
    assert eig_twin > 10 * eig  # clearly not invariant (14x here)
    # Keskar's box scales with |x_i| + 1, so epsilon-sharpness is not invariant either
    phi, phi_twin = (epsilon_sharpness(m, CE, data) for m in (model, twin))
    assert phi_twin > 2 * phi > 0  # 2.5x here


def test_convolutions_pooling_and_frozen_parameters():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Identity(),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 5),
        nn.ReLU(),
        nn.Linear(5, 2),
    ).double()
    model[0].bias.requires_grad_(False)  # frozen: rescaled all the same
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    twin = rescale(model, [7.0, 0.3])
    torch.testing.assert_close(twin(x), model(x), rtol=1e-12, atol=1e-12)
    assert len(scale_factors(model, [7.0, 0.3])) == 5  # trainable only


def test_errors():
    tanh = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="Tanh between two weighted layers"):
        rescale(tanh, [2.0])
    with pytest.raises(ValueError, match=r"one alpha per hidden weighted layer \(2\), got 1"):
        rescale(_mlp(), [2.0])
    with pytest.raises(ValueError, match="every alpha must be > 0"):
        rescale(_mlp(), [2.0, -1.0])
