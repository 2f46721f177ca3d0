"""Stochastic Lanczos quadrature, block Hessians and Jensen-Shannon heterogeneity against known
answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from descentlab.diagnostics.spectrum import (
    PAPER_SIGMA,
    Block,
    Spectrum,
    block_hessian_vector_product,
    block_heterogeneity,
    block_spectra,
    gauss_quadrature,
    hessian_spectrum,
    js_divergence,
    lanczos,
    parameter_blocks,
    rms_eigenvalue,
    slq,
)

from ._models import ONE_BATCH, Quadratic, identity_loss, spd


def _rotated(eig: torch.Tensor, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(len(eig), len(eig), generator=g, dtype=torch.float64))
    return q @ torch.diag(eig) @ q.T


def test_gauss_quadrature_is_exact_up_to_degree_2m_minus_1():
    # Equation (1): m Lanczos steps from v integrate v^T H^p v exactly for p <= 2m - 1.
    A = spd(40)
    v = torch.randn(40, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    m = 6
    ((alpha, beta),) = lanczos(lambda vs: [A @ vs[0]], [v], m)
    assert len(alpha) == m and len(beta) == m - 1
    nodes, weights = gauss_quadrature(alpha, beta)
    u = v / v.norm()
    for p in range(2 * m):
        exact = float(u @ torch.linalg.matrix_power(A, p) @ u)
        assert float(np.sum(weights * nodes**p)) == pytest.approx(exact, rel=1e-8)
    # degree 2m is no longer exact (a check that the test can fail)
    exact = float(u @ torch.linalg.matrix_power(A, 2 * m) @ u)
    assert float(np.sum(weights * nodes ** (2 * m))) != pytest.approx(exact, rel=1e-8)


def test_slq_finds_the_eigenvalues_and_their_multiplicities():
    # 400 x 400, eigenvalues 1, 2, 4, 8 with multiplicities 40, 80, 120, 160, rotated. Lanczos
    # from any start stops after 4 steps (the Krylov space is invariant), with the 4 eigenvalues
    # as Ritz values; the weights are (v^T P_j v) / |v|^2, whose mean over 16 Gaussian probes has
    # standard deviation <= sqrt(2 * 0.4 * 0.6 / 400 / 16) = 0.0087: 0.05 is over 5 of them.
    eig = torch.tensor([1.0] * 40 + [2.0] * 80 + [4.0] * 120 + [8.0] * 160, dtype=torch.float64)
    A = _rotated(eig)
    s = slq(lambda v: A @ v, 400, steps=30, probes=16, seed=1)
    assert s.nodes.shape == (16, 30)
    for row, w in zip(s.nodes, s.weights):
        found = row[~np.isnan(row)]
        np.testing.assert_allclose(found, [1, 2, 4, 8], rtol=1e-9)
        assert w.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(s.weights[:, :4].mean(0), [0.1, 0.2, 0.3, 0.4], atol=0.05)
    assert s.lambda_min == pytest.approx(1.0) and s.lambda_max == pytest.approx(8.0)


def test_slq_moments_of_a_continuous_spectrum():
    # tr(A^p)/n of 2000 eigenvalues uniform on [0.5, 10]. Each probe's quadrature is exact in p
    # (p <= 2 steps - 1), so only the probe average is random: for u uniform on the sphere,
    # Var(u^T B u) = 2 / (n + 2) * (mean(b^2) - mean(b)^2) exactly; the tolerance is 5 standard
    # deviations of the mean over the probes. SLQ is rotation-invariant, so A is diagonal.
    eig = torch.linspace(0.5, 10.0, 2000, dtype=torch.float64)
    probes = 16
    s = slq(lambda v: eig * v, 2000, steps=20, probes=probes, seed=0)
    for p in (1, 2, 3):
        b = eig**p
        std = math.sqrt(2 / (2000 + 2) * float(b.var(correction=0)) / probes)
        assert s.moment(p) == pytest.approx(float(b.mean()), abs=5 * std)
    # Ritz values lie inside [0.5, 10] (interlacing), the extreme ones near its ends
    assert 9.8 < s.lambda_max <= 10.0 + 1e-9 and 0.5 - 1e-9 <= s.lambda_min < 0.7


def test_hessian_spectrum_of_a_quadratic_model():
    A = spd(12)  # eigenvalues 0.5 ... 10
    model = Quadratic(A, torch.randn(12, dtype=torch.float64))
    s = hessian_spectrum(model, identity_loss, ONE_BATCH, steps=12, probes=2)
    np.testing.assert_allclose(np.sort(s.nodes[0]), np.linspace(0.5, 10.0, 12), rtol=1e-7)
    assert s.dim == 12


class _Tiny(nn.Module):
    """Two layers with tanh: a non-quadratic loss whose Hessian blocks couple."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.a = nn.Parameter(torch.randn(4, 3, generator=g, dtype=torch.float64))
        self.b = nn.Parameter(torch.randn(4, generator=g, dtype=torch.float64))
        self.c = nn.Parameter(torch.randn(2, 4, generator=g, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x @ self.a.T + self.b) @ self.c.T


def _full_hessian(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    sizes = [p.numel() for p in model.parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss(w: torch.Tensor) -> torch.Tensor:
        parts = {n: c.view(s) for n, c, s in zip(names, w.split(sizes), shapes)}
        return nn.functional.mse_loss(functional_call(model, parts, (x,)), y)

    return torch.autograd.functional.hessian(loss, flat)


def test_block_hvp_is_the_diagonal_block_of_the_full_hessian():
    model = _Tiny()
    g = torch.Generator().manual_seed(5)
    x, y = (
        torch.randn(10, 3, generator=g, dtype=torch.float64),
        torch.randn(10, 2, generator=g, dtype=torch.float64),
    )
    H = _full_hessian(model, x, y)
    blocks = parameter_blocks(model, split={"c": ("top", "bottom")})
    assert [b.name for b in blocks] == ["a", "b", "c:top", "c:bottom"]
    # flat coordinates of each block in the full Hessian: a 0..11, b 12..15, c 16..23 (rows of 4)
    coords = {
        "a": range(0, 12),
        "b": range(12, 16),
        "c:top": range(16, 20),
        "c:bottom": range(20, 24),
    }
    vs = [torch.randn(len(coords[b.name]), generator=g, dtype=torch.float64) for b in blocks]
    loader = [(x[:6], y[:6]), (x[6:], y[6:])]  # two batches: the weighting must give the mean
    out = block_hessian_vector_product(model, nn.functional.mse_loss, loader, blocks, vs)
    for b, v, hv in zip(blocks, vs, out):
        idx = torch.tensor(list(coords[b.name]))
        torch.testing.assert_close(hv, H[idx][:, idx] @ v)
    # the whole-model spectrum: every Ritz value is an eigenvalue of the full Hessian, the extreme
    # ones among them (a 24-dimensional Krylov space from a generic start is the whole space)
    s = hessian_spectrum(model, nn.functional.mse_loss, loader, steps=24)
    found, eig = s.nodes[0][~np.isnan(s.nodes[0])], torch.linalg.eigvalsh(H).numpy()
    assert np.abs(found[:, None] - eig[None, :]).min(1).max() < 1e-8
    assert found.max() == pytest.approx(eig.max()) and found.min() == pytest.approx(eig.min())
    # each block's spectrum equals its diagonal block's eigenvalues
    spectra = block_spectra(model, nn.functional.mse_loss, loader, blocks=blocks, steps=12)
    for b in blocks:
        idx = torch.tensor(list(coords[b.name]))
        expected = torch.linalg.eigvalsh(H[idx][:, idx]).numpy()
        found = spectra[b.name].nodes[0]
        np.testing.assert_allclose(np.sort(found[~np.isnan(found)]), expected, atol=1e-8)


def test_parameter_blocks_min_dim_and_bad_split():
    model = _Tiny()
    assert [b.name for b in parameter_blocks(model, min_dim=2)] == ["a", "c"]
    with pytest.raises(ValueError, match="c has 2 rows, not a multiple of 3 parts"):
        parameter_blocks(model, split={"c": ("q", "k", "v")})
    assert Block("x", 0, slice(1, 3)).part(torch.arange(8.0).view(4, 2)).tolist() == [2, 3, 4, 5]


def test_a_block_the_loss_is_linear_in_has_a_zero_hessian():
    # least squares in a linear model: the bias' gradient is linear in it, H_bias,bias = 2 I
    # for mse; a constant offset parameter in an identity loss is linear: H = 0.
    class Offset(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.ones(3, dtype=torch.float64))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.w.sum()

    (hv,) = block_hessian_vector_product(
        Offset(), identity_loss, ONE_BATCH, [Block("w", 0)], [torch.ones(3, dtype=torch.float64)]
    )
    assert torch.equal(hv, torch.zeros(3, dtype=torch.float64))


def test_js_divergence_identical_and_disjoint():
    grid = np.linspace(-20, 20, 8001)
    p = np.exp(-0.5 * (grid + 10) ** 2)
    q = np.exp(-0.5 * (grid - 10) ** 2)  # 20 standard deviations apart: overlap ~ e^-50
    assert js_divergence(p, p) == 0.0
    assert js_divergence(p, 3 * p) == pytest.approx(0.0, abs=1e-15)  # normalised first
    assert js_divergence(p, q) == pytest.approx(math.log(2), rel=1e-9)
    r = np.exp(-0.5 * grid**2)
    assert js_divergence(p, r) == pytest.approx(js_divergence(r, p))
    assert 0 < js_divergence(p, r) < math.log(2)
    with pytest.raises(ValueError, match="non-negative"):
        js_divergence(p, -q)


def _spectrum(values: list[float], dim: int = 10) -> Spectrum:
    nodes = np.array([values])
    return Spectrum(nodes, np.full_like(nodes, 1 / len(values)), dim)


def test_block_heterogeneity_of_identical_and_disjoint_blocks():
    same = block_heterogeneity({"a": _spectrum([1.0, 2.0]), "b": _spectrum([1.0, 2.0])}, sigma=0.1)
    assert same.mean == pytest.approx(0.0, abs=1e-12)
    far = {"a": _spectrum([1.0]), "b": _spectrum([3.0]), "c": _spectrum([5.0])}
    het = block_heterogeneity(far, sigma=0.1)  # 20 sigma apart
    assert het.mean == pytest.approx(math.log(2), rel=1e-6)
    assert het.matrix.shape == (3, 3) and np.all(np.diag(het.matrix) == 0)
    assert het.densities.shape == (3, len(het.grid))
    # unit mass, less the Gaussian tails beyond the grid's 4-sigma padding (3.2e-5 a side)
    mass = het.densities.sum(1) * (het.grid[1] - het.grid[0])
    np.testing.assert_allclose(mass, 1.0, atol=4e-5)
    # relative broadening: the same result when every eigenvalue (the loss) is scaled by 1000
    scaled = {k: Spectrum(s.nodes * 1000, s.weights, s.dim) for k, s in far.items()}
    mixed = {"a": _spectrum([1.0, 3.0]), "b": _spectrum([1.0, 2.0])}
    mixed_scaled = {k: Spectrum(s.nodes * 1000, s.weights, s.dim) for k, s in mixed.items()}
    assert block_heterogeneity(mixed, relative=0.3).mean == pytest.approx(
        block_heterogeneity(mixed_scaled, relative=0.3).mean, rel=1e-6
    )
    assert rms_eigenvalue(scaled) == pytest.approx(1000 * rms_eigenvalue(far))
    assert block_heterogeneity(far).sigma == PAPER_SIGMA


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"sigma": 0.1, "relative": 0.1}, "not both"),
        ({"relative": 0.0}, "relative must be > 0"),
        ({"sigma": -1.0}, "sigma must be > 0"),
    ],
)
def test_block_heterogeneity_refuses_bad_broadening(kw, match):
    with pytest.raises(ValueError, match=match):
        block_heterogeneity({"a": _spectrum([1.0]), "b": _spectrum([2.0])}, **kw)


def test_block_heterogeneity_needs_two_blocks_and_slq_checks_its_counts():
    with pytest.raises(ValueError, match="at least 2 blocks"):
        block_heterogeneity({"a": _spectrum([1.0])})
    with pytest.raises(ValueError, match="steps must be >= 1"):
        slq(lambda v: v, 3, steps=0)
    with pytest.raises(ValueError, match="probes must be >= 1"):
        slq(lambda v: v, 3, probes=0)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        _spectrum([1.0]).density(np.zeros(3), 0.0)
