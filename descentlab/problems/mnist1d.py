"""MNIST-1D: an MLP and a small CNN on the 1-D analogue of MNIST.

Reference: Greydanus 2020, "Scaling down Deep Learning" (arXiv:2011.14439), and its ``mnist1d``
package. The data is generated offline by the package's own generator
(``mnist1d.data.make_dataset``) from its ten built-in digit templates, with the package's default
arguments (5,000 signals of length 40, seed 42: the published dataset's recipe); the package's
``get_dataset`` would download, and is never called. Its 4,000/1,000 train/test split is kept, and
the last 500 training signals are held out as the validation split (3,500/500/1,000). The seed of
a run sets the model's initialisation and the data order only.

The generator seeds numpy's and Python's global random states; they are restored afterwards.

Options (see :mod:`descentlab.problems._options`): ``classes`` keeps the signals of some labels
only, in every split, before ``n_train``; ``normalization`` (default ``"none"``) adds a norm layer
after each hidden linear or convolutional layer; ``dropout`` follows each hidden ReLU of the MLP
and sits before the CNN's linear read-out.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ._base import Budget, Problem, SupervisedTask, Target
from ._options import (
    check_classes,
    check_dropout,
    check_normalization,
    conv_layers,
    dropout_layers,
    keep_classes,
    mlp,
)

__all__ = ["MNIST1D_CNN", "MNIST1D_MLP", "mnist1d_splits"]

_N_VAL = 500
_SOURCE = (
    "MNIST-1D (Greydanus 2020, arXiv:2011.14439), generated offline by the mnist1d package from "
    "its templates (default arguments, seed 42); 3,500/500/1,000 train/val/test"
)


@functools.lru_cache(maxsize=1)
def _arrays() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as e:
        raise ImportError(
            "The MNIST-1D problems need the 'mnist1d' package: pip install 'descentlab[lab]' "
            "(or pip install mnist1d)"
        ) from e
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    x, y = data["x"].astype(np.float32), data["y"].astype(np.int64)
    return {
        "train": (x[:-_N_VAL], y[:-_N_VAL]),
        "val": (x[-_N_VAL:], y[-_N_VAL:]),
        "test": (data["x_test"].astype(np.float32), data["y_test"].astype(np.int64)),
    }


def mnist1d_splits(
    *, channels: bool = False, n_train: int | None = None, classes: Sequence[int] | None = None
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The splits as tensors: ``(n, 40)``, or ``(n, 1, 40)`` with ``channels=True``.

    ``classes`` keeps only the signals with those labels (not remapped) in every split; then
    ``n_train`` keeps only the first training signals (for quick tests).
    """
    keep = check_classes(classes)
    out = {}
    for split, (x_all, y_all) in _arrays().items():
        x, y = keep_classes(x_all, y_all, keep)
        if split == "train" and n_train is not None:
            x, y = x[:n_train], y[:n_train]
        xt = torch.from_numpy(x.copy())
        out[split] = (xt.unsqueeze(1) if channels else xt, torch.from_numpy(y.copy()))
    return out


def _mlp(*, normalization: str = "none", dropout: float = 0.0) -> nn.Module:
    """The paper's MLP: 40-100-100-10 with ReLU."""
    return mlp((40, 100, 100, 10), normalization=normalization, dropout=dropout)


def _cnn(*, normalization: str = "none", dropout: float = 0.0) -> nn.Module:
    """The paper's CNN: three 25-channel conv layers (stride 2), ReLU, linear (length 40->19->10->5)."""
    norm = check_normalization(normalization)
    return nn.Sequential(
        *conv_layers(norm, 1, 25, 5, spatial=1, stride=2, padding=1),
        *conv_layers(norm, 25, 25, 3, spatial=1, stride=2, padding=1),
        *conv_layers(norm, 25, 25, 3, spatial=1, stride=2, padding=1),
        nn.Flatten(),
        *dropout_layers(check_dropout(dropout)),
        nn.Linear(25 * 5, 10),
    )


def _factory(model_fn, channels: bool):
    def build(
        seed: int,
        *,
        data_dir: str | None,
        batch_size: int,
        n_train: int | None = None,
        classes: Sequence[int] | None = None,
        **model_options: Any,
    ) -> SupervisedTask:
        del data_dir  # generated
        splits = mnist1d_splits(channels=channels, n_train=n_train, classes=classes)
        torch.manual_seed(seed)
        return SupervisedTask(
            model_fn(**model_options),
            splits,
            nn.CrossEntropyLoss(),
            seed=seed,
            batch_size=batch_size,
        )

    return build


def _problem(name: str, what: str, model_fn, *, channels: bool, target: float) -> Problem:
    return Problem(
        name=name,
        description=f"{what} on MNIST-1D (signals of length 40, 10 classes)",
        source=_SOURCE,
        kind="supervised",
        budget=Budget(epochs=30, batch_size=100),
        target=Target("accuracy", target, higher_is_better=True),
        main_metric="accuracy",
        higher_is_better=True,
        axes=frozenset(
            {"batch_size", "data_dir", "n_train", "classes", "normalization", "dropout"}
        ),
        factory=_factory(model_fn, channels),
    )


MNIST1D_MLP = _problem("mnist1d-mlp", "MLP 40-100-100-10", _mlp, channels=False, target=0.6)
MNIST1D_CNN = _problem(
    "mnist1d-cnn", "CNN (3 conv layers of 25 channels, stride 2)", _cnn, channels=True, target=0.85
)
