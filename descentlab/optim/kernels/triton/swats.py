"""SWATS on the device: both phases in one kernel, the switch test (3)-(4) in a second one.

Equations (1)-(4) of ``optim/swats.py``. A step is two passes (three launches at most) and
reads no value on the host:

1. ``_swats_kernel`` (whole blocks and tails in a launch each): each work item reads its
   tensor's phase flag (``switch_step``, 0 in the Adam phase) and takes the Adam step (1)-(2),
   writing its float64 partial dot products p_k.g_k and p_k.p_k into its slot, or the
   SGD-phase step v = b1 v + g, p -= (1 - b1) Lambda (lr / lr_s) v (partials 0);
2. ``_swats_switch_kernel``: one program per tensor sums its items' partials in slot order
   (deterministic: no atomics) and, for a tensor in the Adam phase, updates lambda (3) and
   tests the switch (4), writing ``lam``, ``switch_step``, ``sgd_lr`` and ``switch_lr``.

The readable path zeroes the momentum buffer at the switch; here the first SGD-phase step
(``step == switch_step + 1``) takes b_1 = g instead, which is the same and needs no extra pass.
"""

import torch
import triton
import triton.language as tl

from . import _jit as j
from . import _table
from .ops import register

__all__ = ["swats", "swats_adam"]

_RBLOCK = 256  # partials summed per vector step of the switch kernel


