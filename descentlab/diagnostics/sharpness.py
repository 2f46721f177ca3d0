"""How sharp a minimum is: the top Hessian eigenvalue, and Keskar et al.'s epsilon-sharpness.

References:
    Keskar, Mudigere, Nocedal, Smelyanskiy & Tang 2017, "On Large-Batch Training for Deep
    Learning: Generalization Gap and Sharp Minima" (ICLR), Metric 2.1 (epsilon-sharpness);
    Pearlmutter 1994, "Fast Exact Multiplication by the Hessian" (Hessian-vector products);
    the power iteration as in Yao et al. 2020, "PyHessian".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from ._loss import Batches, LossFn, evaluation, full_loss, second_order, trainable

__all__ = [
    "Sharpness",
    "epsilon_sharpness",
    "hessian_vector_product",
    "power_iteration",
    "random_vector",
    "sharpness",
    "top_eigenvalue",
]


@dataclass(frozen=True)
class Sharpness:
    """The sharpness of a model's current point.

    Attributes:
        loss: the full-data loss at the point.
        top_eigenvalue: the Hessian eigenvalue of largest magnitude (the largest one at a minimum).
        eigen_iterations: power iterations used.
        epsilon_sharpness: Keskar et al.'s metric in percent (see :func:`epsilon_sharpness`).
        epsilon: the relative box radius it used.
    """

    loss: float
    top_eigenvalue: float
    eigen_iterations: int
    epsilon_sharpness: float
    epsilon: float

    def as_dict(self) -> dict[str, Any]:
        """A flat dict (for a results table)."""
        return asdict(self)


def hessian_vector_product(
    model: nn.Module, loss_fn: LossFn, loader: Batches, vector: list[torch.Tensor]
) -> list[torch.Tensor]:
    """``H v`` of the full-data loss by double back-propagation (Pearlmutter 1994).

    ``vector`` has one tensor per trainable parameter (as :func:`~._loss.trainable` orders them).
    Batches are differentiated one at a time, so the memory is one batch's.
    """
    params = trainable(model)
    count = sum(len(x) if x.dim() else 1 for x, _ in loader)
    out = [torch.zeros_like(p) for p in params]
    with second_order():
        for x, y in loader:
            n = len(x) if x.dim() else 1
            loss = loss_fn(model(x), y) * (n / count)
            grads = torch.autograd.grad(loss, params, create_graph=True)
            dot = sum((g * v).sum() for g, v in zip(grads, vector))
            for acc, h in zip(out, torch.autograd.grad(dot, params)):
                acc.add_(h)
    return out


def _dot(a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
    return sum((x * y).sum() for x, y in zip(a, b))


def power_iteration(
    matvec: Callable[[list[torch.Tensor]], list[torch.Tensor]],
    v: list[torch.Tensor],
    *,
    iters: int = 50,
    tol: float = 1e-4,
) -> tuple[float, int, list[torch.Tensor]]:
    """The eigenvalue of largest magnitude of a symmetric operator, by power iteration from ``v``.

    Stops when the Rayleigh quotient ``v^T M v`` changes by less than ``tol`` relative, or after
    ``iters`` iterations.

    Returns:
        ``(eigenvalue, iterations used, unit eigenvector estimate)``; the vector can warm-start
        the next call on a nearby operator (tracking over training).
    """
    norm = _dot(v, v).sqrt()
    v = [x / norm for x in v]
    eig = 0.0
    for it in range(1, iters + 1):
        mv = matvec(v)
        new = float(_dot(v, mv))
        norm = _dot(mv, mv).sqrt()
        if norm == 0:
            return 0.0, it, v
        v = [x / norm for x in mv]
        if it > 1 and abs(new - eig) <= tol * max(abs(new), 1e-12):
            return new, it, v
        eig = new
    return eig, iters, v


def random_vector(params: list[torch.Tensor], seed: int) -> list[torch.Tensor]:
    """A standard normal vector shaped like ``params`` (drawn on the CPU, so device-independent)."""
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device) for p in params]


def top_eigenvalue(
    model: nn.Module,
    loss_fn: LossFn,
    loader: Batches,
    *,
    iters: int = 50,
    tol: float = 1e-4,
    seed: int = 0,
) -> tuple[float, int]:
    """The Hessian eigenvalue of largest magnitude, by power iteration on Hessian-vector products.

    Stops when the Rayleigh quotient changes by less than ``tol`` relative, or after ``iters``
    iterations. At a minimum the Hessian is positive semi-definite and this is the top eigenvalue.

    Returns:
        ``(eigenvalue, iterations used)``.
    """
    v = random_vector(trainable(model), seed)
    eig, it, _ = power_iteration(
        lambda u: hessian_vector_product(model, loss_fn, loader, u), v, iters=iters, tol=tol
    )
    return eig, it


def epsilon_sharpness(
    model: nn.Module,
    loss_fn: LossFn,
    loader: Batches,
    *,
    epsilon: float = 1e-3,
    steps: int = 10,
    seed: int = 0,
) -> float:
    r"""Keskar et al. 2017's sharpness (Metric 2.1, full space, :math:`A = I`), in percent.

    .. math::
        \phi_{x,f}(\epsilon) = \frac{\max_{y \in C_\epsilon} f(x + y) - f(x)}{1 + f(x)} \times 100,
        \quad C_\epsilon = \{ y : |y_i| \le \epsilon (|x_i| + 1) \}

    The paper maximizes with 10 iterations of L-BFGS-B; here the box-constrained maximum is
    approximated by ``steps`` iterations of projected sign-gradient ascent (each step moves half the
    box width along the gradient's sign, then projects), from a random corner of a quarter-size box
    (a zero gradient at an exact minimum would not move). With a convex quadratic whose Hessian
    is diagonal this reaches the exact maximum, a corner of the box.
    """
    params = trainable(model)
    gen = torch.Generator().manual_seed(seed)
    with evaluation(model) as x0:
        with torch.no_grad():
            f0 = float(full_loss(model, loss_fn, loader))
        bounds = [epsilon * (x.abs() + 1) for x in x0]
        signs = [torch.randint(0, 2, x.shape, generator=gen).to(x) * 2 - 1 for x in x0]
        y = [0.25 * b * s for b, s in zip(bounds, signs)]
        best = f0
        for _ in range(steps + 1):
            with torch.no_grad():
                for p, x, d in zip(params, x0, y):
                    p.copy_(x + d)
            loss = full_loss(model, loss_fn, loader)
            best = max(best, float(loss.detach()))
            grads = torch.autograd.grad(loss, params)
            y = [torch.clamp(d + 0.5 * b * g.sign(), -b, b) for d, b, g in zip(y, bounds, grads)]
    return (best - f0) / (1 + f0) * 100


def sharpness(
    model: nn.Module,
    loss_fn: LossFn,
    loader: Batches,
    *,
    epsilon: float = 1e-3,
    ascent_steps: int = 10,
    iters: int = 50,
    tol: float = 1e-4,
    seed: int = 0,
) -> Sharpness:
    """Both sharpness measures of ``model``'s current point on the data of ``loader``.

    Args:
        model: the trained model; it is put in eval mode while measured, and its parameters and
            mode are restored afterwards.
        loss_fn: ``loss_fn(model(x), y)``, the batch mean.
        loader: an iterable of ``(x, y)`` batches that yields the same data each pass (a list of
            tensors, or a ``DataLoader`` without shuffling); a few thousand examples suffice.
        epsilon, ascent_steps: :func:`epsilon_sharpness`'s box radius and ascent iterations.
        iters, tol, seed: :func:`top_eigenvalue`'s power iteration.

    Example::

        >>> s = sharpness(model, nn.functional.cross_entropy, [(x_train, y_train)])
        >>> s.top_eigenvalue, s.epsilon_sharpness
    """
    with evaluation(model):
        with torch.no_grad():
            loss = float(full_loss(model, loss_fn, loader))
        eig, it = top_eigenvalue(model, loss_fn, loader, iters=iters, tol=tol, seed=seed)
    eps_sharp = epsilon_sharpness(
        model, loss_fn, loader, epsilon=epsilon, steps=ascent_steps, seed=seed
    )
    return Sharpness(loss, eig, it, eps_sharp, epsilon)
