"""NAdam in one pass: equations (2)-(3) of ``optim/nadam.py`` (the schedule (1) is scalar)."""

import torch
import triton
import triton.language as tl

from . import _jit as j
from . import _table
from .ops import register

__all__ = ["nadam"]


@triton.jit
def _nadam_kernel(
    TABLE, WT, WS, WE, H, GRAD_SCALE, FOUND_INF, C_GRAD, C_AVG, BC2,
    L2: tl.constexpr, MAXIMIZE: tl.constexpr,
    L: tl.constexpr, HAS_SCALE: tl.constexpr, HAS_INF: tl.constexpr, DT: tl.constexpr,
    CT: tl.constexpr, FULL: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    t, start, end, row = j.item(TABLE, WT, WS, WE, FOUND_INF, L, HAS_INF, FULL, BLOCK)
    P, G = j.address(row, 0, DT, FULL), j.address(row, 1, DT, FULL)
    M, V = j.address(row, 2, DT, FULL), j.address(row, 3, DT, FULL)
    b1, b2 = tl.load(H), tl.load(H + 1)
    w1, beta2, one_b2 = (1.0 - b1).to(CT), b2.to(CT), (1.0 - b2).to(CT)
    e, wd, dec = tl.load(H + 2).to(CT), j.hyper(H, 3, L2, CT), tl.load(H + 4).to(CT)
    cg, ca = tl.load(C_GRAD + t).to(CT), tl.load(C_AVG + t).to(CT)
    bc = tl.load(BC2 + t).to(CT)
    scale = j.load_scale(GRAD_SCALE, HAS_SCALE, CT)
    for off in range(start, end, BLOCK):
        i = off + tl.arange(0, BLOCK)
        mask = j.mask(i, end, FULL)
        p = tl.load(P + i, mask=mask).to(CT) * dec
        g = j.grad(G, i, mask, p, wd, scale, MAXIMIZE, HAS_SCALE, L2, CT)
        m = j.lerp(tl.load(M + i, mask=mask).to(CT), g, w1)  # (2)
        v = tl.load(V + i, mask=mask).to(CT) * beta2 + one_b2 * g * g
        tl.store(M + i, m.to(DT), mask=mask)
        tl.store(V + i, v.to(DT), mask=mask)
        denom = j.sqrt(j.div(v, bc)) + e
        q = p + j.div(cg * g, denom)  # (3), first term
        tl.store(P + i, (q + j.div(ca * m, denom)).to(DT), mask=mask)  # (3), second term


def _launch(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    exp_avg: list[torch.Tensor],
    exp_avg_sq: list[torch.Tensor],
    c_grad: torch.Tensor,
    c_avg: torch.Tensor,
    bc2: torch.Tensor,
    hyper: torch.Tensor,
    l2: bool,
    maximize: bool,
    grad_scale: torch.Tensor | None,
    found_inf: torch.Tensor | None,
) -> None:
    n = len(params)
    _table.run(
        _nadam_kernel,
        [params, grads, exp_avg, exp_avg_sq],
        hyper,
        grad_scale,
        found_inf,
        *(_table.scalars(x, n, w) for x, w in ((c_grad, "c_grad"), (c_avg, "c_avg"), (bc2, "bc2"))),
        L2=l2,
        MAXIMIZE=maximize,
    )


_op = register("nadam", _launch, ("params", "grads", "exp_avg", "exp_avg_sq"))


def nadam(
    *,
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    exp_avg: list[torch.Tensor],
    exp_avg_sq: list[torch.Tensor],
    c_grad: torch.Tensor,
    c_avg: torch.Tensor,
    bc2: torch.Tensor,
    beta1: float | torch.Tensor,
    beta2: float | torch.Tensor,
    eps: float | torch.Tensor,
    l2_weight_decay: float | torch.Tensor,
    decay: float | torch.Tensor,
    maximize: bool,
    grad_scale: torch.Tensor | None = None,
    found_inf: torch.Tensor | None = None,
) -> None:
    """NAdam over lists of tensors. Per tensor: ``c_grad``, ``c_avg`` (the two step sizes of
    ``NAdam.coefficients``) and ``bc2 = 1 - beta2^t``; ``decay``: the decoupled factor
    ``1 - lr wd`` (1 when the decay is L2 or off)."""
    if params:
        h = _table.hyper([beta1, beta2, eps, l2_weight_decay, decay], params[0].device)
        _op(params, grads, exp_avg, exp_avg_sq, c_grad, c_avg, bc2, h,
            _table.nonzero(l2_weight_decay), maximize, grad_scale, found_inf)  # fmt: skip
