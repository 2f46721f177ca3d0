r"""Dinh et al. 2017's guard: a ReLU network rescaled layer by layer computes the same function.

ReLU is positively homogeneous, ``relu(a z) = a relu(z)`` for ``a > 0``, so multiplying a hidden
layer's weights and bias by ``a_k`` and dividing the next layer's weights by it leaves every
output unchanged. With ``a_k`` the factor on the output of the ``k``-th weighted layer
(``a_0 = a_L = 1`` for the input and the last layer):

.. math::
    W_k \leftarrow \frac{a_k}{a_{k-1}} W_k, \qquad b_k \leftarrow a_k b_k          \tag{1}

Write (1) as ``theta' = T theta`` with ``T`` diagonal. Since ``L(T theta) = L(theta)`` for every
``theta``, the Hessian at the rescaled point is

.. math::
    H' = T^{-1} H T^{-1}                                                             \tag{2}

so a block of parameters multiplied by ``t`` has its curvature divided by ``t^2``: with
``a_1 = alpha`` and the other factors 1, the second layer's weights are divided by ``alpha`` and
``lambda_max(H') >= alpha^2 lambda_max(H_{W_2 W_2})``, without bound as alpha grows, while the
loss, the outputs and the test error stay the same. Sharpness (top eigenvalue, epsilon-sharpness
with its box relative to the weights) is therefore not invariant to reparametrisation, and a
flat/sharp comparison means something only between networks in comparable parametrisations.

Reference: Dinh, Pascanu, Bengio & Bengio 2017, "Sharp Minima Can Generalize For Deep Nets"
(ICML), section 4 (the alpha-scale transformation).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence

import torch
from torch import nn

from ._loss import trainable

__all__ = ["DINH_NOTE", "HOMOGENEOUS", "WEIGHTED", "rescale", "scale_factors"]

DINH_NOTE = (
    "Sharpness is not reparametrisation-invariant (Dinh et al. 2017): rescaling a ReLU "
    "network's layers by alpha and 1/alpha keeps its function and changes its sharpness."
)
"""The sentence every sharpness figure and table carries."""

WEIGHTED: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
"""The layers whose weights and bias (1) rescales."""
HOMOGENEOUS: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.LeakyReLU,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.Flatten,
    nn.Dropout,
    nn.Identity,
)
"""Positively homogeneous modules (``f(a z) = a f(z)`` for ``a > 0``): allowed between two
weighted layers."""


def _weighted_layers(model: nn.Module) -> list[nn.Module]:
    """The weighted layers in order; raises if a non-homogeneous module sits between two."""
    leaves = [m for m in model.modules() if not list(m.children())]
    weighted = [i for i, m in enumerate(leaves) if isinstance(m, WEIGHTED)]
    for i, j in itertools.pairwise(weighted):
        for m in leaves[i + 1 : j]:
            if not isinstance(m, HOMOGENEOUS):
                raise ValueError(
                    f"{type(m).__name__} between two weighted layers is not positively "
                    "homogeneous; rescaling needs ReLU-like modules there"
                )
    return [leaves[i] for i in weighted]


def _factors(model: nn.Module, alphas: Sequence[float]) -> dict[int, float]:
    """(1)'s multiplier of each weighted layer's weight and bias, keyed by ``id(parameter)``."""
    layers = _weighted_layers(model)
    if len(alphas) != len(layers) - 1:
        raise ValueError(
            f"need one alpha per hidden weighted layer ({len(layers) - 1}), got {len(alphas)}"
        )
    if any(not a > 0 for a in alphas):
        raise ValueError(f"every alpha must be > 0 (ReLU is homogeneous for a > 0), got {alphas}")
    a = [1.0, *map(float, alphas), 1.0]
    factor: dict[int, float] = {}
    for k, layer in enumerate(layers, start=1):
        factor[id(layer.weight)] = a[k] / a[k - 1]  # (1)
        if layer.bias is not None:
            factor[id(layer.bias)] = a[k]  # (1)
    return factor


def scale_factors(model: nn.Module, alphas: Sequence[float]) -> list[torch.Tensor]:
    """(1)'s ``T``: one multiplier tensor per trainable parameter (``trainable(model)`` order).

    ``alphas[k]`` (> 0) multiplies the output of the ``k``-th weighted layer; there is one per
    hidden weighted layer (all but the last). Parameters outside weighted layers get 1.
    """
    factor = _factors(model, alphas)
    return [torch.full_like(p, factor.get(id(p), 1.0)) for p in trainable(model)]


def rescale(model: nn.Module, alphas: Sequence[float]) -> nn.Module:
    """A copy of ``model`` with (1) applied: the same function, a different parametrisation.

    Frozen parameters of weighted layers are rescaled too (the function must not change).

    Example::

        >>> twin = rescale(model, [10.0, 1.0])  # MLP with two hidden layers
        >>> torch.allclose(model(x), twin(x), rtol=1e-5)
        True
    """
    twin = copy.deepcopy(model)
    factor = _factors(twin, alphas)
    with torch.no_grad():
        for p in twin.parameters():
            p.mul_(factor.get(id(p), 1.0))
    return twin
