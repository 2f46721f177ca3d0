"""The host side of the multi-tensor kernels: the work table, the scalars, the launch counter.

A launch covers every tensor of a call, as torch's ``multi_tensor_apply`` does: the kernels
take an int64 table of tensor addresses (one row per tensor, one column per tensor list) and a
work list of (tensor, first element, end) items of up to ``CHUNK`` elements each; program ``w``
of the grid updates work item ``w``. Each tensor's whole ``BLOCK``s are one kind of item and
its last partial block (if any) another: where every address of a call is 16-byte aligned,
the whole blocks go in one launch that Triton compiles without masks and with alignment hints
(``FULL``: 128-bit vector loads and stores; masked loads with unknown ends compile to 32-bit
ones) and the tails in a second, masked one; otherwise one masked launch takes all items.
Both tables are built once per list of tensors and cached:

* :func:`pointers` keys the address table on the tensors' ``data_ptr`` tuple (one C-level
  ``map`` per step; the tensors are checked only when the table is built);
* :func:`work` keys the work list on the parameters' sizes;

so a step with cached tables does no per-tensor host work and no host-to-device copy. A new
gradient list (``zero_grad(set_to_none=True)`` may hand out other addresses) costs one small
copy of the address table, not a sync.

The global hyperparameters go to a kernel as one float64 vector (:func:`hyper`): Triton would
pass a Python float as a float32 scalar (too coarse for float64 parameters), and a 0-d tensor
(a scheduler's ``lr``) must be read on the device. A vector of Python floats is cached by value,
so a constant one costs nothing per step; tensors are stacked in (one small launch, no sync).
"""

from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from operator import methodcaller

import torch
import triton
import triton.language as tl

__all__ = [
    "BLOCK",
    "CHUNK",
    "LAUNCHES",
    "Items",
    "Table",
    "Work",
    "compute_type",
    "configure",
    "element_type",
    "hyper",
    "launch",
    "nonzero",
    "pointers",
    "run",
    "scalars",
    "work",
]

# Elements per work item and per vector step of a program (a program loops over its chunk).
# A 16K chunk gives 16K programs for 2^28 values and one program per small tensor; not tuned
# on a GPU yet (benchmarks/gpu.py --chunk/--block set them). Compiled for sm_90, the FULL
# launches load and store 128 bits at a time (tests/optim/test_triton.py reads the PTX).
CHUNK = 1 << 14
BLOCK = 1024
NUM_WARPS = 4
_CACHE_SIZE = 256  # tables kept per kind (functionalized compiled calls copy the tensors)

LAUNCHES: Counter[str] = Counter()  # Triton launches by kernel name, counted by launch()

_ELEMENT = {
    torch.float16: tl.float16,
    torch.bfloat16: tl.bfloat16,
    torch.float32: tl.float32,
    torch.float64: tl.float64,
}
_data_ptr = methodcaller("data_ptr")
_numel = methodcaller("numel")


def configure(*, chunk: int | None = None, block: int | None = None) -> tuple[int, int]:
    """Set the chunk and block sizes (powers of two, chunk a multiple of block); return the old
    ones. The work tables are keyed on the chunk, so a change takes effect at the next call."""
    global CHUNK, BLOCK
    old = (CHUNK, BLOCK)
    chunk, block = chunk or CHUNK, block or BLOCK
    if block & (block - 1) or chunk % block:
        raise ValueError(f"block {block} must be a power of two dividing chunk {chunk}")
    CHUNK, BLOCK = chunk, block
    return old


def element_type(dtype: torch.dtype) -> tl.dtype:
    """The Triton type of a parameter dtype the kernels take."""
    try:
        return _ELEMENT[dtype]
    except KeyError:
        raise TypeError(f"descentlab Triton kernels: unsupported dtype {dtype}") from None


def compute_type(dtype: torch.dtype) -> tl.dtype:
    """torch's opmath type: float64 for float64 parameters, else float32."""
    return tl.float64 if dtype is torch.float64 else tl.float32


class _LRU(OrderedDict):
    def get_or(self, key, build):
        value = self.get(key)
        if value is None:
            value = self[key] = build()
            if len(self) > _CACHE_SIZE:
                self.popitem(last=False)
        else:
            self.move_to_end(key)
        return value


_pointers = _LRU()
_works = _LRU()
_hypers = _LRU()


