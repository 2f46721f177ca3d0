r"""Hessian spectral densities by stochastic Lanczos quadrature, per parameter block, and how much
the blocks' spectra differ (Zhang et al. 2024's block heterogeneity).

Stochastic Lanczos quadrature (Ghorbani, Krishnan & Xiao 2019; Yao et al. 2020, PyHessian): for a
symmetric :math:`H \in \mathbb{R}^{n \times n}` with eigenvalues :math:`\lambda_i`, the spectral
density :math:`\phi(t) = \frac1n \sum_i \delta(t - \lambda_i)` is estimated from a random unit
vector :math:`v` (Gaussian, normalised: :math:`E[v^T f(H) v] = \operatorname{tr} f(H) / n`). ``m``
Lanczos steps from :math:`v` give the tridiagonal :math:`T_m = U \Theta U^T`; the Ritz values
:math:`\theta_k` and weights :math:`\tau_k = U_{1k}^2` are an ``m``-node Gauss quadrature of the
measure :math:`\sum_i (v^T q_i)^2 \delta(t - \lambda_i)`, exact for polynomials of degree up to
:math:`2m - 1`:

.. math::
    v^T H^p v = \sum_{k=1}^m \tau_k \theta_k^p, \quad p \le 2m - 1              \qquad (1)

    \hat\phi_\sigma(t) = \frac{1}{n_v} \sum_{l=1}^{n_v} \sum_{k=1}^m \tau_k^{(l)}
        g_\sigma(t - \theta_k^{(l)}), \quad g_\sigma(x) = \frac{e^{-x^2 / 2\sigma^2}}
        {\sqrt{2\pi}\sigma}                                                       \qquad (2)

A block :math:`b` is a set of parameters (a tensor, or rows of one: a fused query/key/value
weight); its Hessian :math:`H_{bb}` is the diagonal block of the full Hessian, and
:math:`H_{bb} v_b` is the double back-propagation restricted to it (the gradient of
:math:`g_b^T v_b` with respect to the block only). Heterogeneity: the blocks' broadened densities
(2) on one common grid, and their mean pairwise Jensen-Shannon divergence (Zhang et al.'s
:math:`JS^0` at initialisation),

.. math::
    JS(p, q) = \tfrac12 KL(p \| m) + \tfrac12 KL(q \| m), \quad m = \tfrac12 (p + q)   \qquad (3)

    JS^0 = \frac{2}{K (K - 1)} \sum_{b < c} JS(\hat\phi_b, \hat\phi_c)                 \qquad (4)

in nats: 0 for identical densities, ln 2 for disjoint ones (its square root is a metric, scipy's
``jensenshannon``). The broadening :math:`\sigma` is Zhang et al.'s released code's absolute
:math:`\sqrt{10^{-5}}` by default, or a multiple of the blocks' root-mean-square eigenvalue
(``relative``), which does not change when the loss is multiplied by a constant. The paper's
:math:`JS^0` values (up to hundreds) are not bounded by ln 2, so its normalisation of the
densities differs from this one: compare rankings, not numbers.

Blocks as the authors' code makes them: one block per parameter tensor (``named_parameters``),
their GPT-2 having separate query, key and value weights; :func:`parameter_blocks` splits a fused
weight (nanoGPT's ``c_attn``) into its row blocks to match.

References:
    Zhang, Chen, Ding, Li, Sun & Luo 2024, "Why Transformers Need Adam: A Hessian Perspective"
    (NeurIPS), github.com/zyushun/hessian-spectrum; Ghorbani, Krishnan & Xiao 2019, "An
    Investigation into Neural Net Optimization via Hessian Eigenvalue Density" (ICML); Yao,
    Gholami, Keutzer & Mahoney 2020, "PyHessian"; Golub & Meurant 2010, "Matrices, Moments and
    Quadrature with Applications".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import torch
from torch import nn

from ._loss import Batches, LossFn, evaluation, trainable
from .sharpness import hessian_vector_product

__all__ = [
    "PAPER_SIGMA",
    "Block",
    "Heterogeneity",
    "Spectrum",
    "block_hessian_vector_product",
    "block_heterogeneity",
    "block_spectra",
    "gauss_quadrature",
    "hessian_spectrum",
    "js_divergence",
    "lanczos",
    "parameter_blocks",
    "rms_eigenvalue",
    "slq",
]

MatVec = Callable[[list[torch.Tensor]], list[torch.Tensor]]
PAPER_SIGMA = 1e-5**0.5
"""The broadening of Zhang et al.'s released code (``sigma = 1e-5 ** 0.5``, eigenvalue units)."""
# Lanczos stops when beta falls below this fraction of the largest |alpha|, beta seen: the Krylov
# space is then invariant to float32 precision (a product in float32 has a relative error ~1e-7).
_BREAKDOWN = 1e-6


