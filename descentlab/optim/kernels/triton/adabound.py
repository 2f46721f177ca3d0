"""AdaBound and AMSBound in one pass: equations (1) and (4) of ``optim/adabound.py`` (the
bounds (2)-(3) are scalar)."""

import torch
import triton
import triton.language as tl

from . import _jit as j
from . import _table
from .ops import register

__all__ = ["adabound"]


@triton.jit
def _adabound_kernel(
    TABLE, WT, WS, WE, H, GRAD_SCALE, FOUND_INF, STEP_SIZE, LOWER, UPPER,
    L2: tl.constexpr, AMSBOUND: tl.constexpr, MAXIMIZE: tl.constexpr,
    L: tl.constexpr, HAS_SCALE: tl.constexpr, HAS_INF: tl.constexpr, DT: tl.constexpr,
    CT: tl.constexpr, FULL: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    t, start, end, row = j.item(TABLE, WT, WS, WE, FOUND_INF, L, HAS_INF, FULL, BLOCK)
    P, G, M = j.address(row, 0, DT, FULL), j.address(row, 1, DT, FULL), j.address(row, 2, DT, FULL)
    V = j.address(row, 3, DT, FULL)
    if AMSBOUND:
        VM = j.address(row, 4, DT, FULL)
    b1, b2 = tl.load(H), tl.load(H + 1)
    beta1, one_b1, beta2, one_b2 = b1.to(CT), (1.0 - b1).to(CT), b2.to(CT), (1.0 - b2).to(CT)
    e, wd = tl.load(H + 2).to(CT), j.hyper(H, 3, L2, CT)
    s, lo = tl.load(STEP_SIZE + t).to(CT), tl.load(LOWER + t).to(CT)
    hi = tl.load(UPPER + t).to(CT)
    scale = j.load_scale(GRAD_SCALE, HAS_SCALE, CT)
    for off in range(start, end, BLOCK):
        i = off + tl.arange(0, BLOCK)
        mask = j.mask(i, end, FULL)
        p = tl.load(P + i, mask=mask).to(CT)
        g = j.grad(G, i, mask, p, wd, scale, MAXIMIZE, HAS_SCALE, L2, CT)
        m = tl.load(M + i, mask=mask).to(CT) * beta1 + one_b1 * g  # (1)
        v = tl.load(V + i, mask=mask).to(CT) * beta2 + one_b2 * g * g
        tl.store(M + i, m.to(DT), mask=mask)
        tl.store(V + i, v.to(DT), mask=mask)
        if AMSBOUND:
            vm = tl.load(VM + i, mask=mask).to(CT)
            v = tl.where((v != v) | (v > vm), v, vm)  # torch.maximum: NaN wins
            tl.store(VM + i, v.to(DT), mask=mask)
        eta = j.div(s, j.sqrt(v) + e)
        eta = tl.where(eta != eta, eta, tl.minimum(tl.maximum(eta, lo), hi))  # clamp, NaN stays
        tl.store(P + i, (p - eta * m).to(DT), mask=mask)  # (4)


def _launch(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    exp_avg: list[torch.Tensor],
    exp_avg_sq: list[torch.Tensor],
    max_exp_avg_sq: list[torch.Tensor],
    step_size: torch.Tensor,
    lower: torch.Tensor,
    upper: torch.Tensor,
    hyper: torch.Tensor,
    l2: bool,
    maximize: bool,
    grad_scale: torch.Tensor | None,
    found_inf: torch.Tensor | None,
) -> None:
    n = len(params)
    scalars = ((step_size, "step_size"), (lower, "lower"), (upper, "upper"))
    _table.run(
        _adabound_kernel,
        [params, grads, exp_avg, exp_avg_sq, max_exp_avg_sq],
        hyper,
        grad_scale,
        found_inf,
        *(_table.scalars(x, n, w) for x, w in scalars),
        L2=l2,
        AMSBOUND=bool(max_exp_avg_sq),
        MAXIMIZE=maximize,
    )


_op = register("adabound", _launch, ("params", "grads", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"))


def adabound(
    *,
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    exp_avg: list[torch.Tensor],
    exp_avg_sq: list[torch.Tensor],
    max_exp_avg_sq: list[torch.Tensor],
    step_size: torch.Tensor,
    lower: torch.Tensor,
    upper: torch.Tensor,
    beta1: float | torch.Tensor,
    beta2: float | torch.Tensor,
    eps: float | torch.Tensor,
    l2_weight_decay: float | torch.Tensor,
    maximize: bool,
    grad_scale: torch.Tensor | None = None,
    found_inf: torch.Tensor | None = None,
) -> None:
    """AdaBound over lists of tensors (``max_exp_avg_sq`` non-empty: AMSBound). Per tensor:
    ``step_size``, ``lower``, ``upper`` of ``AdaBound.bounds`` at its step."""
    if params:
        h = _table.hyper([beta1, beta2, eps, l2_weight_decay], params[0].device)
        _op(params, grads, exp_avg, exp_avg_sq, max_exp_avg_sq, step_size, lower, upper, h,
            _table.nonzero(l2_weight_decay), maximize, grad_scale, found_inf)  # fmt: skip
