"""Learning-rate schedules as per-step torch schedulers, warm-up, and the LR range test.

``create(name, optimizer, total_steps=n, **options)`` builds any schedule of ``names()`` on any
``torch.optim.Optimizer``; step it once after every ``optimizer.step()``. torch's own classes are
used wherever they implement a schedule exactly; this package adds what torch lacks (``SGDR`` with
a real ``T_mult``, peak decay and warm-up; the untuned warm-up; a warm-up prefix for any schedule)
and ``lr_range_test``.
"""

from .plot import plot, trace
from .range_test import LRRangeResult, lr_range_test
from .registry import REGISTRY, Schedule, create, names
from .sgdr import SGDR
from .warmup import with_warmup

__all__ = [
    "REGISTRY",
    "SGDR",
    "LRRangeResult",
    "Schedule",
    "create",
    "lr_range_test",
    "names",
    "plot",
    "trace",
    "with_warmup",
]
