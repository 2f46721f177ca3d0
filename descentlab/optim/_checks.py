"""Named hyperparameter checks shared by the algorithms (the ``_checks`` tables), from
:mod:`descentlab.checks`."""

from __future__ import annotations

import functools

from ..checks import (
    NONNEGATIVE,
    POSITIVE,
    UNIT,
    UNIT_OPEN_RIGHT,
    Interval,
    check_betas,
    check_bool,
    check_number,
)

__all__ = ["ADAM_LIKE", "betas", "flag", "fraction", "nonnegative", "number", "positive", "unit"]

nonnegative = functools.partial(check_number, interval=NONNEGATIVE)
positive = functools.partial(check_number, interval=POSITIVE)
fraction = functools.partial(check_number, interval=UNIT_OPEN_RIGHT)  # [0, 1): momenta, decays
unit = functools.partial(check_number, interval=UNIT)
betas = check_betas
flag = check_bool

# the checks of an Adam-like rule's lr, betas, eps and weight_decay
ADAM_LIKE = {"lr": nonnegative, "betas": betas, "eps": nonnegative, "weight_decay": nonnegative}


def number(interval: Interval):
    """A check for a real number in ``interval``."""
    return functools.partial(check_number, interval=interval)
