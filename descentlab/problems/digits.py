"""scikit-learn's handwritten digits: logistic regression, an MLP and a small CNN with BatchNorm.

Data: ``sklearn.datasets.load_digits`` (1,797 8x8 images, 10 classes; the UCI "Optical
Recognition of Handwritten Digits" test set, Alpaydin & Kaynak 1998), shipped with scikit-learn,
so it runs offline. The split is fixed for every seed (stratified, 60/20/20 with
``random_state=0``); features are standardised with the training split's per-pixel mean and
standard deviation (constant pixels keep a standard deviation of 1). The seed sets the model's
initialisation and the data order only.

Options (see :mod:`descentlab.problems._options`): ``classes`` (every problem) keeps the examples
of some labels only, in every split, before ``n_train``; ``normalization`` and ``dropout`` (the
MLP and the CNN, which have hidden layers): the MLP's default is ``"none"``, the CNN's
``"batch"``; the CNN's dropout sits before its linear read-out.
"""

from __future__ import annotations

import functools
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

__all__ = ["DIGITS_CNN", "DIGITS_LOGREG", "DIGITS_MLP", "digits_splits"]

_SOURCE = (
    "scikit-learn load_digits: UCI Optical Recognition of Handwritten Digits "
    "(Alpaydin & Kaynak 1998), 1,797 8x8 images; fixed stratified 60/20/20 split"
)
_AXES = frozenset({"batch_size", "data_dir", "n_train", "classes"})
_MODEL_AXES = frozenset({"normalization", "dropout"})


@functools.lru_cache(maxsize=1)
def _arrays() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_train, x_rest, y_train, y_rest = train_test_split(
        x, y, test_size=0.4, stratify=y, random_state=0
    )
    x_val, x_test, y_val, y_test = train_test_split(
        x_rest, y_rest, test_size=0.5, stratify=y_rest, random_state=0
    )
    mean, std = x_train.mean(0), x_train.std(0)
    std[std == 0] = 1.0
    return {
        s: (((a - mean) / std).astype(np.float32), b.astype(np.int64))
        for s, a, b in (
            ("train", x_train, y_train),
            ("val", x_val, y_val),
            ("test", x_test, y_test),
        )
    }


def digits_splits(
    *, image: bool = False, n_train: int | None = None, classes: Sequence[int] | None = None
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The standardised splits as tensors: ``(n, 64)``, or ``(n, 1, 8, 8)`` with ``image=True``.

    ``classes`` keeps only the examples with those labels (not remapped) in every split; then
    ``n_train`` keeps only the first examples of the training split (for quick tests).
    """
    keep = check_classes(classes)
    out = {}
    for split, (x_all, y_all) in _arrays().items():
        x, y = keep_classes(x_all, y_all, keep)
        if split == "train" and n_train is not None:
            x, y = x[:n_train], y[:n_train]
        xt = torch.from_numpy(x.copy())
        out[split] = (xt.view(-1, 1, 8, 8) if image else xt, torch.from_numpy(y.copy()))
    return out


def _logreg() -> nn.Module:
    return nn.Linear(64, 10)


def _mlp(*, normalization: str = "none", dropout: float = 0.0) -> nn.Module:
    return mlp((64, 128, 64, 10), normalization=normalization, dropout=dropout)


def _cnn(*, normalization: str = "batch", dropout: float = 0.0) -> nn.Module:
    norm = check_normalization(normalization)
    return nn.Sequential(
        *conv_layers(norm, 1, 16, 3, spatial=2, padding=1),
        *conv_layers(norm, 16, 32, 3, spatial=2, padding=1),
        nn.MaxPool2d(2),  # 8x8 -> 4x4
        nn.Flatten(),
        *dropout_layers(check_dropout(dropout)),
        nn.Linear(32 * 4 * 4, 10),
    )


def _factory(model_fn, image: bool):
    def build(
        seed: int,
        *,
        data_dir: str | None,
        batch_size: int,
        n_train: int | None = None,
        classes: Sequence[int] | None = None,
        **model_options: Any,
    ) -> SupervisedTask:
        del data_dir  # the data ships with scikit-learn
        splits = digits_splits(image=image, n_train=n_train, classes=classes)
        torch.manual_seed(seed)
        return SupervisedTask(
            model_fn(**model_options),
            splits,
            nn.CrossEntropyLoss(),
            seed=seed,
            batch_size=batch_size,
        )

    return build


def _problem(
    name: str, what: str, model_fn, *, image: bool, epochs: int, target: float, hidden: bool
):
    return Problem(
        name=name,
        description=f"{what} on scikit-learn's 8x8 handwritten digits (10 classes)",
        source=_SOURCE,
        kind="supervised",
        budget=Budget(epochs=epochs, batch_size=32),
        target=Target("accuracy", target, higher_is_better=True),
        main_metric="accuracy",
        higher_is_better=True,
        axes=_AXES | _MODEL_AXES if hidden else _AXES,
        factory=_factory(model_fn, image),
    )


DIGITS_LOGREG = _problem(
    "digits-logreg",
    "Multinomial logistic regression",
    _logreg,
    image=False,
    epochs=20,
    target=0.95,
    hidden=False,
)
DIGITS_MLP = _problem(
    "digits-mlp",
    "MLP 64-128-64-10 with ReLU",
    _mlp,
    image=False,
    epochs=15,
    target=0.96,
    hidden=True,
)
DIGITS_CNN = _problem(
    "digits-cnn",
    "CNN (two 3x3 conv + BatchNorm + ReLU, max-pool, linear)",
    _cnn,
    image=True,
    epochs=10,
    target=0.97,
    hidden=True,
)
