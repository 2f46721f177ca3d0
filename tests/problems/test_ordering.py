"""The order of the training examples: shuffles, curricula (known answers), reference scores."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
from torch import nn

from descentlab import problems
from descentlab.problems import SHUFFLES, Curriculum, SupervisedTask, reference_difficulty
from descentlab.problems.digits import digits_splits
from descentlab.problems.wilson import wilson_data

N, BATCH = 40, 6


def _task(*, seed: int = 0, n: int = N, batch_size: int = BATCH) -> SupervisedTask:
    """Synthetic data whose first feature is the example's index, so batches name their examples."""
    g = torch.Generator().manual_seed(123)
    x = torch.randn(n, 3, generator=g)
    x[:, 0] = torch.arange(n, dtype=torch.float32)
    y = torch.arange(n) % 2
    splits = {s: (x, y) for s in problems.SPLITS}
    return SupervisedTask(
        nn.Linear(3, 2), splits, nn.CrossEntropyLoss(), seed=seed, batch_size=batch_size
    )


def _epochs(task: SupervisedTask, count: int) -> list[list[int]]:
    """The example indices of the next ``count`` epochs, checking every epoch's batch count."""
    out = []
    for _ in range(count):
        batches = list(task.epoch_batches())
        assert len(batches) == len(task.train_loader)
        out.append([int(i) for b in batches for i in b[0][:, 0].tolist()])
    return out


