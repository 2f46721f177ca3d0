"""The SGD family in one pass: equations (1)-(3) of ``optim/sgd.py`` with (Nesterov) momentum,
dampening, L2 or decoupled decay (SGDW), and SWATS's SGD phase."""

import torch
import triton
import triton.language as tl

from . import _jit as j
from . import _table
from .ops import register

__all__ = ["momentum_sgd"]


@triton.jit
def _momentum_sgd_kernel(
    TABLE, WT, WS, WE, H, GRAD_SCALE, FOUND_INF, LR, FIRST,
    L2: tl.constexpr, MOMENTUM: tl.constexpr, NESTEROV: tl.constexpr, MAXIMIZE: tl.constexpr,
    L: tl.constexpr, HAS_SCALE: tl.constexpr, HAS_INF: tl.constexpr, DT: tl.constexpr,
    CT: tl.constexpr, FULL: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    t, start, end, row = j.item(TABLE, WT, WS, WE, FOUND_INF, L, HAS_INF, FULL, BLOCK)
    P, G = j.address(row, 0, DT, FULL), j.address(row, 1, DT, FULL)
    if MOMENTUM:
        B, mu, damp = j.address(row, 2, DT, FULL), tl.load(H).to(CT), (1.0 - tl.load(H + 1)).to(CT)
        later = tl.load(FIRST + t) == 0  # not the buffer's first step
    wd, dec = j.hyper(H, 2, L2, CT), tl.load(H + 3).to(CT)
    neg_lr = (-tl.load(LR + t)).to(CT)
    scale = j.load_scale(GRAD_SCALE, HAS_SCALE, CT)
    for off in range(start, end, BLOCK):
        i = off + tl.arange(0, BLOCK)
        mask = j.mask(i, end, FULL)
        p = tl.load(P + i, mask=mask).to(CT)
        d = j.grad(G, i, mask, p, wd, scale, MAXIMIZE, HAS_SCALE, L2, CT)
        if MOMENTUM:
            b = tl.load(B + i, mask=mask)  # (not used at b_1 = g_1).to(CT)
            buf = tl.where(later, b * mu + damp * d, d)  # (1)
            tl.store(B + i, buf.to(DT), mask=mask)
            d = d + mu * buf if NESTEROV else buf  # (2)
        tl.store(P + i, (p * dec + neg_lr * d).to(DT), mask=mask)  # (3)


def _launch(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    momentum_buffer: list[torch.Tensor],
    lr: torch.Tensor,
    first: torch.Tensor,
    hyper: torch.Tensor,
    nesterov: bool,
    l2: bool,
    maximize: bool,
    grad_scale: torch.Tensor | None,
    found_inf: torch.Tensor | None,
) -> None:
    n = len(params)
    if first.shape != (n,):
        raise ValueError(f"descentlab Triton kernels: first must have {n} values")
    _table.run(
        _momentum_sgd_kernel,
        [params, grads, momentum_buffer],
        hyper,
        grad_scale,
        found_inf,
        _table.scalars(lr, n, "lr"),
        first.contiguous(),
        L2=l2,
        MOMENTUM=bool(momentum_buffer),
        NESTEROV=nesterov,
        MAXIMIZE=maximize,
    )


_op = register("momentum_sgd", _launch, ("params", "grads", "momentum_buffer"))


def momentum_sgd(
    *,
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    momentum_buffer: list[torch.Tensor],
    lr: torch.Tensor,
    first: torch.Tensor,
    momentum: float | torch.Tensor,
    dampening: float | torch.Tensor,
    nesterov: bool,
    l2_weight_decay: float | torch.Tensor,
    decay: float | torch.Tensor,
    maximize: bool,
    grad_scale: torch.Tensor | None = None,
    found_inf: torch.Tensor | None = None,
) -> None:
    """SGD with (Nesterov) momentum and decoupled decay over lists of tensors. Per tensor:
    ``lr`` (float64) and ``first`` (any dtype, nonzero: the buffer's first step, b_1 = g_1);
    ``momentum_buffer`` empty: no momentum; ``decay``: ``1 - lr wd`` for SGDW, else 1."""
    if params:
        h = _table.hyper([momentum, dampening, l2_weight_decay, decay], params[0].device)
        _op(params, grads, momentum_buffer, lr, first, h, nesterov,
            _table.nonzero(l2_weight_decay), maximize, grad_scale, found_inf)  # fmt: skip
