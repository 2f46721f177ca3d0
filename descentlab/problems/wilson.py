"""The constructed least-squares classification problem where adaptive methods generalize worse.

Reference: Wilson, Roelofs, Stern, Srebro & Recht 2017, "The Marginal Value of Adaptive Gradient
Methods in Machine Learning" (NeurIPS), section 3.3 "Adaptivity can overfit".

Construction (the paper's, with a feature block for every example of every split): labels
:math:`y_i \\in \\{-1, 1\\}` with :math:`P(y_i = 1) = p > 1/2`; features :math:`x_i \\in \\mathbb{R}^{6N}`
for :math:`N` examples in all, with

.. math::
    x_{ij} = \\begin{cases} y_i & j = 1 \\\\ 1 & j = 2, 3 \\\\
    1 & j = 4 + 5(i-1), \\dots, 4 + 5(i-1) + 2(1 - y_i) \\\\ 0 & \\text{otherwise} \\end{cases}

so the first feature is the label, two features are always on, and every example owns a block
of one (positive) or five (negative) features no other example shares. The loss is least
squares :math:`\\frac{1}{n}\\|Xw - y\\|^2` of a linear model without bias, started at
:math:`w = 0` as in the paper; the prediction is :math:`\\operatorname{sign}(x^\\top w)` (an
output of exactly 0 counts as an error).

The paper shows that from zero, gradient descent and SGD converge to the minimum-norm solution,
which classifies new examples correctly (zero test error), while AdaGrad, RMSProp and Adam
converge to a solution proportional to :math:`\\operatorname{sign}(X^\\top y)`, which weighs the
always-on features like the label feature and so labels every new example positive: test error
:math:`1 - p`, close to 1/2 when :math:`p` is. The unique features of validation and test
examples never receive a gradient and stay 0, as an unseen example's would.

The seed draws the labels (a new instance of the construction) and the batch order; the model
always starts at zero. The default budget is full-batch gradient steps.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ._base import Budget, Problem, SupervisedTask, Target

__all__ = ["WILSON_LINREG", "wilson_data"]

_N_TRAIN, _N_VAL, _N_TEST, _P = 100, 100, 500, 0.6


def wilson_data(
    seed: int, *, n_train: int = _N_TRAIN, n_val: int = _N_VAL, n_test: int = _N_TEST, p: float = _P
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The construction's splits ``{"train": (X, y), ...}``, ``X`` of width ``6 N``, ``y`` in ±1."""
    if not 0.5 < p <= 1.0:
        raise ValueError(f"p must be in (0.5, 1], got {p}")
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    total = sum(sizes.values())
    rng = np.random.default_rng(seed)
    y = np.where(rng.random(total) < p, 1.0, -1.0)
    x = np.zeros((total, 6 * total))
    x[:, 0] = y  # j = 1
    x[:, 1:3] = 1.0  # j = 2, 3
    for i in range(total):  # j = 4 + 5(i-1), ..., 4 + 5(i-1) + 2(1 - y_i), 1-based; i from 0 here
        start = 3 + 5 * i
        x[i, start : start + 1 + int(2 * (1 - y[i]))] = 1.0
    out, begin = {}, 0
    for split, n in sizes.items():
        xs, ys = x[begin : begin + n], y[begin : begin + n]
        out[split] = (torch.tensor(xs, dtype=torch.float32), torch.tensor(ys, dtype=torch.float32))
        begin += n
    return out


class _Linear(nn.Module):
    """``x -> x @ w``, w initialised to zero (the paper's starting point)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight


def _squared_error(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((output - target) ** 2).mean()


def _sign_accuracy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (torch.sign(output) == target).sum()


def _build(
    seed: int,
    *,
    data_dir: str | None,
    batch_size: int | None,
    n_train: int = _N_TRAIN,
    n_val: int = _N_VAL,
    n_test: int = _N_TEST,
    p: float = _P,
) -> SupervisedTask:
    del data_dir  # constructed data
    splits = wilson_data(seed, n_train=n_train, n_val=n_val, n_test=n_test, p=p)
    return SupervisedTask(
        _Linear(splits["train"][0].shape[1]),
        splits,
        _squared_error,
        seed=seed,
        batch_size=batch_size,  # SupervisedTask clamps it to n_train
        metrics={"accuracy": _sign_accuracy},
    )


WILSON_LINREG = Problem(
    name="wilson-linreg",
    description=(
        "Least-squares linear classification built so that adaptive methods generalize worse "
        "(test error 1-p) than (S)GD (zero test error), from w = 0"
    ),
    source=(
        "Wilson, Roelofs, Stern, Srebro & Recht 2017, 'The Marginal Value of Adaptive Gradient "
        "Methods in Machine Learning', section 3.3; data constructed from the seed"
    ),
    kind="supervised",
    budget=Budget(epochs=300, batch_size=_N_TRAIN),
    target=Target("accuracy", 0.99, higher_is_better=True),
    main_metric="accuracy",
    higher_is_better=True,
    axes=frozenset({"batch_size", "data_dir", "n_train", "n_val", "n_test", "p"}),
    factory=_build,
)
