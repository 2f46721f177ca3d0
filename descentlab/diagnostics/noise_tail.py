r"""How heavy the tails of the minibatch gradient noise are: Simsekli et al.'s tail index and
Zhang et al.'s distribution of the noise norm.

The noise of a minibatch gradient :math:`g_B` is :math:`u_B = g_B - g`, with :math:`g` the full
(or a large-batch) gradient. Simsekli, Sagun & Gurbuzbalaban 2019 model its coordinates as
symmetric :math:`\alpha`-stable (:math:`\alpha = 2`: Gaussian; :math:`\alpha < 2`: heavy tails,
infinite variance) and estimate :math:`\alpha` with Mohammadi, Mohammadpour & Ogata 2015's
estimator (their Corollary 2.4): for i.i.d. :math:`X_1 \dots X_K`, :math:`K = K_1 K_2`, and the
block sums :math:`Y_i = \sum_{j=1}^{K_1} X_{(i-1) K_1 + j}`,

.. math::
    \widehat{1/\alpha} = \frac{1}{\log K_1} \Big( \frac{1}{K_2} \sum_{i=1}^{K_2} \log |Y_i|
        - \frac{1}{K} \sum_{i=1}^{K} \log |X_i| \Big)                                 \qquad (1)

(a strictly stable law has :math:`Y \overset{d}{=} K_1^{1/\alpha} X`, so the two mean logs
differ by :math:`\log(K_1) / \alpha` in expectation, for any scale). For vectors, :math:`|\cdot|`
is the Euclidean norm (the authors' code). Zhang, Karimireddy, Veit, Kim, Reddi, Kumar & Sra
2020 look instead at the distribution of the noise norm :math:`\|u_B\|` over minibatches: for
Gaussian noise in many dimensions it concentrates (excess kurtosis near 0), heavy tails give a
long right tail (a large positive excess kurtosis):

.. math::
    \kappa = \frac{E[(r - E r)^4]}{(E[(r - E r)^2])^2} - 3, \quad r = \|u_B\|            \qquad (2)

Pooling all coordinates treats them as one i.i.d. sample, as Simsekli et al. do; but Gaussian
coordinates of different scales pooled together are a scale mixture, which (1) reads as heavy
tailed. :class:`GradientNoise` therefore also reports (1) on the coordinates each divided by its
own scale (median absolute noise over the minibatches): a scale mixture of Gaussians then gives
:math:`\alpha \approx 2`, while a coordinate that is itself heavy-tailed keeps its index.

References:
    Simsekli, Sagun & Gurbuzbalaban 2019, "A Tail-Index Analysis of Stochastic Gradient Noise in
    Deep Neural Networks" (ICML), github.com/umutsimsekli/sgd_tail_index; Mohammadi,
    Mohammadpour & Ogata 2015, "On estimating the tail index and the spectral measure of
    multivariate alpha-stable distributions" (Metrika 78); Zhang et al. 2020, "Why are Adaptive
    Methods Good for Attention Models?" (NeurIPS), Figure 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ._loss import Batches, LossFn, trainable

__all__ = ["GradientNoise", "excess_kurtosis", "gradient_noise", "tail_index"]


def tail_index(samples: np.ndarray | torch.Tensor, *, k1: int | None = None) -> float:
    """Equation (1): the tail index alpha of i.i.d. symmetric stable ``samples``.

    Args:
        samples: ``(K,)`` scalars, or ``(K, d)`` vectors (norms of the sums, as the authors'
            code); none may be zero (``log 0``) or non-finite. Dependent samples (coordinates of
            one gradient) should be shuffled first: (1) assumes the block sums add independent
            terms.
        k1: the block length :math:`K_1`; default :math:`\\lfloor \\sqrt{K} \\rfloor` (the
            authors' choice of a divisor near :math:`\\sqrt K`). The last
            :math:`K - K_1 \\lfloor K / K_1 \\rfloor` samples are left out.

    Returns:
        :math:`\\hat\\alpha` (not clipped to (0, 2]: above 2 reads as Gaussian within the noise).
    """
    x = np.asarray(samples.detach().cpu() if isinstance(samples, torch.Tensor) else samples)
    x = x.astype(np.float64).reshape(len(x), -1)
    k = len(x)
    k1 = math.isqrt(k) if k1 is None else k1
    if k1 < 2 or k // k1 < 1:
        raise ValueError(f"need 2 <= k1 <= number of samples; got k1={k1}, {k} samples")
    if not np.isfinite(x).all():
        raise ValueError("samples must be finite")
    norms = np.linalg.norm(x, axis=1)
    if (norms == 0).any():
        raise ValueError("samples must be nonzero (log 0); drop the zeros first")
    k2 = k // k1
    y = x[: k1 * k2].reshape(k2, k1, -1).sum(axis=1)
    log_y, log_x = np.log(np.linalg.norm(y, axis=1)).mean(), np.log(norms).mean()
    inv_alpha = (log_y - log_x) / math.log(k1)  # (1)
    return float(1.0 / inv_alpha)


def excess_kurtosis(values: np.ndarray) -> float:
    """Equation (2): the excess kurtosis (0 for a Gaussian) of a sample."""
    v = np.asarray(values, dtype=np.float64)
    c = v - v.mean()
    return float((c**4).mean() / (c**2).mean() ** 2 - 3.0)  # (2)


@dataclass(frozen=True)
class GradientNoise:
    """The gradient noise of a model's current point.

    Attributes:
        alpha: (1) on the pooled (sampled) coordinates of every minibatch's noise: Simsekli
            et al.'s estimate.
        alpha_standardized: (1) on the same coordinates, each divided by its own scale.
        norm_kurtosis: (2) of the noise norms, Zhang et al.'s check.
        norms: ``(batches,)`` the noise norms :math:`\\|g_B - g\\|` (all coordinates).
        gradient_norm: :math:`\\|g\\|` of the reference gradient.
        coordinates: coordinates sampled per minibatch (of ``parameters``); ``scalars``: nonzero
            pooled values that (1) used.
    """

    alpha: float
    alpha_standardized: float
    norm_kurtosis: float
    gradient_norm: float
    parameters: int
    coordinates: int
    scalars: int
    norms: np.ndarray = field(repr=False)


def _flat_grad(model: nn.Module, loss_fn: LossFn, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    params = trainable(model)
    grads = torch.autograd.grad(loss_fn(model(x), y), params, allow_unused=True)
    return torch.cat(
        [(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, grads)]
    )


def gradient_noise(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Batches,
    *,
    reference: Batches | None = None,
    coordinates: int = 50_000,
    seed: int = 0,
) -> GradientNoise:
    """The minibatch gradient noise at ``model``'s current point, and its tails.

    Args:
        model: its parameters are not changed, nor its mode (train mode gives the noise that
            SGD sees: dropout, batch statistics).
        loss_fn: ``loss_fn(model(x), y)``, the batch mean.
        batches: the minibatches ``(x, y)``, at least 4; their gradients are held together
            (``batches x parameters`` numbers: 64 x 0.8 M for the charlm-transformer, 0.2 GB).
        reference: batches whose mean loss gives the reference gradient ``g`` (the full data);
            default the mean gradient of ``batches`` themselves (a large batch of them all).
        coordinates: how many coordinates (a fixed random subset, drawn from ``seed``) are kept
            per minibatch for (1); the norms use every coordinate.
        seed: the coordinate subset and the shuffle of the pooled values before (1) (the
            coordinates of one minibatch's noise are dependent).
    """
    batches = list(batches)
    if len(batches) < 4:
        raise ValueError(f"need at least 4 minibatches, got {len(batches)}")
    if coordinates < 1:
        raise ValueError(f"coordinates must be >= 1, got {coordinates}")
    gen = torch.Generator().manual_seed(seed)
    grads = torch.stack([_flat_grad(model, loss_fn, x, y) for x, y in batches])
    if reference is None:
        g = grads.mean(0)
    else:
        ref = list(reference)
        count = sum(len(x) for x, _ in ref)
        g = sum(_flat_grad(model, loss_fn, x, y) * (len(x) / count) for x, y in ref)
    u = grads - g  # one pass over the batches: (batches, parameters) in memory
    d = g.numel()
    idx = torch.randperm(d, generator=gen)[: min(coordinates, d)].sort().values
    norms = torch.linalg.vector_norm(u, dim=1).tolist()
    noise = u[:, idx]  # (batches, coordinates)
    scale = noise.abs().median(dim=0).values
    # zeros (a coordinate no example of the batch moves) and coordinates of zero scale are left out
    keep = ((noise != 0) & (scale > 0)).flatten()
    pooled = noise.flatten()
    standardized = (noise / torch.where(scale > 0, scale, 1.0)).flatten()
    order = torch.randperm(int(keep.sum()), generator=gen)
    return GradientNoise(
        alpha=tail_index(pooled[keep][order]),
        alpha_standardized=tail_index(standardized[keep][order]),
        norm_kurtosis=excess_kurtosis(np.array(norms)),
        gradient_norm=float(g.norm()),
        parameters=d,
        coordinates=len(idx),
        scalars=int(keep.sum()),
        norms=np.array(norms),
    )
