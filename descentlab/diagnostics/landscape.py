"""Loss along lines and planes in parameter space: interpolation and random-direction slices.

References:
    Goodfellow, Vinyals & Saxe 2015, "Qualitatively Characterizing Neural Network Optimization
    Problems" (linear interpolation between two solutions);
    Li, Xu, Taylor, Studer & Goldstein 2018, "Visualizing the Loss Landscape of Neural Nets"
    (random directions with filter normalization, their section 4).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ._loss import Batches, LossFn, evaluation, full_loss, trainable

__all__ = ["Slice1D", "Slice2D", "interpolate", "random_direction", "slice_1d", "slice_2d"]


@dataclass(frozen=True)
class Slice1D:
    """``loss[i]`` is the loss at coordinate ``alphas[i]`` along the line."""

    alphas: np.ndarray
    loss: np.ndarray


@dataclass(frozen=True)
class Slice2D:
    """``loss[j, i]`` is the loss at ``theta + alphas[i] d1 + betas[j] d2``."""

    alphas: np.ndarray
    betas: np.ndarray
    loss: np.ndarray


def _evaluate_at(
    model: nn.Module, loss_fn: LossFn, loader: Batches, points: list[list[torch.Tensor]]
) -> np.ndarray:
    out = np.empty(len(points))
    with evaluation(model), torch.no_grad():
        params = trainable(model)
        for i, point in enumerate(points):
            for p, value in zip(params, point):
                p.copy_(value)
            out[i] = float(full_loss(model, loss_fn, loader))
    return out


def interpolate(
    model_a: nn.Module,
    model_b: nn.Module,
    loss_fn: LossFn,
    loader: Batches,
    *,
    alphas: Sequence[float] | np.ndarray | None = None,
) -> Slice1D:
    """The loss at ``(1 - alpha) theta_a + alpha theta_b`` (Goodfellow et al. 2015).

    ``alpha = 0`` is ``model_a``, ``1`` is ``model_b``; the default runs from -0.5 to 1.5 in 41
    points. Only trainable parameters are interpolated; buffers (batch-norm statistics) stay
    ``model_a``'s, and the evaluation runs in eval mode. ``model_a`` is restored afterwards.
    """
    alphas = np.linspace(-0.5, 1.5, 41) if alphas is None else np.asarray(alphas, dtype=float)
    a = [p.detach() for p in trainable(model_a)]
    b = [p.detach() for p in trainable(model_b)]
    if [x.shape for x in a] != [x.shape for x in b]:
        raise ValueError("model_a and model_b must have the same trainable parameter shapes")
    points = [[(1 - t) * x + t * y for x, y in zip(a, b)] for t in alphas]
    return Slice1D(alphas, _evaluate_at(model_a, loss_fn, loader, points))


def random_direction(
    model: nn.Module,
    *,
    filter_normalize: bool = True,
    ignore_1d: bool = True,
    generator: torch.Generator | None = None,
) -> list[torch.Tensor]:
    """A Gaussian direction in parameter space, filter-normalized as in Li et al. 2018.

    With ``filter_normalize``, each filter (slice along the first dimension: an output unit of a
    linear layer, an output channel of a convolution) of the direction is rescaled to the norm of
    the same filter of the weights, so the slice is comparable across layers and networks whose
    weights differ in scale. One-dimensional parameters (biases, norm weights) get a zero direction
    when ``ignore_1d`` (Li et al.'s code, ``ignore="biasbn"``), otherwise a copy of the weights.
    """
    out = []
    for p in trainable(model):
        d = torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device)
        if filter_normalize:
            if p.dim() <= 1:
                d = torch.zeros_like(p) if ignore_1d else p.detach().clone()
            else:
                dims = tuple(range(1, p.dim()))
                d_norm = torch.linalg.vector_norm(d, dim=dims, keepdim=True)
                d = d * (
                    torch.linalg.vector_norm(p.detach(), dim=dims, keepdim=True)
                    / d_norm.clamp_min(1e-12)
                )
        out.append(d)
    return out


def slice_1d(
    model: nn.Module,
    loss_fn: LossFn,
    loader: Batches,
    *,
    direction: list[torch.Tensor] | None = None,
    alphas: Sequence[float] | np.ndarray | None = None,
    seed: int = 0,
) -> Slice1D:
    """The loss at ``theta + alpha d`` (default: ``d`` filter-normalized random, alpha in [-1, 1])."""
    alphas = np.linspace(-1.0, 1.0, 41) if alphas is None else np.asarray(alphas, dtype=float)
    if direction is None:
        direction = random_direction(model, generator=torch.Generator().manual_seed(seed))
    theta = [p.detach().clone() for p in trainable(model)]
    points = [[x + t * d for x, d in zip(theta, direction)] for t in alphas]
    return Slice1D(alphas, _evaluate_at(model, loss_fn, loader, points))


def slice_2d(
    model: nn.Module,
    loss_fn: LossFn,
    loader: Batches,
    *,
    directions: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None,
    alphas: Sequence[float] | np.ndarray | None = None,
    betas: Sequence[float] | np.ndarray | None = None,
    seed: int = 0,
) -> Slice2D:
    """The loss on the plane ``theta + alpha d1 + beta d2`` (Li et al. 2018's contour plots).

    Default directions: two filter-normalized random ones (nearly orthogonal in high dimension);
    default grid: 21 x 21 points in [-1, 1]^2.
    """
    alphas = np.linspace(-1.0, 1.0, 21) if alphas is None else np.asarray(alphas, dtype=float)
    betas = alphas if betas is None else np.asarray(betas, dtype=float)
    if directions is None:
        gen = torch.Generator().manual_seed(seed)
        directions = (
            random_direction(model, generator=gen),
            random_direction(model, generator=gen),
        )
    d1, d2 = directions
    theta = [p.detach().clone() for p in trainable(model)]
    points = [[x + a * u + b * w for x, u, w in zip(theta, d1, d2)] for b in betas for a in alphas]
    loss = _evaluate_at(model, loss_fn, loader, points).reshape(len(betas), len(alphas))
    return Slice2D(alphas, betas, loss)
