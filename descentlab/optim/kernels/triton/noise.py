"""GradientNoise's noise in one pass: the noisy gradients g + sigma_t z of ``optim/noise.py``.

The readable path draws ``torch.randn(p.shape)`` per parameter from the wrapper's generator.
The device path draws once, ``z = torch.randn(total)`` over all the gradients' values from the
same generator, and :func:`noise_add` writes ``z * std + g`` into that buffer in one pass;
:func:`noise_views` cuts it into the noisy gradients (views, no copy). One draw of ``total``
values is not the same stream as per-tensor draws in general: on CPU it is exactly the same when
every tensor's size is a multiple of 16 (torch fills normals 16 at a time; checked for float16,
bfloat16, float32 and float64 with torch 2.13, tested through GradientNoise), on CUDA the
Philox offset advances per call by a rounded amount and the element-to-counter mapping depends
on the launch's grid, so they are expected to differ (not checked on a GPU here). The device
path is therefore tested exactly against its own definition (the flat draw), exactly against
the readable path on CPU where the streams agree, and in distribution.
"""

import torch
import triton
import triton.language as tl

from . import _jit as j
from . import _table
from .ops import register

__all__ = ["noise_add", "noise_views"]


@triton.jit
def _noise_kernel(
    TABLE, WT, WS, WE, H, GRAD_SCALE, FOUND_INF, NOISE, OFFSET,
    L: tl.constexpr, HAS_SCALE: tl.constexpr, HAS_INF: tl.constexpr, DT: tl.constexpr,
    CT: tl.constexpr, FULL: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    t, start, end, row = j.item(TABLE, WT, WS, WE, FOUND_INF, L, HAS_INF, FULL, BLOCK)
    G = j.address(row, 0, DT, FULL)
    Z = NOISE + tl.load(OFFSET + t)
    std = tl.load(H).to(CT)
    for off in range(start, end, BLOCK):
        i = off + tl.arange(0, BLOCK)
        mask = j.mask(i, end, FULL)
        z = (tl.load(Z + i, mask=mask).to(CT) * std).to(DT)  # rounded as the readable mul_
        g = tl.load(G + i, mask=mask).to(CT)
        tl.store(Z + i, (z.to(CT) + g).to(DT), mask=mask)  # (1): g + N(0, sigma_t^2)


def _launch(noise: torch.Tensor, grads: list[torch.Tensor], hyper: torch.Tensor) -> None:
    w = _table.work(grads)
    if noise.shape != (w.total,) or noise.dtype != grads[0].dtype:
        raise ValueError("descentlab Triton kernels: noise must be a flat buffer of all the "
                         "gradients' values, of their dtype")  # fmt: skip
    _table.run(_noise_kernel, [grads], hyper, None, None, noise, w.offset)


_op = register("noise_add", _launch, ("noise",))


def noise_add(*, noise: torch.Tensor, grads: list[torch.Tensor], std: float | torch.Tensor) -> None:
    """Overwrite the flat standard-normal buffer ``noise`` with ``noise * std + g`` for the
    concatenated gradients ``grads`` (one pass: one or two launches)."""
    if grads:
        _op(noise, grads, _table.hyper([std], grads[0].device))


def noise_views(noise: torch.Tensor, grads: list[torch.Tensor]) -> list[torch.Tensor]:
    """The noisy gradients: views of the flat buffer, shaped like ``grads``."""
    sizes = [g.numel() for g in grads]
    return [z.view(g.shape) for z, g in zip(noise.split(sizes), grads)]
