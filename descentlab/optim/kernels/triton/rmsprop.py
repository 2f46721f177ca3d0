"""RMSprop (centered, momentum) in one pass: the equations (1)-(5) of ``optim/rmsprop.py``."""

import torch
import triton
import triton.language as tl

from . import _jit as j
from . import _table
from .ops import register

__all__ = ["rmsprop"]


@triton.jit
def _rmsprop_kernel(
    TABLE, WT, WS, WE, H, GRAD_SCALE, FOUND_INF,
    L2: tl.constexpr, CENTERED: tl.constexpr, MOMENTUM: tl.constexpr, MAXIMIZE: tl.constexpr,
    L: tl.constexpr, HAS_SCALE: tl.constexpr, HAS_INF: tl.constexpr, DT: tl.constexpr,
    CT: tl.constexpr, FULL: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    _, start, end, row = j.item(TABLE, WT, WS, WE, FOUND_INF, L, HAS_INF, FULL, BLOCK)
    P, G, V = j.address(row, 0, DT, FULL), j.address(row, 1, DT, FULL), j.address(row, 2, DT, FULL)
    if CENTERED:
        GA = j.address(row, 3, DT, FULL)
    if MOMENTUM:
        B, mu = j.address(row, 4, DT, FULL), tl.load(H + 4).to(CT)
    neg_lr, alpha = (-tl.load(H)).to(CT), tl.load(H + 1)
    a, one_a = alpha.to(CT), (1.0 - alpha).to(CT)
    e, wd = tl.load(H + 2).to(CT), j.hyper(H, 3, L2, CT)
    scale = j.load_scale(GRAD_SCALE, HAS_SCALE, CT)
    for off in range(start, end, BLOCK):
        i = off + tl.arange(0, BLOCK)
        m = j.mask(i, end, FULL)
        p = tl.load(P + i, mask=m).to(CT)
        g = j.grad(G, i, m, p, wd, scale, MAXIMIZE, HAS_SCALE, L2, CT)
        v = tl.load(V + i, mask=m).to(CT) * a + one_a * g * g  # (1)
        tl.store(V + i, v.to(DT), mask=m)
        if CENTERED:
            ga = j.lerp(tl.load(GA + i, mask=m).to(CT), g, one_a)  # (2)
            tl.store(GA + i, ga.to(DT), mask=m)
            denom = j.sqrt(v - ga * ga)
        else:
            denom = j.sqrt(v)
        denom = denom + e  # (3)
        if MOMENTUM:
            buf = tl.load(B + i, mask=m).to(CT) * mu + j.div(g, denom)  # (4)
            tl.store(B + i, buf.to(DT), mask=m)
            tl.store(P + i, (p + neg_lr * buf).to(DT), mask=m)
        else:
            tl.store(P + i, (p + j.div(neg_lr * g, denom)).to(DT), mask=m)  # (5)


def _launch(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    square_avg: list[torch.Tensor],
    grad_avg: list[torch.Tensor],
    momentum_buffer: list[torch.Tensor],
    hyper: torch.Tensor,
    l2: bool,
    maximize: bool,
    grad_scale: torch.Tensor | None,
    found_inf: torch.Tensor | None,
) -> None:
    _table.run(
        _rmsprop_kernel,
        [params, grads, square_avg, grad_avg, momentum_buffer],
        hyper,
        grad_scale,
        found_inf,
        L2=l2,
        CENTERED=bool(grad_avg),
        MOMENTUM=bool(momentum_buffer),
        MAXIMIZE=maximize,
    )


_op = register("rmsprop", _launch, ("params", "grads", "square_avg", "grad_avg", "momentum_buffer"))


def rmsprop(
    *,
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    square_avg: list[torch.Tensor],
    grad_avg: list[torch.Tensor],
    momentum_buffer: list[torch.Tensor],
    lr: float | torch.Tensor,
    alpha: float | torch.Tensor,
    eps: float | torch.Tensor,
    weight_decay: float | torch.Tensor,
    momentum: float | torch.Tensor,
    maximize: bool,
    grad_scale: torch.Tensor | None = None,
    found_inf: torch.Tensor | None = None,
) -> None:
    """RMSprop over lists of tensors; ``grad_avg`` empty: not centered; ``momentum_buffer``
    empty: no momentum."""
    if params:
        h = _table.hyper([lr, alpha, eps, weight_decay, momentum], params[0].device)
        _op(params, grads, square_avg, grad_avg, momentum_buffer, h,
            _table.nonzero(weight_decay), maximize, grad_scale, found_inf)  # fmt: skip
