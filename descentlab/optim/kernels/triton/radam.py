"""RAdam in one pass: equation (3) of ``optim/radam.py`` (the rectification (1)-(2) is scalar)."""

import torch
import triton
import triton.language as tl

from . import _jit as j
from . import _table
from .ops import register

__all__ = ["radam"]


@triton.jit
def _radam_kernel(
    TABLE, WT, WS, WE, H, GRAD_SCALE, FOUND_INF, BC1, RECT, ADAPT,
    L2: tl.constexpr, MAXIMIZE: tl.constexpr,
    L: tl.constexpr, HAS_SCALE: tl.constexpr, HAS_INF: tl.constexpr, DT: tl.constexpr,
    CT: tl.constexpr, FULL: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    t, start, end, row = j.item(TABLE, WT, WS, WE, FOUND_INF, L, HAS_INF, FULL, BLOCK)
    P, G = j.address(row, 0, DT, FULL), j.address(row, 1, DT, FULL)
    M, V = j.address(row, 2, DT, FULL), j.address(row, 3, DT, FULL)
    rate, b1, b2 = tl.load(H).to(CT), tl.load(H + 1), tl.load(H + 2)
    w1, beta2, one_b2 = (1.0 - b1).to(CT), b2.to(CT), (1.0 - b2).to(CT)
    e, wd, dec = tl.load(H + 3).to(CT), j.hyper(H, 4, L2, CT), tl.load(H + 5).to(CT)
    bc, r = tl.load(BC1 + t).to(CT), tl.load(RECT + t).to(CT)
    ad = tl.load(ADAPT + t).to(CT)
    rectified = r >= 0  # a negative r_t: below the threshold
    scale = j.load_scale(GRAD_SCALE, HAS_SCALE, CT)
    for off in range(start, end, BLOCK):
        i = off + tl.arange(0, BLOCK)
        mask = j.mask(i, end, FULL)
        p = tl.load(P + i, mask=mask).to(CT) * dec
        g = j.grad(G, i, mask, p, wd, scale, MAXIMIZE, HAS_SCALE, L2, CT)
        m = j.lerp(tl.load(M + i, mask=mask).to(CT), g, w1)
        v = tl.load(V + i, mask=mask).to(CT) * beta2 + one_b2 * g * g
        tl.store(M + i, m.to(DT), mask=mask)
        tl.store(V + i, v.to(DT), mask=mask)
        step = j.div(m, bc) * rate
        adaptive = j.div(ad, j.sqrt(v) + e)
        q = tl.where(rectified, p - step * adaptive * r, p - step)  # (3) rectified, or SGDM
        tl.store(P + i, q.to(DT), mask=mask)


def _launch(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    exp_avg: list[torch.Tensor],
    exp_avg_sq: list[torch.Tensor],
    bc1: torch.Tensor,
    rect: torch.Tensor,
    adapt: torch.Tensor,
    hyper: torch.Tensor,
    l2: bool,
    maximize: bool,
    grad_scale: torch.Tensor | None,
    found_inf: torch.Tensor | None,
) -> None:
    n = len(params)
    _table.run(
        _radam_kernel,
        [params, grads, exp_avg, exp_avg_sq],
        hyper,
        grad_scale,
        found_inf,
        *(_table.scalars(x, n, w) for x, w in ((bc1, "bc1"), (rect, "rect"), (adapt, "adapt"))),
        L2=l2,
        MAXIMIZE=maximize,
    )


_op = register("radam", _launch, ("params", "grads", "exp_avg", "exp_avg_sq"))


def radam(
    *,
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    exp_avg: list[torch.Tensor],
    exp_avg_sq: list[torch.Tensor],
    bc1: torch.Tensor,
    rect: torch.Tensor,
    adapt: torch.Tensor,
    lr: float | torch.Tensor,
    beta1: float | torch.Tensor,
    beta2: float | torch.Tensor,
    eps: float | torch.Tensor,
    l2_weight_decay: float | torch.Tensor,
    decay: float | torch.Tensor,
    maximize: bool,
    grad_scale: torch.Tensor | None = None,
    found_inf: torch.Tensor | None = None,
) -> None:
    """RAdam over lists of tensors. Per tensor: ``bc1 = 1 - beta1^t``, ``rect`` (r_t of
    ``RAdam.rectification``, negative below the threshold: then an SGD-with-momentum step) and
    ``adapt = sqrt(1 - beta2^t)``; ``decay``: ``1 - lr wd`` when decoupled, else 1."""
    if params:
        h = _table.hyper([lr, beta1, beta2, eps, l2_weight_decay, decay], params[0].device)
        _op(params, grads, exp_avg, exp_avg_sq, bc1, rect, adapt, h,
            _table.nonzero(l2_weight_decay), maximize, grad_scale, found_inf)  # fmt: skip
