"""A conformance harness for optimizer authors: ``check_optimizer`` runs any
``torch.optim.Optimizer`` class against a reference and through what torch.optim's users rely on.

See ``docs/testing.md``. The building blocks (the parameter groups and gradients every check
steps with, and the comparisons) are public too, for an author's own tests.
"""

from ._check import CHECKS, Report, check_optimizer
from ._compare import ConformanceError, assert_close
from ._data import clone_groups, flat, make_groups, set_grads, with_hparams
from ._dropin import COPIES, torch_round_trip
from ._spec import TOLERANCES

__all__ = [
    "CHECKS",
    "COPIES",
    "TOLERANCES",
    "ConformanceError",
    "Report",
    "assert_close",
    "check_optimizer",
    "clone_groups",
    "flat",
    "make_groups",
    "set_grads",
    "torch_round_trip",
    "with_hparams",
]
