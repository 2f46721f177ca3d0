"""batch_size="full": one batch of the whole training set, for supervised problems only."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from descentlab import problems
from descentlab.problems import FULL_BATCH, SHUFFLES

NOT_SUPERVISED = [n for n in problems.names() if problems.get(n).kind != "supervised"]


def test_some_problems_are_not_supervised():
    assert "gan-mog" in NOT_SUPERVISED


@pytest.mark.parametrize("name", NOT_SUPERVISED)
def test_full_needs_a_fixed_training_set(name):
    kind = problems.get(name).kind
    with pytest.raises(ValueError) as err:
        problems.get(name).build(0, batch_size="full")
    assert str(err.value) == (
        f"problem {name!r} (kind {kind}) cannot take batch_size='full': "
        "only supervised problems have a fixed training set"
    )


@pytest.mark.parametrize("value", ["half", "Full", ""])
def test_other_strings_are_rejected(value):
    with pytest.raises(
        ValueError, match=f"batch_size must be an integer >= 1 or 'full', got {value!r}"
    ):
        problems.get("digits-logreg").build(0, batch_size=value)


@pytest.mark.parametrize(
    ("name", "options", "n"),
    [
        ("wilson-linreg", {"n_train": 30, "n_val": 10, "n_test": 10}, 30),
        ("digits-mlp", {"n_train": 200}, 200),
    ],
)
def test_full_is_one_batch_of_the_training_set(name, options, n):
    task = problems.get(name).build(0, batch_size="full", **options)
    assert task.batch_size == task.examples_per_epoch == n
    assert len(task.train_loader) == 1
    (x, y), *more = list(task.epoch_batches())
    assert not more and len(y) == n
    assert _rows(x, y) == _rows(*task.splits["train"])
    assert set(task.evaluate("val")) >= {"loss", "accuracy"}


def _rows(x: torch.Tensor, y: torch.Tensor) -> list[tuple[float, ...]]:
    """The examples as a sorted list of rows (a multiset), whatever their order."""
    return sorted(map(tuple, np.column_stack([x.numpy(), y.numpy()]).tolist()))


def test_full_batch_is_in_index_order():
    task = problems.get("digits-logreg").build(3, batch_size="full", n_train=100)
    task.set_order(shuffle="epoch")
    for _ in range(2):
        (x, y), *_ = task.epoch_batches()
        assert torch.equal(x, task.splits["train"][0]) and torch.equal(y, task.splits["train"][1])


def test_full_batch_constant_is_clamped():
    task = problems.get("digits-logreg").build(0, batch_size=FULL_BATCH, n_train=50)
    assert task.batch_size == 50 and len(task.train_loader) == 1


def _gradient_descent(shuffle: str, steps: int = 50) -> tuple[list[float], list[torch.Tensor]]:
    task = problems.get("digits-logreg").build(0, batch_size="full")
    task.set_order(shuffle=shuffle)
    opts = problems.optimizers_for(task, "sgd", lr=0.05)
    losses = []
    for _ in range(steps):
        (batch,) = task.epoch_batches()
        task.train_step(opts, batch)
        losses.append(task.evaluate("train")["loss"])
    return losses, [p.detach().clone() for p in task.model.parameters()]


def test_full_batch_gradient_descent_is_deterministic_and_monotone():
    runs = {s: _gradient_descent(s) for s in SHUFFLES}
    losses, weights = runs["epoch"]
    for shuffle in ("once", "none"):
        assert runs[shuffle][0] == losses, shuffle
        assert all(torch.equal(a, b) for a, b in zip(runs[shuffle][1], weights, strict=True))
    assert all(b < a for a, b in itertools.pairwise(losses))
    assert losses[-1] < 0.5 * losses[0]
