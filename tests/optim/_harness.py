"""Parameters, gradients and comparisons shared by the optimizer tests.

They live in ``descentlab.testing`` (the public conformance harness); this module keeps the
names the tests import and the descentlab-specific state aliases.
"""

from __future__ import annotations

from descentlab.testing import (
    assert_close,
    clone_groups,
    flat,
    make_groups,
    set_grads,
    with_hparams,
)
from descentlab.testing._compare import Where
from descentlab.testing._compare import compare_states as _compare_states

__all__ = [
    "ALIASES",
    "assert_close",
    "clone_groups",
    "compare_states",
    "flat",
    "make_groups",
    "set_grads",
    "with_hparams",
]

ALIASES = {"k": "step"}  # reference state key -> descentlab state key


def compare_states(ours, theirs, params_ours, params_theirs, rtol, atol, t) -> None:
    """Compare parameters and every state entry the reference keeps (one group of each)."""
    where = Where("reference", step=t)
    _compare_states(where, ours, theirs, [params_ours], [params_theirs], rtol, atol, ALIASES)