@dataclass(frozen=True)
class Spectrum:
    """An SLQ estimate of a spectral density: ``probes`` quadratures of ``m`` nodes each.

    Attributes:
        nodes: ``(probes, m)`` Ritz values (NaN-padded where a probe's Lanczos stopped early).
        weights: ``(probes, m)`` their weights (0 where padded); each row sums to 1.
        dim: the matrix's size ``n``.
    """

    nodes: np.ndarray
    weights: np.ndarray
    dim: int

    def moment(self, p: int) -> float:
        """The estimate of :math:`\\operatorname{tr}(H^p) / n` (equation (1), averaged)."""
        return float(np.mean(np.nansum(self.weights * np.nan_to_num(self.nodes) ** p, axis=1)))

    @property
    def lambda_max(self) -> float:
        """The largest Ritz value (Lanczos' extreme ones converge first)."""
        return float(np.nanmax(self.nodes))

    @property
    def lambda_min(self) -> float:
        """The smallest Ritz value."""
        return float(np.nanmin(self.nodes))

    def density(self, grid: np.ndarray, sigma: float) -> np.ndarray:
        """Equation (2) on ``grid``: the nodes broadened by Gaussians of width ``sigma``."""
        if sigma <= 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        nodes, w = np.nan_to_num(self.nodes).ravel(), self.weights.ravel()
        z = (grid[:, None] - nodes[None, :]) / sigma
        return (np.exp(-0.5 * z**2) @ w) / (np.sqrt(2 * np.pi) * sigma * len(self.nodes))  # (2)