def _scores(n: int = N) -> torch.Tensor:
    """A known difficulty: a random permutation of 0..n-1, so the k easiest are score < k."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(7)).double()


# ---- shuffle ----------------------------------------------------------------------------------


def test_shuffle_none_is_index_order_every_epoch():
    task = _task()
    task.set_order(shuffle="none")
    assert _epochs(task, 3) == [list(range(N))] * 3


def test_shuffle_once_reuses_one_permutation():
    task = _task()
    task.set_order(shuffle="once")
    first, *rest = _epochs(task, 3)
    assert sorted(first) == list(range(N)) and first != list(range(N))
    assert all(e == first for e in rest)


def test_shuffle_epoch_is_todays_order():
    built, reset = _task(), _task()
    reset.set_order(shuffle="epoch")
    epochs = _epochs(built, 3)
    assert _epochs(reset, 3) == epochs
    assert epochs[0] != epochs[1] != epochs[2]
    assert all(sorted(e) == list(range(N)) for e in epochs)


def test_shuffles_are_part_of_the_seed():
    a, b, c = _task(seed=1), _task(seed=1), _task(seed=2)
    for task in (a, b, c):
        task.set_order(shuffle="once")
    assert _epochs(a, 1) == _epochs(b, 1) != _epochs(c, 1)


@pytest.mark.parametrize("shuffle", SHUFFLES)
@pytest.mark.parametrize("curriculum", [False, True])
def test_epoch_length_and_batches_unchanged(shuffle, curriculum):
    task = _task()
    steps = len(task.train_loader)
    task.set_order(shuffle=shuffle, curriculum=Curriculum(_scores()) if curriculum else None)
    assert len(task.train_loader) == steps == math.ceil(N / BATCH)
    assert task.examples_per_epoch == N
    batches = list(task.epoch_batches())
    assert [len(b[1]) for b in batches] == [BATCH] * (N // BATCH) + [N % BATCH]


# ---- curriculum: known answers ----------------------------------------------------------------

# start 0.25, 4 epochs on 40 examples: linear pools ceil(40 * (0.25 + 0.75 e / 4)), then all.
LINEAR_POOLS = [10, 18, 25, 33, 40, 40]
STEP_POOLS = [10, 10, 10, 10, 40, 40]


@pytest.mark.parametrize("shuffle", SHUFFLES)
@pytest.mark.parametrize(("pacing", "pools"), [("linear", LINEAR_POOLS), ("step", STEP_POOLS)])
def test_curriculum_draws_the_easiest_examples(shuffle, pacing, pools):
    scores = _scores()
    task = _task()
    task.set_order(
        shuffle=shuffle, curriculum=Curriculum(scores, start=0.25, epochs=4, pacing=pacing)
    )
    for epoch, (indices, k) in enumerate(zip(_epochs(task, len(pools)), pools, strict=True)):
        counts = Counter(indices)
        easiest = {i for i in range(N) if scores[i] < k}
        assert set(counts) == easiest, f"epoch {epoch}"
        # the pool repeated and cut to N: each example N // k or ceil(N / k) times
        assert set(counts.values()) <= {N // k, math.ceil(N / k)}, f"epoch {epoch}"
        assert len(indices) == N


def test_curriculum_epoch_zero_with_fixed_order():
    scores = _scores()
    task = _task()
    task.set_order(shuffle="none", curriculum=Curriculum(scores, start=0.25, epochs=4))
    easiest = [i for i in range(N) if scores[i] < 10]
    first, *_, after = _epochs(task, 5)
    assert first == easiest * 4
    assert after == list(range(N))


def test_curriculum_after_pacing_is_the_plain_order():
    scores = _scores()
    plain, paced = _task(), _task()
    plain.set_order(shuffle="once")
    paced.set_order(shuffle="once", curriculum=Curriculum(scores, start=0.5, epochs=2))
    assert _epochs(paced, 4)[2:] == _epochs(plain, 4)[2:]


def test_curriculum_pool_grows_in_score_order_ties_by_index():
    plan = Curriculum(torch.tensor([3.0, 1.0, 1.0, 0.0, 2.0, 1.0]), start=0.5, epochs=3)
    assert [plan.fraction(e) for e in range(5)] == pytest.approx([0.5, 2 / 3, 5 / 6, 1.0, 1.0])
    assert [plan.pool(e).tolist() for e in range(4)] == [
        [3, 1, 2],
        [3, 1, 2, 5],
        [3, 1, 2, 5, 4],
        [3, 1, 2, 5, 4, 0],
    ]


def test_pool_size_ignores_float_noise():
    plan = Curriculum(torch.arange(10.0), start=0.3, epochs=1)  # 0.3 * 10 = 3.0000000000000004
    assert len(plan.pool(0)) == 3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"start": 0.0}, r"start must be in \(0, 1\], got 0.0"),
        ({"start": 1.5}, r"start must be in \(0, 1\], got 1.5"),
        ({"epochs": 0}, "epochs must be an integer >= 1, got 0"),
        ({"epochs": 2.5}, "epochs must be an integer >= 1, got 2.5"),
        ({"epochs": True}, "epochs must be an integer >= 1, got True"),
        ({"pacing": "cubic"}, "pacing must be one of linear, step, got 'cubic'"),
        ({"scores": torch.zeros(2, 3)}, r"scores must be a non-empty 1-d tensor, got \(2, 3\)"),
        ({"scores": torch.zeros(0)}, r"scores must be a non-empty 1-d tensor, got \(0,\)"),
        ({"scores": [1.0, 2.0]}, "scores must be a non-empty 1-d tensor, got list"),
        ({"scores": torch.tensor([0.0, float("nan")])}, "scores must be finite"),
    ],
)
def test_curriculum_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Curriculum(**{"scores": torch.arange(4.0), **kwargs})


def test_set_order_errors():
    task = _task()
    with pytest.raises(ValueError, match="shuffle must be one of epoch, once, none, got 'random'"):
        task.set_order(shuffle="random")
    with pytest.raises(ValueError, match=r"one score per training example \(40\), got 39"):
        task.set_order(curriculum=Curriculum(torch.arange(39.0)))


def test_task_difficulty_is_kept_and_checked():
    x, y = torch.randn(5, 2), torch.arange(5) % 2
    splits = {s: (x, y) for s in problems.SPLITS}
    scores = torch.arange(5.0)
    task = SupervisedTask(
        nn.Linear(2, 2), splits, nn.CrossEntropyLoss(), seed=0, batch_size=2, difficulty=scores
    )
    assert task.difficulty is scores
    assert _task().difficulty is None
    with pytest.raises(ValueError, match=r"difficulty must have one score .* \(5\), got shape"):
        SupervisedTask(
            nn.Linear(2, 2),
            splits,
            nn.CrossEntropyLoss(),
            seed=0,
            batch_size=2,
            difficulty=torch.arange(4.0),
        )


# ---- reference difficulty ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_scores():
    x, y = digits_splits()["train"]
    return x, y, reference_difficulty(x, y, seed=0)


def test_reference_difficulty_ranks_misclassified_examples_harder(digits_scores):
    x, y, scores = digits_scores
    assert scores.shape == (len(y),) and bool(torch.isfinite(scores).all())
    assert float(scores.min()) >= 0.0
    # an independent model: digits-logreg after one epoch of SGD, which still errs on some
    task = problems.get("digits-logreg").build(0)
    problems.train(
        task, problems.optimizers_for(task, "sgd", lr=0.1), 1, eval_splits=(), final_splits=()
    )
    with torch.no_grad():
        wrong = task.model(x).argmax(-1) != y
    assert 10 <= int(wrong.sum()) <= len(y) // 2
    assert float(scores[wrong].mean()) > 3 * float(scores[~wrong].mean())


def test_reference_difficulty_is_deterministic_for_a_seed(digits_scores):
    x, y, _ = digits_scores
    n = 300  # a subset keeps it quick
    again = reference_difficulty(x[:n], y[:n], seed=1)
    assert torch.equal(again, reference_difficulty(x[:n], y[:n], seed=1))
    assert not torch.equal(again, reference_difficulty(x[:n], y[:n], seed=2))


def test_reference_difficulty_takes_images_and_plus_minus_one_labels():
    x, y = digits_splits(image=True, n_train=200)["train"]
    assert reference_difficulty(x, y).shape == (200,)
    xw, yw = wilson_data(0, n_train=40, n_val=5, n_test=5)["train"]
    assert set(yw.tolist()) == {-1.0, 1.0}
    assert reference_difficulty(xw, yw, folds=3).shape == (40,)


@pytest.mark.parametrize(
    ("y", "kwargs", "match"),
    [
        (torch.zeros(20, 4, dtype=torch.long), {}, r"1-d vector of class labels.*\(20, 4\)"),
        (torch.linspace(0, 1, 20), {}, "non-integral targets"),
        (torch.zeros(20, dtype=torch.long), {}, "at least 2 classes, got 1"),
        (torch.arange(20) % 2, {"folds": 11}, r"folds must be in \[2, 10\].*got 11"),
        (torch.arange(20) % 2, {"folds": 1}, r"folds must be in \[2, 10\].*got 1"),
    ],
)
def test_reference_difficulty_errors(y, kwargs, match):
    with pytest.raises(ValueError, match=match):
        reference_difficulty(torch.randn(20, 3), y, **kwargs)
