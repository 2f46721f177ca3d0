"""MNIST-1D: an MLP and a small CNN on the 1-D analogue of MNIST.

Reference: Greydanus 2020, "Scaling down Deep Learning" (arXiv:2011.14439), and its ``mnist1d``
package. The data is generated offline by the package's own generator
(``mnist1d.data.make_dataset``) from its ten built-in digit templates, with the package's default
arguments (5,000 signals of length 40, seed 42: the published dataset's recipe); the package's
``get_dataset`` would download, and is never called. Its 4,000/1,000 train/test split is kept, and
the last 500 training signals are held out as the validation split (3,500/500/1,000). The seed of
a run sets the model's initialisation and the data order only.

The generator seeds numpy's and Python's global random states; they are restored afterwards.
"""

from __future__ import annotations

import functools
import random

import numpy as np
import torch
from torch import nn

from ._base import Budget, Problem, SupervisedTask, Target

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
    *, channels: bool = False, n_train: int | None = None
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The splits as tensors: ``(n, 40)``, or ``(n, 1, 40)`` with ``channels=True``.

    ``n_train`` keeps only the first training signals (for quick tests).
    """
    out = {}
    for split, (x, y) in _arrays().items():
        if split == "train" and n_train is not None:
            x, y = x[:n_train], y[:n_train]
        xt = torch.from_numpy(x.copy())
        out[split] = (xt.unsqueeze(1) if channels else xt, torch.from_numpy(y.copy()))
    return out


def _mlp() -> nn.Module:
    """The paper's MLP: 40-100-100-10 with ReLU."""
    return nn.Sequential(
        nn.Linear(40, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 10)
    )


def _cnn() -> nn.Module:
    """The paper's CNN: three 25-channel conv layers (stride 2), ReLU, linear (length 40->19->10->5)."""
    return nn.Sequential(
        nn.Conv1d(1, 25, 5, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv1d(25, 25, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv1d(25, 25, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(25 * 5, 10),
    )


def _factory(model_fn, channels: bool):
    def build(
        seed: int, *, data_dir: str | None, batch_size: int, n_train: int | None = None
    ) -> SupervisedTask:
        del data_dir  # generated
        splits = mnist1d_splits(channels=channels, n_train=n_train)
        torch.manual_seed(seed)
        return SupervisedTask(
            model_fn(), splits, nn.CrossEntropyLoss(), seed=seed, batch_size=batch_size
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
        axes=frozenset({"batch_size", "data_dir", "n_train"}),
        factory=_factory(model_fn, channels),
    )


MNIST1D_MLP = _problem("mnist1d-mlp", "MLP 40-100-100-10", _mlp, channels=False, target=0.6)
MNIST1D_CNN = _problem(
    "mnist1d-cnn", "CNN (3 conv layers of 25 channels, stride 2)", _cnn, channels=True, target=0.85
)
