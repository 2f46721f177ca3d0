"""Lookahead's synchronisation in one pass: equation (2) of ``optim/lookahead.py``."""

import torch
import triton
import triton.language as tl

from . import _jit as j
from . import _table
from .ops import register

__all__ = ["lookahead_sync"]


@triton.jit
def _lookahead_kernel(
    TABLE, WT, WS, WE, H, GRAD_SCALE, FOUND_INF,
    L: tl.constexpr, HAS_SCALE: tl.constexpr, HAS_INF: tl.constexpr, DT: tl.constexpr,
    CT: tl.constexpr, FULL: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    _, start, end, row = j.item(TABLE, WT, WS, WE, FOUND_INF, L, HAS_INF, FULL, BLOCK)
    SLOW, FAST = j.address(row, 0, DT, FULL), j.address(row, 1, DT, FULL)
    alpha = tl.load(H).to(CT)
    for off in range(start, end, BLOCK):
        i = off + tl.arange(0, BLOCK)
        mask = j.mask(i, end, FULL)
        s = j.lerp(tl.load(SLOW + i, mask=mask).to(CT), tl.load(FAST + i, mask=mask).to(CT), alpha)
        s = s.to(DT)  # (2): phi += alpha (theta - phi); theta = phi
        tl.store(SLOW + i, s, mask=mask)
        tl.store(FAST + i, s, mask=mask)


def _launch(
    slow: list[torch.Tensor],
    fast: list[torch.Tensor],
    hyper: torch.Tensor,
    found_inf: torch.Tensor | None,
) -> None:
    _table.run(_lookahead_kernel, [slow, fast], hyper, None, found_inf)


_op = register("lookahead_sync", _launch, ("slow", "fast"))


def lookahead_sync(
    *,
    slow: list[torch.Tensor],
    fast: list[torch.Tensor],
    alpha: float | torch.Tensor,
    found_inf: torch.Tensor | None = None,
) -> None:
    """Lookahead's slow-weight update and reset over lists of tensors, one pass."""
    if slow:
        _op(slow, fast, _table.hyper([alpha], slow[0].device), found_inf)