def _to_device(values: list, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    host = torch.tensor(values, dtype=dtype)
    if device.type == "cpu":
        return host
    return host.pin_memory().to(device, non_blocking=True)  # no sync; pinned memory is kept alive


@dataclass(frozen=True, eq=False)
class Table:
    """The address table of a call, and whether the whole blocks may take aligned accesses."""

    addresses: torch.Tensor  # int64 [n, lists]
    aligned: bool  # every address of ``lists`` is a multiple of 16 bytes


def pointers(
    lists: Sequence[Sequence[torch.Tensor]], scalar_lists: Sequence[Sequence[torch.Tensor]] = ()
) -> Table:
    """The int64 address table ``[n, lists]``: row ``t`` holds the addresses of tensor ``t`` of
    each of ``lists`` then ``scalar_lists`` (one load of a row's entry per list in a kernel).

    ``lists[0]`` are the parameters; every other non-empty list must hold contiguous tensors of
    their device, dtype and sizes (an empty list gives a row of zeros that its kernel does not
    read); ``scalar_lists`` hold one 0-d float64 tensor per parameter (SWATS's switch state).
    """
    params = lists[0]
    everything = (*lists, *scalar_lists)
    flat = tuple(map(_data_ptr, chain.from_iterable(everything)))

    def build() -> torch.Tensor:
        n, device, dtype = len(params), params[0].device, params[0].dtype
        for tensors in everything:
            if tensors and len(tensors) != n:
                raise ValueError(
                    f"descentlab Triton kernels: a list of {len(tensors)} tensors, expected {n}"
                )
        for tensors in lists:
            for x, p in zip(tensors, params):
                if not (
                    x.device == device
                    and x.dtype == dtype
                    and x.is_contiguous()
                    and x.numel() == p.numel()
                ):
                    raise ValueError(
                        "descentlab Triton kernels: tensors must be contiguous, of one device "
                        f"and dtype ({device}, {dtype}) and sized like their parameter; got "
                        f"{x.device}, {x.dtype}, {x.numel()} values for {p.numel()}"
                    )
        for tensors in scalar_lists:
            for x in tensors:
                if not (x.device == device and x.dtype == torch.float64 and x.numel() == 1):
                    raise ValueError(
                        f"descentlab Triton kernels: state scalars must be float64 one-value "
                        f"tensors on {device}; got {x.dtype} of shape {tuple(x.shape)}"
                    )
        columns = [list(map(_data_ptr, x)) if x else [0] * n for x in everything]
        aligned = all(a % 16 == 0 for x in lists for a in map(_data_ptr, x))
        return Table(_to_device(list(zip(*columns)), torch.int64, device), aligned)

    return _pointers.get_or((tuple(map(len, everything)), flat), build)


@dataclass(frozen=True, eq=False)
class Items:
    """The work items of one launch (int64 device tensors, one value per item)."""

    tensor: torch.Tensor  # the item's tensor
    start: torch.Tensor  # its first element
    end: torch.Tensor  # one past its last element
    slot: torch.Tensor  # its position in the tensor-major order of all items (SWATS's partials)
    count: int


@dataclass(frozen=True, eq=False)
class Work:
    """The work list of one list of tensors: every item, and the whole-block and tail ones."""

    every: Items  # all items (one masked launch)
    full: Items  # whole BLOCKs, up to CHUNK elements an item (no masks)
    tail: Items  # each tensor's last partial block
    first: torch.Tensor  # [n + 1]: each tensor's first slot (its items' slots are consecutive)
    offset: torch.Tensor  # [n]: where each tensor starts in the concatenation of all of them
    items: int
    chunk: int
    block: int
    total: int  # the sum of the sizes


def work(params: Sequence[torch.Tensor]) -> Work:
    """The work list of ``params`` for the current ``CHUNK`` and ``BLOCK``."""
    sizes = tuple(map(_numel, params))
    device, chunk, block = params[0].device, CHUNK, min(BLOCK, CHUNK)

    def items(rows: list[tuple[int, int, int, int]]) -> Items:
        columns = list(zip(*rows)) if rows else [(), (), (), ()]
        return Items(*(_to_device(list(c), torch.int64, device) for c in columns), len(rows))

    def build() -> Work:
        every, full, tail, first, offset, total = [], [], [], [0], [], 0
        for t, n in enumerate(sizes):
            whole = n - n % block
            for s in range(0, whole, chunk):
                full.append((t, s, min(s + chunk, whole), len(every)))
                every.append(full[-1])
            if whole < n:
                tail.append((t, whole, n, len(every)))
                every.append(tail[-1])
            first.append(len(every))
            offset.append(total)
            total += n
        return Work(
            items(every),
            items(full),
            items(tail),
            *(_to_device(x, torch.int64, device) for x in (first, offset)),
            items=len(every),
            chunk=chunk,
            block=block,
            total=total,
        )

    return _works.get_or((device, chunk, block, sizes), build)


def hyper(values: Sequence[float | torch.Tensor], device: torch.device) -> torch.Tensor:
    """The float64 vector of a call's global hyperparameters, on ``device``.

    Python floats are cached by value (a constant vector costs nothing per step); 0-d tensors
    are converted and stacked on the device (no ``item()``, no sync).
    """
    if torch.compiler.is_compiling():  # traced: constants and tensor ops, no global cache
        return torch.stack([_scalar(v, device) for v in values])
    if not any(map(torch.is_tensor, values)):
        key = (device, tuple(map(float, values)))
        return _hypers.get_or(key, lambda: _to_device(list(key[1]), torch.float64, device))
    return torch.stack(
        [
            _scalar(v, device)
            if torch.is_tensor(v)
            else _hypers.get_or((device, float(v)), lambda v=v: _scalar(v, device))
            for v in values
        ]
    )


def _scalar(v: float | torch.Tensor, device: torch.device) -> torch.Tensor:
    if torch.is_tensor(v):
        return v.detach().reshape(()).to(device=device, dtype=torch.float64)
    return torch.tensor(float(v), dtype=torch.float64, device=device)


def scalars(values: torch.Tensor, n: int, what: str) -> torch.Tensor:
    """Check a per-tensor scalar vector: 1-D float64 of length ``n`` (no device read)."""
    if values.dtype is not torch.float64 or values.shape != (n,):
        raise ValueError(
            f"descentlab Triton kernels: {what} must be a float64 vector of "
            f"{n} values; got {values.dtype} of shape {tuple(values.shape)}"
        )
    return values.contiguous()


def nonzero(x: float | torch.Tensor) -> bool:
    """Whether a hyperparameter may be nonzero (a tensor may: its value is not read)."""
    return torch.is_tensor(x) or x != 0


def run(
    kernel: triton.JITFunction,
    lists: Sequence[Sequence[torch.Tensor]],
    hyperparameters: torch.Tensor,
    grad_scale: torch.Tensor | None,
    found_inf: torch.Tensor | None,
    *args,
    scalar_lists: Sequence[Sequence[torch.Tensor]] = (),
    slots: bool = False,
    **flags,
) -> Work:
    """Launch an elementwise multi-tensor kernel over every work item of ``lists[0]``: the whole
    blocks unmasked and the tails masked where the call's addresses are aligned, else all items
    masked (see the module's docstring).

    The kernel's arguments are, in order: the address table, the items' tensors, starts and
    ends, the hyperparameter vector, ``grad_scale``, ``found_inf``, then ``args`` (and the
    items' slots where ``slots``); its constexprs are ``flags`` and L (lists in the table),
    HAS_SCALE, HAS_INF, FULL (unmasked, aligned), DT (element type), CT (compute type) and BLOCK.
    """
    params = lists[0]
    w = work(params)
    table = pointers(lists, scalar_lists)
    parts = [(w.full, True), (w.tail, False)] if table.aligned else [(w.every, False)]
    for items, full in parts:
        if not items.count:
            continue
        launch(
            kernel,
            (items.count,),
            table.addresses,
            items.tensor,
            items.start,
            items.end,
            hyperparameters,
            hyperparameters if grad_scale is None else grad_scale,
            hyperparameters if found_inf is None else found_inf,
            *args,
            *((items.slot,) if slots else ()),
            **flags,
            L=len(lists) + len(scalar_lists),
            HAS_SCALE=grad_scale is not None,
            HAS_INF=found_inf is not None,
            FULL=full,
            DT=element_type(params[0].dtype),
            CT=compute_type(params[0].dtype),
            BLOCK=w.block,
        )
    return w


def launch(kernel: triton.JITFunction, grid: tuple[int, ...], *args, **kwargs) -> None:
    """Launch ``kernel`` on ``grid`` and count it in :data:`LAUNCHES`."""
    LAUNCHES[getattr(kernel, "__name__", None) or kernel.fn.__name__] += 1
    kernel[grid](*args, num_warps=NUM_WARPS, **kwargs)