def lanczos(
    matvec: MatVec, starts: Sequence[torch.Tensor], steps: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Lanczos tridiagonalisation of several symmetric operators in lockstep.

    ``matvec`` maps one flat vector per operator to their products (so that the operators can
    share a forward pass); ``starts`` are the start vectors (normalised here). Each operator runs
    ``min(steps, size)`` steps with full reorthogonalisation (in float64, as PyHessian), and
    stops early where the Krylov space becomes invariant.

    Returns:
        per operator ``(alpha, beta)``: the diagonal (length ``k``) and off-diagonal (``k - 1``)
        of its tridiagonal matrix ``T_k``.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    basis = [[(v / v.norm()).double()] for v in starts]
    alphas: list[list[float]] = [[] for _ in starts]
    betas: list[list[float]] = [[] for _ in starts]
    limit = [min(steps, v.numel()) for v in starts]
    active = [True] * len(starts)
    scale = [0.0] * len(starts)
    while any(active):
        products = matvec([V[-1].to(s.dtype) for V, s in zip(basis, starts)])
        for i, (V, hv) in enumerate(zip(basis, products)):
            if not active[i]:
                continue
            w = hv.double()
            alpha = float(w @ V[-1])
            w = w - alpha * V[-1] - (betas[i][-1] * V[-2] if betas[i] else 0.0)
            for u in V:  # full reorthogonalisation (Paige 1976: without it, ghost eigenvalues)
                w = w - (w @ u) * u
            alphas[i].append(alpha)
            beta = float(w.norm())
            scale[i] = max(scale[i], abs(alpha), beta)
            if len(alphas[i]) == limit[i] or beta <= _BREAKDOWN * scale[i]:
                active[i] = False
                continue
            betas[i].append(beta)
            V.append(w / beta)
    return [(np.array(a), np.array(b)) for a, b in zip(alphas, betas)]


def gauss_quadrature(alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The nodes (Ritz values) and weights of the tridiagonal ``T``: equation (1)'s quadrature."""
    T = np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1)
    nodes, U = np.linalg.eigh(T)
    return nodes, U[0] ** 2  # (1): theta_k and tau_k = U_1k^2


def _spectra(
    matvec: MatVec, sizes: Sequence[int], *, steps: int, probes: int, seed: int
) -> list[Spectrum]:
    """SLQ for several operators of the given sizes, all probes of all operators in lockstep."""
    if probes < 1:
        raise ValueError(f"probes must be >= 1, got {probes}")
    gen = torch.Generator().manual_seed(seed)
    starts = [
        torch.randn(n, generator=gen, dtype=torch.float64) for _ in range(probes) for n in sizes
    ]
    k = len(sizes)

    def stacked(vectors: list[torch.Tensor]) -> list[torch.Tensor]:
        out: list[torch.Tensor] = []
        for j in range(probes):
            out.extend(matvec(vectors[j * k : (j + 1) * k]))
        return out

    runs = lanczos(stacked, starts, steps)
    width = min(steps, max(sizes))
    spectra = []
    for b, n in enumerate(sizes):
        nodes = np.full((probes, width), np.nan)
        weights = np.zeros((probes, width))
        for j in range(probes):
            theta, tau = gauss_quadrature(*runs[j * k + b])
            nodes[j, : len(theta)], weights[j, : len(tau)] = theta, tau
        spectra.append(Spectrum(nodes, weights, n))
    return spectra


def slq(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    dim: int,
    *,
    steps: int = 30,
    probes: int = 1,
    seed: int = 0,
) -> Spectrum:
    """The spectral density of the symmetric operator ``matvec`` (float64 vectors of ``dim``).

    Example::

        >>> A = torch.diag(torch.arange(1.0, 11.0, dtype=torch.float64))
        >>> slq(lambda v: A @ v, 10, steps=10).moment(1)  # tr(A) / 10 = 5.5
    """
    (spectrum,) = _spectra(lambda vs: [matvec(vs[0])], [dim], steps=steps, probes=probes, seed=seed)
    return spectrum


@dataclass(frozen=True)
class Block:
    """A parameter block: trainable parameter ``index`` (in ``trainable(model)`` order), all of
    it or its rows ``rows`` (along dim 0)."""

    name: str
    index: int
    rows: slice | None = None

    def part(self, t: torch.Tensor) -> torch.Tensor:
        """The block's part of a tensor shaped as its parameter, flattened."""
        return (t if self.rows is None else t[self.rows]).reshape(-1)

    def take(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        """The block's part of a per-parameter list, flattened."""
        return self.part(tensors[self.index])


def parameter_blocks(
    model: nn.Module, *, split: Mapping[str, Sequence[str]] | None = None, min_dim: int = 1
) -> list[Block]:
    """One block per trainable parameter of at least ``min_dim`` dimensions (2: the weight
    matrices, embeddings and convolution kernels, without biases and norm gains), named as
    ``named_parameters``.

    ``split`` maps a name suffix to part names: a parameter whose name ends with it is cut into
    that many equal row blocks, named ``<name>:<part>`` (``{"attn.c_attn.weight": ("q", "k",
    "v")}`` gives nanoGPT's fused attention weight the separate query, key and value blocks of
    Zhang et al.'s GPT-2).
    """
    split = dict(split or {})
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    blocks = []
    for i, (name, p) in enumerate(named):
        if p.dim() < min_dim:
            continue
        parts = next((v for k, v in split.items() if name.endswith(k)), None)
        if parts is None:
            blocks.append(Block(name, i))
            continue
        if p.shape[0] % len(parts):
            raise ValueError(
                f"split: {name} has {p.shape[0]} rows, not a multiple of {len(parts)} parts"
            )
        size = p.shape[0] // len(parts)
        blocks.extend(
            Block(f"{name}:{part}", i, slice(j * size, (j + 1) * size))
            for j, part in enumerate(parts)
        )
    return blocks


def block_hessian_vector_product(
    model: nn.Module,
    loss_fn: LossFn,
    loader: Batches,
    blocks: Sequence[Block],
    vectors: Sequence[torch.Tensor],
) -> list[torch.Tensor]:
    """``H_bb v_b`` for every block ``b`` of the full-data loss (flat vectors, one per block).

    One forward and first backward pass per batch; then one backward per block of
    ``g_b^T v_b`` with respect to that block's parameter only (the authors' code does the same).
    """
    params = trainable(model)
    count = sum(len(x) if x.dim() else 1 for x, _ in loader)
    out = [torch.zeros_like(v) for v in vectors]
    for x, y in loader:
        n = len(x) if x.dim() else 1
        loss = loss_fn(model(x), y) * (n / count)
        grads = torch.autograd.grad(loss, params, create_graph=True)
        for acc, block, v in zip(out, blocks, vectors):
            g = block.take(grads)
            if not g.requires_grad:  # the loss is linear in the block: H_bb = 0
                continue
            (h,) = torch.autograd.grad(
                (g * v).sum(), params[block.index], retain_graph=True, allow_unused=True
            )
            if h is not None:
                acc.add_(block.part(h))
    return out


def block_spectra(
    model: nn.Module,
    loss_fn: LossFn,
    loader: Batches,
    *,
    blocks: Sequence[Block] | None = None,
    steps: int = 30,
    probes: int = 1,
    seed: int = 0,
) -> dict[str, Spectrum]:
    """The SLQ spectral density of each block's Hessian ``H_bb``, all blocks in lockstep.

    Args:
        model: put in eval mode while measured; its parameters and mode are restored.
        loss_fn: ``loss_fn(model(x), y)``, the batch mean.
        loader: ``(x, y)`` batches yielding the same data each pass (a list of tensors).
        blocks: default :func:`parameter_blocks`.
        steps, probes, seed: Lanczos steps per probe (capped at a block's size), random start
            vectors per block, and their seed.

    Example::

        >>> spectra = block_spectra(model, nn.functional.cross_entropy, [(x, y)], steps=20)
        >>> block_heterogeneity(spectra).mean  # JS^0, nats
    """
    blocks = parameter_blocks(model) if blocks is None else list(blocks)
    with evaluation(model):
        params = trainable(model)
        sizes = [block.take(params).numel() for block in blocks]
        dtypes = [params[b.index].dtype for b in blocks]

        def matvec(vectors: list[torch.Tensor]) -> list[torch.Tensor]:
            vs = [v.to(dt) for v, dt in zip(vectors, dtypes)]
            return block_hessian_vector_product(model, loss_fn, loader, blocks, vs)

        spectra = _spectra(matvec, sizes, steps=steps, probes=probes, seed=seed)
    return {b.name: s for b, s in zip(blocks, spectra)}


def hessian_spectrum(
    model: nn.Module,
    loss_fn: LossFn,
    loader: Batches,
    *,
    steps: int = 30,
    probes: int = 1,
    seed: int = 0,
) -> Spectrum:
    """The SLQ spectral density of the whole model's Hessian (as :func:`block_spectra`)."""
    with evaluation(model):
        params = trainable(model)
        shapes = [p.shape for p in params]
        sizes = [p.numel() for p in params]

        def matvec(v: torch.Tensor) -> torch.Tensor:
            parts = [c.view(s).to(p.dtype) for c, s, p in zip(v.split(sizes), shapes, params)]
            hv = hessian_vector_product(model, loss_fn, loader, parts)
            return torch.cat([h.reshape(-1) for h in hv]).double()

        return slq(matvec, sum(sizes), steps=steps, probes=probes, seed=seed)


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Equation (3) in nats between two densities sampled on the same uniform grid (each is
    normalised to sum to 1 first); in [0, ln 2]."""
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    if p.shape != q.shape or (p < 0).any() or (q < 0).any() or p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("p and q must be non-negative, not all zero, on the same grid")
    p, q = p / p.sum(), q / q.sum()

    def kl_to_mean(a: np.ndarray, b: np.ndarray) -> float:
        nz = a > 0  # log(a / m) written as log(2a / (a + b)): finite where 0.5 a underflows
        return float(np.sum(a[nz] * np.log(2 * a[nz] / (a[nz] + b[nz]))))

    return 0.5 * kl_to_mean(p, q) + 0.5 * kl_to_mean(q, p)  # (3)


@dataclass(frozen=True)
class Heterogeneity:
    """How different the blocks' spectra are.

    Attributes:
        mean: :math:`JS^0`, equation (4), nats (0 homogeneous ... ln 2 = 0.693 disjoint).
        names: the blocks, in the order of ``matrix``.
        matrix: ``(K, K)`` pairwise JS divergences (3).
        sigma: the broadening used (eigenvalue units).
        grid: the common eigenvalue grid.
        densities: ``(K, len(grid))`` the broadened densities (2) on it.
    """

    mean: float
    names: list[str]
    matrix: np.ndarray = field(repr=False)
    sigma: float
    grid: np.ndarray = field(repr=False)
    densities: np.ndarray = field(repr=False)


def rms_eigenvalue(spectra: Mapping[str, Spectrum]) -> float:
    r"""The root-mean-square eigenvalue over every parameter of the blocks,
    :math:`\sqrt{\sum_b \operatorname{tr}(H_{bb}^2) / \sum_b n_b}`: a scale for the broadening
    that rare outlying eigenvalues (which carry little mass) do not set."""
    total = sum(s.dim for s in spectra.values())
    return float(np.sqrt(sum(s.dim * s.moment(2) for s in spectra.values()) / total))


def block_heterogeneity(
    spectra: Mapping[str, Spectrum],
    *,
    sigma: float | None = None,
    relative: float | None = None,
    max_points: int = 200_001,
) -> Heterogeneity:
    """Equation (4): the blocks' densities (2) on a common grid, and their mean pairwise JS (3).

    Args:
        spectra: at least two blocks' spectra (:func:`block_spectra`).
        sigma: the Gaussian broadening in eigenvalue units; the default, when ``relative`` is not
            given either, is Zhang et al.'s code's :data:`PAPER_SIGMA` (``sqrt(1e-5)``).
        relative: instead, ``sigma = relative * rms_eigenvalue(spectra)``: unchanged when the loss
            is multiplied by a constant, for models whose Hessians have different scales.
        max_points: the grid spans every Ritz value padded by 4 sigma, in steps of sigma / 4, with
            at most this many points (wider steps beyond it).
    """
    if len(spectra) < 2:
        raise ValueError(f"need at least 2 blocks, got {len(spectra)}")
    if sigma is not None and relative is not None:
        raise ValueError("give sigma or relative, not both")
    if relative is not None:
        if relative <= 0:
            raise ValueError(f"relative must be > 0, got {relative}")
        sigma = relative * rms_eigenvalue(spectra)
    sigma = PAPER_SIGMA if sigma is None else sigma
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    lo = min(s.lambda_min for s in spectra.values()) - 4 * sigma
    hi = max(s.lambda_max for s in spectra.values()) + 4 * sigma
    grid = np.linspace(lo, hi, min(int(np.ceil((hi - lo) / (sigma / 4))) + 1, max_points))
    dens = np.stack([s.density(grid, sigma) for s in spectra.values()])
    k = len(dens)
    matrix = np.zeros((k, k))
    for i, j in combinations(range(k), 2):
        matrix[i, j] = matrix[j, i] = js_divergence(dens[i], dens[j])
    mean = float(matrix[np.triu_indices(k, 1)].mean())  # (4)
    return Heterogeneity(mean, list(spectra), matrix, sigma, grid, dens)
