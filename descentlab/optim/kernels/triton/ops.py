"""torch.library registration: every Triton kernel is the operator ``descentlab::triton_<name>``.

Each launch function is an opaque ``torch.library.custom_op`` (its schema inferred from the type
hints, its mutated lists declared) with a fake implementation, so that ``torch.compile`` of a
step traces a call as one node, without a graph break, and a 0-d tensor hyperparameter that a
scheduler changes in place is an input of the graph (no recompile). On a GPU,
``torch.library.triton_op`` with ``wrap_triton`` would let inductor see into the kernels; it is
not used because it cannot be traced on CPU tensors (the interpreter needs real data pointers),
where CI tests these operators.
"""

from collections.abc import Callable, Sequence

import torch

__all__ = ["register"]


def _nothing(*args, **kwargs) -> None:
    return None


def register(
    name: str, fn: Callable, mutates: Sequence[str], fake: Callable | None = None
) -> Callable:
    """Register ``fn`` as ``descentlab::triton_<name>`` mutating ``mutates``; return the op."""
    op = torch.library.custom_op(f"descentlab::triton_{name}", fn, mutates_args=tuple(mutates))
    op.register_fake(fake or _nothing)
    return op
