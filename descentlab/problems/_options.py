"""Model and data options the problems share: ``normalization``, ``dropout`` and ``classes``.

:func:`check_option` checks the value of any problem option by its name (sizes and counts are
integers >= 1), so that an experiment file with a bad value fails when it is read, not in a
trial; each problem's ``build`` still checks what depends on its data.

* ``normalization`` (``"none"``, ``"batch"`` or ``"layer"``): a normalization layer after each
  hidden linear or convolutional layer, before its activation. ``"batch"`` is batch normalization
  (Ioffe & Szegedy 2015, "Batch Normalization: Accelerating Deep Network Training by Reducing
  Internal Covariate Shift"); ``"layer"`` is layer normalization (Ba, Kiros & Hinton 2016, "Layer
  Normalization"): ``nn.LayerNorm`` over the features of a fully connected layer, and
  ``nn.GroupNorm(1, C)`` (one group: over channels and positions) after a convolution. A layer
  followed by batch normalization has no bias: the batch mean it subtracts cancels a bias exactly
  (Ioffe & Szegedy 2015, section 3.2). Layer normalization does not cancel a per-unit bias, so the
  layer keeps it.
* ``dropout`` (a probability in ``[0, 1)``): ``nn.Dropout`` after hidden activations (Srivastava
  et al. 2014, "Dropout: A Simple Way to Prevent Neural Networks from Overfitting"). ``0`` inserts
  no module at all, so a model's parameters, their order and its use of the random number
  generator stay those of the plain model.
* ``classes`` (distinct labels): only the examples of those classes, in every split. Labels are
  not remapped, so the model keeps its output for every class and weights trained on some classes
  load into the model for others (fine-tuning).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np
from torch import nn

__all__ = [
    "NORMALIZATIONS",
    "check_classes",
    "check_dropout",
    "check_normalization",
    "check_option",
    "conv_layers",
    "dropout_layers",
    "keep_classes",
    "mlp",
    "norm_layers",
]

NORMALIZATIONS = ("none", "batch", "layer")

# (normalization, spatial dimensions: 0 fully connected, 1 or 2 convolutional) -> layer(size)
_NORMS = {
    ("batch", 0): nn.BatchNorm1d,
    ("batch", 1): nn.BatchNorm1d,
    ("batch", 2): nn.BatchNorm2d,
    ("layer", 0): nn.LayerNorm,
    ("layer", 1): lambda c: nn.GroupNorm(1, c),
    ("layer", 2): lambda c: nn.GroupNorm(1, c),
}


def check_normalization(value: Any) -> str:
    """``value`` if it is one of :data:`NORMALIZATIONS`, else a ``ValueError`` naming them."""
    if value not in NORMALIZATIONS:
        allowed = ", ".join(repr(n) for n in NORMALIZATIONS)
        raise ValueError(f"normalization must be one of {allowed}, got {value!r}")
    return value


def check_dropout(value: Any) -> float:
    """``value`` as a float if it is a probability in ``[0, 1)``, else a ``ValueError``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, Real)
        or not math.isfinite(value)
        or not 0 <= value < 1
    ):
        raise ValueError(f"dropout must be a number in [0, 1), got {value!r}")
    return float(value)


def check_classes(value: Any, n_classes: int = 10) -> tuple[int, ...] | None:
    """``value`` as a tuple of distinct labels in ``[0, n_classes)`` (``None`` stays ``None``)."""
    expected = f"a non-empty list of distinct labels in 0..{n_classes - 1}"
    if value is None:
        return None
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or not value:
        raise ValueError(f"classes must be {expected}, got {value!r}")
    for c in value:
        if isinstance(c, bool) or not isinstance(c, Integral) or not 0 <= c < n_classes:
            raise ValueError(f"classes must be {expected}, got {value!r} (bad label {c!r})")
    if len(set(value)) != len(value):
        raise ValueError(f"classes must be {expected}, got {value!r} (a label repeats)")
    return tuple(int(c) for c in value)


def _count(name: str) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        return int(value)

    return check


def _in_interval(name: str, lo: float, hi: float, lo_open: bool = True) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        inside = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
        if not inside or not (lo < value if lo_open else lo <= value) or value > hi:
            bracket = "(" if lo_open else "["
            raise ValueError(f"{name} must be a number in {bracket}{lo}, {hi}], got {value!r}")
        return float(value)

    return check


def _text(name: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} must be a non-empty string, got {value!r}")
        return value

    return check


_COUNTS = ("n_train", "n_val", "n_test", "width", "hidden", "seq_len", "corpus_chars")
_OPTION_CHECKS = {
    "normalization": check_normalization,
    "dropout": check_dropout,
    "classes": check_classes,
    **{name: _count(name) for name in (*_COUNTS, "steps_per_epoch", "n_eval")},
    "std": _in_interval("std", 0.0, math.inf),
    "p": _in_interval("p", 0.5, 1.0),  # the Wilson et al. problem's label noise
    "text_file": _text("text_file"),
    "grad_clip": _in_interval("grad_clip", 0.0, math.inf, lo_open=False),  # 0: no clipping
}


def check_option(name: str, value: Any) -> None:
    """Raise ``ValueError`` naming ``name`` and the valid values when ``value`` is not one."""
    check = _OPTION_CHECKS.get(name)
    if check is not None:
        check(value)


def norm_layers(normalization: str, size: int, *, spatial: int = 0) -> list[nn.Module]:
    """The normalization layer for ``size`` features or channels (``[]`` for ``"none"``).

    ``spatial`` is 0 after a fully connected layer, 1 or 2 after a 1-d or 2-d convolution.
    """
    if normalization == "none":
        return []
    return [_NORMS[normalization, spatial](size)]


def dropout_layers(p: float) -> list[nn.Module]:
    """``[nn.Dropout(p)]``, or ``[]`` when ``p == 0`` (no module, no use of the generator)."""
    return [nn.Dropout(p)] if p > 0 else []


def conv_layers(
    normalization: str, cin: int, cout: int, kernel: int, *, spatial: int, **conv: Any
) -> list[nn.Module]:
    """A ``spatial``-d convolution (no bias before batch normalization), its norm layer, ReLU."""
    cls = {1: nn.Conv1d, 2: nn.Conv2d}[spatial]
    return [
        cls(cin, cout, kernel, bias=normalization != "batch", **conv),
        *norm_layers(normalization, cout, spatial=spatial),
        nn.ReLU(),
    ]


def mlp(
    widths: Sequence[int], *, normalization: str = "none", dropout: float = 0.0
) -> nn.Sequential:
    """A ReLU MLP ``widths[0] -> ... -> widths[-1]``; each hidden layer is Linear, the norm layer,
    ReLU, dropout. With the defaults: ``Linear, ReLU, ..., Linear``."""
    normalization, p = check_normalization(normalization), check_dropout(dropout)
    layers: list[nn.Module] = []
    for cin, cout in itertools.pairwise(widths[:-1]):
        layers += [
            nn.Linear(cin, cout, bias=normalization != "batch"),
            *norm_layers(normalization, cout),
            nn.ReLU(),
            *dropout_layers(p),
        ]
    layers.append(nn.Linear(widths[-2], widths[-1]))
    return nn.Sequential(*layers)


def keep_classes(
    x: np.ndarray, y: np.ndarray, classes: tuple[int, ...] | None
) -> tuple[np.ndarray, np.ndarray]:
    """The examples of ``x, y`` whose label is in ``classes``, in their order (all for ``None``)."""
    if classes is None:
        return x, y
    mask = np.isin(y, classes)
    return x[mask], y[mask]
