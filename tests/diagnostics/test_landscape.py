"""Interpolation and slices: exact parabolas on quadratics, filter normalization."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from descentlab.diagnostics import interpolate, random_direction, slice_1d, slice_2d

from ._models import ONE_BATCH, Quadratic, identity_loss, spd


def test_interpolation_between_two_points_of_a_quadratic_is_the_exact_parabola():
    A = spd(5)
    a, b = torch.randn(5, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    model_a, model_b = Quadratic(A, a), Quadratic(A, b)
    alphas = np.linspace(-0.5, 1.5, 9)
    s = interpolate(model_a, model_b, identity_loss, ONE_BATCH, alphas=alphas)
    d = (b - a).numpy()
    An, an = A.numpy(), a.numpy()
    # f(a + t d) = f(a) + t d^T A a + 0.5 t^2 d^T A d
    expected = 0.5 * an @ An @ an + alphas * (d @ An @ an) + 0.5 * alphas**2 * (d @ An @ d)
    np.testing.assert_allclose(s.loss, expected, rtol=1e-12)
    assert torch.equal(model_a.w.detach(), a)  # restored


def test_interpolation_shape_mismatch():
    with pytest.raises(ValueError, match="same trainable"):
        interpolate(nn.Linear(2, 1), nn.Linear(3, 1), nn.functional.mse_loss, [])


def test_filter_normalization():
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Flatten(), nn.Linear(12, 2))
    d = random_direction(net, generator=torch.Generator().manual_seed(0))
    conv_w, conv_b, lin_w, lin_b = d
    p = dict(net.named_parameters())
    torch.testing.assert_close(conv_w.flatten(1).norm(dim=1), p["0.weight"].flatten(1).norm(dim=1))
    torch.testing.assert_close(lin_w.norm(dim=1), p["2.weight"].norm(dim=1))
    assert not conv_b.any() and not lin_b.any()  # 1-D parameters ignored (Li et al.'s default)
    kept = random_direction(net, ignore_1d=False, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(kept[1], p["0.bias"].detach())


def test_slices_on_a_quadratic():
    A = torch.diag(torch.tensor([1.0, 3.0], dtype=torch.float64))
    model = Quadratic(A, torch.zeros(2, dtype=torch.float64))
    e1 = [torch.tensor([1.0, 0.0], dtype=torch.float64)]
    e2 = [torch.tensor([0.0, 1.0], dtype=torch.float64)]
    s1 = slice_1d(model, identity_loss, ONE_BATCH, direction=e2, alphas=[-1, 0, 2])
    np.testing.assert_allclose(s1.loss, [1.5, 0.0, 6.0])
    s2 = slice_2d(
        model, identity_loss, ONE_BATCH, directions=(e1, e2), alphas=[0, 1], betas=[-1, 0, 1]
    )
    assert s2.loss.shape == (3, 2)
    np.testing.assert_allclose(
        s2.loss, 0.5 * (np.array([0, 1])[None] ** 2 + 3 * np.array([-1, 0, 1])[:, None] ** 2)
    )


def test_default_random_slice_is_deterministic_and_centred():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    data = [(torch.randn(8, 3), torch.randn(8, 1))]
    a = slice_1d(net, nn.functional.mse_loss, data, alphas=[-0.5, 0.0, 0.5], seed=3)
    b = slice_1d(net, nn.functional.mse_loss, data, alphas=[-0.5, 0.0, 0.5], seed=3)
    np.testing.assert_array_equal(a.loss, b.loss)
    with torch.no_grad():
        assert a.loss[1] == pytest.approx(
            nn.functional.mse_loss(net(data[0][0]), data[0][1]).item()
        )
