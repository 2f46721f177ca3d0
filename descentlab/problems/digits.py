"""scikit-learn's handwritten digits: logistic regression, an MLP and a small CNN with BatchNorm.

Data: ``sklearn.datasets.load_digits`` (1,797 8x8 images, 10 classes; the UCI "Optical
Recognition of Handwritten Digits" test set, Alpaydin & Kaynak 1998), shipped with scikit-learn,
so it runs offline. The split is fixed for every seed (stratified, 60/20/20 with
``random_state=0``); features are standardised with the training split's per-pixel mean and
standard deviation (constant pixels keep a standard deviation of 1). The seed sets the model's
initialisation and the data order only.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn

from ._base import Budget, Problem, SupervisedTask, Target

__all__ = ["DIGITS_CNN", "DIGITS_LOGREG", "DIGITS_MLP", "digits_splits"]

_SOURCE = (
    "scikit-learn load_digits: UCI Optical Recognition of Handwritten Digits "
    "(Alpaydin & Kaynak 1998), 1,797 8x8 images; fixed stratified 60/20/20 split"
)
_AXES = frozenset({"batch_size", "data_dir", "n_train"})


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
    *, image: bool = False, n_train: int | None = None
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The standardised splits as tensors: ``(n, 64)``, or ``(n, 1, 8, 8)`` with ``image=True``.

    ``n_train`` keeps only the first examples of the training split (for quick tests).
    """
    out = {}
    for split, (x, y) in _arrays().items():
        if split == "train" and n_train is not None:
            x, y = x[:n_train], y[:n_train]
        xt = torch.from_numpy(x.copy())
        out[split] = (xt.view(-1, 1, 8, 8) if image else xt, torch.from_numpy(y.copy()))
    return out


def _logreg() -> nn.Module:
    return nn.Linear(64, 10)


def _mlp() -> nn.Module:
    return nn.Sequential(
        nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10)
    )


def _cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, bias=False),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 8x8 -> 4x4
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 10),
    )


def _factory(model_fn, image: bool):
    def build(
        seed: int, *, data_dir: str | None, batch_size: int, n_train: int | None = None
    ) -> SupervisedTask:
        del data_dir  # the data ships with scikit-learn
        torch.manual_seed(seed)
        return SupervisedTask(
            model_fn(),
            digits_splits(image=image, n_train=n_train),
            nn.CrossEntropyLoss(),
            seed=seed,
            batch_size=batch_size,
        )

    return build


def _problem(name: str, what: str, model_fn, *, image: bool, epochs: int, target: float):
    return Problem(
        name=name,
        description=f"{what} on scikit-learn's 8x8 handwritten digits (10 classes)",
        source=_SOURCE,
        kind="supervised",
        budget=Budget(epochs=epochs, batch_size=32),
        target=Target("accuracy", target, higher_is_better=True),
        main_metric="accuracy",
        higher_is_better=True,
        axes=_AXES,
        factory=_factory(model_fn, image),
    )


DIGITS_LOGREG = _problem(
    "digits-logreg", "Multinomial logistic regression", _logreg, image=False, epochs=20, target=0.95
)
DIGITS_MLP = _problem(
    "digits-mlp", "MLP 64-128-64-10 with ReLU", _mlp, image=False, epochs=15, target=0.96
)
DIGITS_CNN = _problem(
    "digits-cnn",
    "CNN (two 3x3 conv + BatchNorm + ReLU, max-pool, linear)",
    _cnn,
    image=True,
    epochs=10,
    target=0.97,
)
