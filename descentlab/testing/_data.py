"""The parameters and gradients every check steps with: small, deterministic, awkward shapes."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

Groups = list[list[nn.Parameter]]

# One tensor of each kind a step must handle: a scalar, a matrix, a non-contiguous view (its
# storage is a (6, 3) matrix, transposed) and a vector.
_KINDS = ((), (5, 4), "view", (7,))


def make_groups(
    dtype: torch.dtype = torch.float64, seed: int = 0, n_groups: int = 2, device: str = "cpu"
) -> Groups:
    """Parameters in ``n_groups`` groups, two tensors per group (all four kinds in one group).

    The kinds cycle: a scalar and a 5x4 matrix in group 0, a non-contiguous 3x6 view and a
    vector of 7 in group 1, and so on. On the ``meta`` device the tensors hold no data.
    """
    gen = torch.Generator().manual_seed(seed)
    real = torch.float64 if dtype.is_complex else dtype

    def r(*shape: int) -> torch.Tensor:
        if device == "meta":
            return torch.empty(shape, dtype=dtype, device="meta")
        x = torch.randn(shape, generator=gen, dtype=real)
        if dtype.is_complex:
            x = torch.complex(x, torch.randn(shape, generator=gen, dtype=real))
        return x

    def tensor(kind: Any) -> nn.Parameter:
        if kind == "view":
            view = nn.Parameter(r(6, 3).t())
            assert not view.is_contiguous()
            return view
        return nn.Parameter(r(*kind))

    count = max(len(_KINDS), 2 * n_groups)
    params = [tensor(_KINDS[i % len(_KINDS)]) for i in range(count)]
    size = count // n_groups
    return [params[i * size : (i + 1) * size] for i in range(n_groups)]


def clone_groups(groups: Groups) -> Groups:
    """Fresh parameters with the same values (and the same strides)."""
    return [[nn.Parameter(p.detach().clone()) for p in g] for g in groups]


def with_hparams(groups: Groups, hparams: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Parameter groups as an optimizer takes them: ``{"params": ..., **hyperparameters}``."""
    return [{"params": g, **h} for g, h in zip(groups, hparams, strict=True)]


def set_grads(groups: Groups, t: int) -> None:
    """A deterministic gradient that depends on the parameters (a quadratic) and on the step."""
    for i, p in enumerate(q for g in groups for q in g):
        if p.device.type == "meta":
            p.grad = torch.empty_like(p)
            continue
        noise = _noise(t, i, tuple(p.shape)).to(p.dtype)
        p.grad = (0.3 * p.detach() + noise * math.cos(t)).to(p.dtype)


@functools.lru_cache(maxsize=4096)
def _noise(t: int, i: int, shape: tuple[int, ...]) -> torch.Tensor:
    """The noise of parameter ``i`` at step ``t`` (read only; drawn once, every run reuses it)."""
    gen = torch.Generator().manual_seed(1000 * t + i)
    return torch.randn(shape, generator=gen, dtype=torch.float64)


def flat(groups: Groups) -> list[nn.Parameter]:
    """The parameters of all groups, in order."""
    return [p for g in groups for p in g]


def indexed(groups: Groups) -> list[tuple[int, int, nn.Parameter]]:
    """``(group index, index in the group, parameter)`` for every parameter."""
    return [(gi, pi, p) for gi, g in enumerate(groups) for pi, p in enumerate(g)]
