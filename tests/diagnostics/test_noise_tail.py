"""The tail index estimator on symmetric alpha-stable samples, and the gradient noise of models
whose noise law is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import levy_stable
from torch import nn

from descentlab.diagnostics.noise_tail import (
    excess_kurtosis,
    gradient_noise,
    tail_index,
)

N = 2**20  # samples: K1 = K2 = 1024


def _std(alpha: float, k1: int, k2: int) -> float:
    """The standard deviation of alpha-hat by the delta method: Var log|X| of a symmetric
    alpha-stable law is pi^2/6 (1/alpha^2 + 1/2) (Zolotarev 1986); the mean of the K2 log|Y| terms
    dominates (the K = K1 K2 log|X| terms are K1 times less variable), divided by log K1, times
    d alpha / d(1/alpha) = alpha^2."""
    var = math.pi**2 / 6 * (1 / alpha**2 + 0.5)
    return alpha**2 * math.sqrt(var * (1 / k2 + 1 / (k1 * k2))) / math.log(k1)


@pytest.mark.parametrize(("alpha", "seed"), [(1.2, 0), (1.6, 1), (2.0, 2)])
def test_tail_index_recovers_alpha(alpha, seed):
    # (1) is unbiased in 1/alpha for a stable law; the tolerance is 6 standard deviations of the
    # estimate (0.055 at alpha = 2, 0.021 at 1.2): at a fixed seed and this n it cannot fail by
    # chance, and a wrong estimator (e.g. K1 in place of log K1) misses by far more.
    x = levy_stable.rvs(alpha, 0.0, size=N, random_state=seed)
    assert tail_index(x) == pytest.approx(alpha, abs=6 * _std(alpha, 1024, 1024))
    # any scale: a stable law times c is stable with the same alpha; the estimate is unchanged
    assert tail_index(1000.0 * x) == pytest.approx(tail_index(x), rel=1e-9)


def test_tail_index_of_vectors_uses_norms():
    # vectors of i.i.d. stable coordinates: a sum of K1 of them is K1^(1/alpha) times one in law
    x = levy_stable.rvs(1.6, 0.0, size=(2**18, 4), random_state=3)
    assert tail_index(x) == pytest.approx(1.6, abs=0.1)
    g = np.random.default_rng(4).standard_normal((2**18, 8))
    assert tail_index(g) == pytest.approx(2.0, abs=0.1)


def test_tail_index_refuses_bad_samples():
    with pytest.raises(ValueError, match="nonzero"):
        tail_index(np.array([1.0, 0.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="finite"):
        tail_index(np.array([1.0, np.inf, 2.0, 3.0]))
    with pytest.raises(ValueError, match="k1"):
        tail_index(np.ones(10), k1=1)
    with pytest.raises(ValueError, match="k1"):
        tail_index(np.ones(10), k1=11)


def test_excess_kurtosis():
    rng = np.random.default_rng(0)
    assert excess_kurtosis(rng.standard_normal(200_000)) == pytest.approx(0.0, abs=0.05)
    assert excess_kurtosis(rng.laplace(size=200_000)) == pytest.approx(3.0, abs=0.2)


def _linear(d: int) -> nn.Module:
    model = nn.Linear(d, 1, bias=False).double()
    nn.init.ones_(model.weight)
    return model


def _mean_output(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    # loss = mean_i w . z_i: the minibatch gradient is the mean of the z_i of the batch
    return out.mean()


def _batches(z: np.ndarray, b: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    t = torch.from_numpy(z)
    return [(t[i : i + b], torch.zeros(b)) for i in range(0, len(t), b)]


def test_gradient_noise_of_stable_examples_has_their_index():
    # The mean of b i.i.d. symmetric 1.5-stable vectors is 1.5-stable; the reference gradient is
    # set to 0 (a batch of zeros), so the noise is exactly that mean.
    d, b, n_batches = 400, 4, 512
    z = levy_stable.rvs(1.5, 0.0, size=(n_batches * b, d), random_state=5)
    ref = [(torch.zeros(1, d, dtype=torch.float64), torch.zeros(1))]
    out = gradient_noise(_linear(d), _mean_output, _batches(z, b), reference=ref, coordinates=d)
    assert out.coordinates == d and out.parameters == d and out.scalars == d * n_batches
    assert out.gradient_norm == 0.0
    assert out.alpha == pytest.approx(1.5, abs=0.1)
    assert out.alpha_standardized == pytest.approx(1.5, abs=0.1)
    assert out.norm_kurtosis > 10  # a long right tail of the norms
    np.testing.assert_allclose(
        out.norms, np.linalg.norm(z.reshape(n_batches, b, d).mean(1), axis=1), rtol=1e-9
    )


def test_pooled_gaussian_coordinates_of_different_scales_read_as_heavy_tailed():
    # Gaussian noise, coordinates of scales 1, 10 and 100: pooled, (1) sees a scale mixture and
    # gives ~1.3 (by hand: 1 / (1/2 + (log sqrt(3367) - log 10) / log K1)); standardized, ~2.
    # The norms of 300-dimensional Gaussian noise concentrate: excess kurtosis near 0.
    d, b, n_batches = 300, 8, 512
    rng = np.random.default_rng(6)
    scales = np.repeat([1.0, 10.0, 100.0], d // 3)
    z = rng.standard_normal((n_batches * b, d)) * scales
    model = _linear(d)
    out = gradient_noise(model, _mean_output, _batches(z, b), coordinates=d, seed=1)
    assert out.alpha < 1.6
    assert out.alpha_standardized == pytest.approx(2.0, abs=0.15)
    assert abs(out.norm_kurtosis) < 1.0
    # the model is untouched: no gradient written, weights the same
    assert model.weight.grad is None and torch.equal(model.weight, torch.ones(1, d).double())
    # the default reference is the mean gradient of the batches: the noise sums to zero
    centred = z.reshape(n_batches, b, d).mean(1)
    centred -= centred.mean(0)
    np.testing.assert_allclose(out.norms, np.linalg.norm(centred, axis=1), rtol=1e-9)


def test_gradient_noise_refuses_too_few_batches_or_coordinates():
    batches = _batches(np.ones((12, 3)), 4)
    with pytest.raises(ValueError, match="at least 4 minibatches"):
        gradient_noise(_linear(3), _mean_output, batches)
    with pytest.raises(ValueError, match="coordinates must be >= 1"):
        gradient_noise(_linear(3), _mean_output, batches * 2, coordinates=0)
