"""Device helpers shared by the Triton kernels: the work item, addresses, the gradient, rounding.

float32 division and square root are the correctly rounded ones (``div_rn``, ``sqrt_rn``), as
torch's CUDA kernels and the C++ CPU kernels compute them (Triton's defaults are approximate).
"""

import triton
import triton.language as tl

# The interpreter re-patches triton.language for every call of a jit function (about 7 ms per
# call: most of an interpreted step); there the helpers are plain functions, which it runs
# with the kernel's patched triton.language. Compiled, they are jit functions as usual.
device = (lambda fn: fn) if triton.knobs.runtime.interpret else triton.jit


@device
def item(TABLE, WT, WS, WE, FOUND_INF, L: tl.constexpr, HAS_INF: tl.constexpr,
         FULL: tl.constexpr, BLOCK: tl.constexpr):  # fmt: skip
    """This program's work item: its tensor, element range (empty on inf) and address row.
    ``FULL``: the range is whole blocks (its ends multiples of ``BLOCK``)."""
    w = tl.program_id(0)
    t = tl.load(WT + w)
    start = tl.load(WS + w)
    end = tl.load(WE + w)
    if FULL:
        start = tl.multiple_of(start, BLOCK)
        end = tl.multiple_of(end, BLOCK)
    if HAS_INF:  # GradScaler found an inf: change nothing (a loop that runs zero times)
        end = tl.where(tl.load(FOUND_INF) != 0, start, end)
    return t, start, end, TABLE + t * L


@device
def address(row, k: tl.constexpr, DT: tl.constexpr, FULL: tl.constexpr):
    """The address of the tensor of list ``k`` in a table row, as a pointer to ``DT``
    (``FULL``: 16-byte aligned, which the table checked)."""
    ptr = tl.load(row + k).to(tl.pointer_type(DT))
    if FULL:
        ptr = tl.multiple_of(ptr, 16)
    return ptr


@device
def mask(i, end, FULL: tl.constexpr):
    """The elements of ``i`` before ``end``; ``None`` (no mask) for whole blocks."""
    if FULL:
        return None
    else:
        return i < end


@device
def masked(x, mask, FULL: tl.constexpr):
    """``x`` where ``mask`` holds, else 0 (for sums over a block)."""
    if FULL:
        return x
    else:
        return tl.where(mask, x, 0.0)


@device
def hyper(H, k: tl.constexpr, USED: tl.constexpr, CT: tl.constexpr):
    """Hyperparameter ``k`` in compute precision (0 when the kernel does not use it)."""
    if USED:
        return tl.load(H + k).to(CT)
    else:
        return tl.full((), 0.0, CT)


@device
def sqrt(x):
    if x.dtype == tl.float32:
        return tl.sqrt_rn(x)
    else:
        return tl.sqrt(x)


@device
def div(a, b):
    if a.dtype == tl.float32:
        return tl.div_rn(a, b)
    else:
        return a / b


@device
def lerp(a, b, w):
    """torch's lerp: a + w (b - a) for |w| < 0.5, else b - (b - a)(1 - w) (a scalar w)."""
    if tl.abs(w) < 0.5:  # noqa: SIM108 - a branch on a scalar, which Triton compiles
        r = a + w * (b - a)
    else:
        r = b - (b - a) * (1 - w)
    return r


@device
def grad(
    G,
    i,
    mask,
    p,
    wd,
    scale,
    MAXIMIZE: tl.constexpr,
    HAS_SCALE: tl.constexpr,
    L2: tl.constexpr,
    CT: tl.constexpr,
):
    """The gradient in compute precision: unscaled (GradScaler), negated (maximize), + wd p (L2).
    Unscaled, it is also stored back, as torch's fused kernels and the C++ kernels leave
    ``p.grad`` after a GradScaler step (the operators declare ``grads`` mutated)."""
    g = tl.load(G + i, mask=mask).to(CT)
    if HAS_SCALE:
        g = div(g, scale)
        tl.store(G + i, g.to(G.dtype.element_ty), mask=mask)
    if MAXIMIZE:
        g = -g
    if L2:
        g = g + wd * p
    return g


@device
def load_scale(GRAD_SCALE, HAS_SCALE: tl.constexpr, CT: tl.constexpr):
    if HAS_SCALE:
        return tl.load(GRAD_SCALE).to(CT)
    else:
        return tl.full((), 1.0, CT)