@triton.jit
def _swats_kernel(
    TABLE, WT, WS, WE, H, GRAD_SCALE, FOUND_INF, COEF, STEPS, PARTIAL, SLOT,
    L2: tl.constexpr, PHASED: tl.constexpr, MAXIMIZE: tl.constexpr,
    L: tl.constexpr, HAS_SCALE: tl.constexpr, HAS_INF: tl.constexpr, DT: tl.constexpr,
    CT: tl.constexpr, FULL: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    t, start, end, row = j.item(TABLE, WT, WS, WE, FOUND_INF, L, HAS_INF, FULL, BLOCK)
    P, G, M = j.address(row, 0, DT, FULL), j.address(row, 1, DT, FULL), j.address(row, 2, DT, FULL)
    A, B = j.address(row, 3, DT, FULL), j.address(row, 4, DT, FULL)
    lr, b1, b2 = tl.load(H), tl.load(H + 1), tl.load(H + 2)
    w1, beta1 = (1.0 - b1).to(CT), b1.to(CT)
    beta2, one_b2 = b2.to(CT), (1.0 - b2).to(CT)
    e, wd = tl.load(H + 3).to(CT), j.hyper(H, 4, L2, CT)
    scale = j.load_scale(GRAD_SCALE, HAS_SCALE, CT)
    pg = tl.zeros((BLOCK,), tl.float64)
    pp = tl.zeros((BLOCK,), tl.float64)
    switch_step = tl.full((), 0.0, tl.float64)
    if PHASED:
        switch_step = tl.load(j.address(row, 5, tl.float64, False))
    if switch_step != 0:  # SGD phase
        sgd_lr = tl.load(j.address(row, 7, tl.float64, False))
        switch_lr = tl.load(j.address(row, 8, tl.float64, False))
        neg_rate = (-(1.0 - b1) * sgd_lr * lr / switch_lr).to(CT)
        later = tl.load(STEPS + t) != switch_step + 1  # the buffer restarts after the switch
        for off in range(start, end, BLOCK):
            i = off + tl.arange(0, BLOCK)
            mask = j.mask(i, end, FULL)
            p = tl.load(P + i, mask=mask).to(CT)
            g = j.grad(G, i, mask, p, wd, scale, MAXIMIZE, HAS_SCALE, L2, CT)
            b = tl.load(B + i, mask=mask)  # (not used at b_1 = g_1).to(CT)
            buf = tl.where(later, b * beta1 + g, g)
            tl.store(B + i, buf.to(DT), mask=mask)
            tl.store(P + i, (p + neg_rate * buf).to(DT), mask=mask)
    else:  # Adam phase
        c = tl.load(COEF + t).to(CT)
        for off in range(start, end, BLOCK):
            i = off + tl.arange(0, BLOCK)
            mask = j.mask(i, end, FULL)
            p = tl.load(P + i, mask=mask).to(CT)
            g = j.grad(G, i, mask, p, wd, scale, MAXIMIZE, HAS_SCALE, L2, CT)
            m = j.lerp(tl.load(M + i, mask=mask).to(CT), g, w1)  # (1)
            a = tl.load(A + i, mask=mask).to(CT) * beta2 + one_b2 * g * g
            tl.store(M + i, m.to(DT), mask=mask)
            tl.store(A + i, a.to(DT), mask=mask)
            # (2): the step is rounded to the parameter dtype, as the readable path stores it
            step = (j.div(m, j.sqrt(a) + e) * c).to(DT)
            tl.store(P + i, (p + step.to(CT)).to(DT), mask=mask)
            s64, g64 = step.to(tl.float64), g.to(DT).to(tl.float64)
            pg += j.masked(s64 * g64, mask, FULL)  # (3): this item's share of p_k.g_k,
            pp += j.masked(s64 * s64, mask, FULL)  # and of p_k.p_k
    slot = tl.load(SLOT + tl.program_id(0))  # the item's place among its tensor's
    tl.store(PARTIAL + 2 * slot, tl.sum(pg, axis=0))
    tl.store(PARTIAL + 2 * slot + 1, tl.sum(pp, axis=0))


@triton.jit
def _swats_switch_kernel(
    TABLE, FIRST, PARTIAL, DOTS, H, FOUND_INF, BC2, STEPS,
    PHASED: tl.constexpr, L: tl.constexpr, HAS_INF: tl.constexpr, RBLOCK: tl.constexpr,
):  # fmt: skip
    t = tl.program_id(0)
    lo, hi = tl.load(FIRST + t), tl.load(FIRST + t + 1)
    pg = tl.zeros((RBLOCK,), tl.float64)
    pp = tl.zeros((RBLOCK,), tl.float64)
    for off in range(lo, hi, RBLOCK):  # the tensor's chunks, in order: a fixed summation order
        k = off + tl.arange(0, RBLOCK)
        mask = k < hi
        pg += tl.load(PARTIAL + 2 * k, mask=mask, other=0.0)
        pp += tl.load(PARTIAL + 2 * k + 1, mask=mask, other=0.0)
    dot_pg, dot_pp = tl.sum(pg, axis=0), tl.sum(pp, axis=0)
    tl.store(DOTS + 2 * t, dot_pg)
    tl.store(DOTS + 2 * t + 1, dot_pp)
    if PHASED:
        row = TABLE + t * L
        SWITCH, LAM = j.address(row, 5, tl.float64, False), j.address(row, 6, tl.float64, False)
        SGD_LR, SWITCH_LR = (
            j.address(row, 7, tl.float64, False),
            j.address(row, 8, tl.float64, False),
        )
        lr, b2, tol = tl.load(H), tl.load(H + 2), tl.load(H + 5)
        switch_step, lam = tl.load(SWITCH), tl.load(LAM)
        k_step = tl.load(STEPS + t)
        adam = (switch_step == 0) & (dot_pg != 0)
        if HAS_INF:  # GradScaler found an inf: nothing changes
            adam = adam & (tl.load(FOUND_INF) == 0)
        gamma = dot_pp / -tl.where(dot_pg != 0, dot_pg, 1.0)  # (3)
        new_lam = b2 * lam + (1.0 - b2) * gamma
        estimate = new_lam / tl.load(BC2 + t)
        switch = adam & (k_step > 1) & (tl.abs(estimate - gamma) < tol)  # (4)
        tl.store(LAM, tl.where(adam, new_lam, lam))
        tl.store(SWITCH, tl.where(switch, k_step, switch_step))
        tl.store(SGD_LR, tl.where(switch, estimate, tl.load(SGD_LR)))
        tl.store(SWITCH_LR, tl.where(switch, lr, tl.load(SWITCH_LR)))


def _run(lists, scalar_lists, coef, bc2, steps, hyper, l2, maximize, grad_scale, found_inf):
    params = lists[0]
    n = len(params)
    w = _table.work(params)
    partial = torch.empty((w.items, 2), dtype=torch.float64, device=params[0].device)
    _table.run(
        _swats_kernel,
        lists,
        hyper,
        grad_scale,
        found_inf,
        _table.scalars(coef, n, "coef"),
        steps,
        partial,
        scalar_lists=scalar_lists,
        slots=True,
        L2=l2,
        PHASED=bool(scalar_lists),
        MAXIMIZE=maximize,
    )
    dots = torch.empty((n, 2), dtype=torch.float64, device=params[0].device)
    _table.launch(
        _swats_switch_kernel,
        (n,),
        _table.pointers(lists, scalar_lists).addresses,
        w.first,
        partial,
        dots,
        hyper,
        hyper if found_inf is None else found_inf,
        bc2,
        steps,
        PHASED=bool(scalar_lists),
        L=len(lists) + len(scalar_lists),
        HAS_INF=found_inf is not None,
        RBLOCK=_RBLOCK,
    )
    return dots


def _swats_adam(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    exp_avg: list[torch.Tensor],
    exp_avg_sq: list[torch.Tensor],
    coef: torch.Tensor,
    hyper: torch.Tensor,
    l2: bool,
    maximize: bool,
    grad_scale: torch.Tensor | None,
    found_inf: torch.Tensor | None,
) -> torch.Tensor:
    lists = [params, grads, exp_avg, exp_avg_sq, []]
    return _run(lists, (), coef, coef, coef, hyper, l2, maximize, grad_scale, found_inf)


def _swats(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    exp_avg: list[torch.Tensor],
    exp_avg_sq: list[torch.Tensor],
    momentum_buffer: list[torch.Tensor],
    switch_step: list[torch.Tensor],
    lam: list[torch.Tensor],
    sgd_lr: list[torch.Tensor],
    switch_lr: list[torch.Tensor],
    coef: torch.Tensor,
    bc2: torch.Tensor,
    steps: torch.Tensor,
    hyper: torch.Tensor,
    l2: bool,
    maximize: bool,
    grad_scale: torch.Tensor | None,
    found_inf: torch.Tensor | None,
) -> torch.Tensor:
    n = len(params)
    lists = [params, grads, exp_avg, exp_avg_sq, momentum_buffer]
    scalar_lists = [switch_step, lam, sgd_lr, switch_lr]
    bc2, steps = _table.scalars(bc2, n, "bc2"), _table.scalars(steps, n, "steps")
    return _run(lists, scalar_lists, coef, bc2, steps, hyper, l2, maximize, grad_scale, found_inf)


def _dots_like(params, *args) -> torch.Tensor:
    return params[0].new_empty((len(params), 2), dtype=torch.float64)


_adam_op = register(
    "swats_adam", _swats_adam, ("params", "grads", "exp_avg", "exp_avg_sq"), _dots_like
)
_op = register(
    "swats",
    _swats,
    ("params", "grads", "exp_avg", "exp_avg_sq", "momentum_buffer", "switch_step", "lam", "sgd_lr",
     "switch_lr"),
    _dots_like,
)  # fmt: skip


def swats_adam(
    *,
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    exp_avg: list[torch.Tensor],
    exp_avg_sq: list[torch.Tensor],
    coef: torch.Tensor,
    beta1: float | torch.Tensor,
    beta2: float | torch.Tensor,
    eps: float | torch.Tensor,
    l2_weight_decay: float | torch.Tensor,
    maximize: bool,
    grad_scale: torch.Tensor | None = None,
    found_inf: torch.Tensor | None = None,
) -> torch.Tensor:
    """SWATS's Adam phase (1)-(2) over lists of tensors, as the C++ kernel: per tensor ``coef =
    -lr sqrt(1 - beta2^t) / (1 - beta1^t)``. Returns the float64 ``[n, 2]`` device tensor of
    each tensor's p_k.g_k and p_k.p_k (summed in a fixed order)."""
    if not params:
        return torch.zeros((0, 2), dtype=torch.float64)
    h = _table.hyper([0.0, beta1, beta2, eps, l2_weight_decay, 0.0], params[0].device)
    return _adam_op(params, grads, exp_avg, exp_avg_sq, coef, h,
                    _table.nonzero(l2_weight_decay), maximize, grad_scale, found_inf)  # fmt: skip


def swats(
    *,
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    exp_avg: list[torch.Tensor],
    exp_avg_sq: list[torch.Tensor],
    momentum_buffer: list[torch.Tensor],
    switch_step: list[torch.Tensor],
    lam: list[torch.Tensor],
    sgd_lr: list[torch.Tensor],
    switch_lr: list[torch.Tensor],
    coef: torch.Tensor,
    bc2: torch.Tensor,
    steps: torch.Tensor,
    lr: float | torch.Tensor,
    beta1: float | torch.Tensor,
    beta2: float | torch.Tensor,
    eps: float | torch.Tensor,
    l2_weight_decay: float | torch.Tensor,
    switch_tol: float | torch.Tensor,
    maximize: bool,
    grad_scale: torch.Tensor | None = None,
    found_inf: torch.Tensor | None = None,
) -> torch.Tensor:
    """One SWATS step, both phases and the switch, over lists of tensors (two passes).

    State per tensor, each a 0-d float64 device tensor: ``switch_step`` (0 in the Adam phase,
    else the step of the switch), ``lam`` (lambda of (3)), ``sgd_lr`` (Lambda), ``switch_lr``
    (the lr at the switch). Per tensor (float64 vectors): ``coef`` as for :func:`swats_adam`,
    ``bc2 = 1 - beta2^t`` and ``steps`` (t, this step's count). Returns the dot products
    (zeros for tensors in the SGD phase).
    """
    if not params:
        return torch.zeros((0, 2), dtype=torch.float64)
    h = _table.hyper([lr, beta1, beta2, eps, l2_weight_decay, switch_tol], params[0].device)
    return _op(params, grads, exp_avg, exp_avg_sq, momentum_buffer, switch_step, lam, sgd_lr,
               switch_lr, coef, bc2, steps, h, _table.nonzero(l2_weight_decay), maximize,
               grad_scale, found_inf)  # fmt: skip
