"""The order of the training examples: shuffling, and curricula from the easiest examples.

A curriculum (Bengio, Louradour, Collobert & Weston 2009, "Curriculum learning", ICML) trains
first on easy examples and lets harder ones in as training goes on. Following Hacohen & Weinshall
2019 ("On the power of curriculum learning in training deep networks", ICML), it has two parts:

- a *scoring function*, the difficulty of every training example: the problem's own
  (``task.difficulty``), or :func:`reference_difficulty`, the out-of-fold loss of a small
  reference model (their "transfer" scoring, with a logistic regression as the teacher);
- a *pacing function*, the fraction of the data, easiest first, that epoch ``e`` draws from:
  :meth:`Curriculum.fraction`, ``"linear"`` (from ``start`` at epoch 0 to 1 at epoch ``epochs``)
  or ``"step"`` (``start`` for ``epochs`` epochs, then 1: Bengio et al.'s two-stage curriculum).

Budget parity: every epoch has as many examples (``n``) and batches as without a curriculum. In
epoch ``e`` the pool is the ``ceil(fraction(e) * n)`` easiest examples (ties broken by index); the
epoch is the pool in the order ``shuffle`` gives, repeated and cut to ``n`` indices. Once the
fraction is 1 the epoch is the plain data order.

``shuffle`` (:data:`SHUFFLES`): ``"epoch"`` draws a new permutation every epoch (PyTorch's
``RandomSampler``, the default), ``"once"`` draws one permutation and reuses it every epoch,
``"none"`` keeps the index order ``0..n-1``. A pool is taken in that order (the examples of the
permutation that are in the pool). Both draw from the task's own seeded generator.

Full batch (``build(seed, batch_size="full")``): the one batch of an epoch
(:class:`WholeBatchSampler`) comes in index order. The order inside one batch carries no
information, but a float sum depends on it (about 1e-7 in the loss of digits-logreg), so sorting
makes full-batch gradient descent bit-identical whatever ``shuffle`` is. An integer batch size
at least the training set's keeps the drawn order, as before ``"full"`` existed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Sampler

__all__ = [
    "PACINGS",
    "SHUFFLES",
    "Curriculum",
    "OrderSampler",
    "WholeBatchSampler",
    "reference_difficulty",
]

SHUFFLES = ("epoch", "once", "none")
PACINGS = ("linear", "step")


@dataclass(frozen=True)
class Curriculum:
    """Train on the easiest examples first, by ``scores`` (one per training example).

    Args:
        scores: 1-d, one finite score per training example; higher = harder.
        start: the fraction of the easiest data used at epoch 0, in (0, 1].
        epochs: epochs until the whole data is used, >= 1.
        pacing: ``"linear"`` (the fraction grows linearly from ``start`` at epoch 0 to 1 at
            epoch ``epochs``) or ``"step"`` (``start`` for the first ``epochs`` epochs, then 1).

    Example:
        >>> plan = Curriculum(torch.arange(8.0), start=0.25, epochs=2)
        >>> [plan.fraction(e) for e in range(3)], plan.pool(0).tolist()
        ([0.25, 0.625, 1.0], [0, 1])
    """

    scores: torch.Tensor
    start: float = 0.25
    epochs: int = 5
    pacing: str = "linear"

    def __post_init__(self) -> None:
        s = self.scores
        if not isinstance(s, torch.Tensor) or s.dim() != 1 or len(s) == 0:
            shape = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
            raise ValueError(f"scores must be a non-empty 1-d tensor, got {shape}")
        if not bool(torch.isfinite(s).all()):
            raise ValueError("scores must be finite, got NaN or infinite values")
        if not 0.0 < self.start <= 1.0:
            raise ValueError(f"start must be in (0, 1], got {self.start}")
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"epochs must be an integer >= 1, got {self.epochs!r}")
        if self.pacing not in PACINGS:
            raise ValueError(f"pacing must be one of {', '.join(PACINGS)}, got {self.pacing!r}")

    def fraction(self, epoch: int) -> float:
        """The fraction of the data, easiest first, that epoch ``epoch`` (from 0) draws from."""
        if epoch >= self.epochs:
            return 1.0
        if self.pacing == "step":
            return self.start
        return self.start + (1.0 - self.start) * epoch / self.epochs

    def pool(self, epoch: int) -> torch.Tensor:
        """The indices of epoch ``epoch``'s pool: the ``ceil(fraction * n)`` lowest scores,
        in score order (ties by index)."""
        n = len(self.scores)
        # round off float noise first, so 0.3 * 10 is a pool of 3, not ceil(3.0000000000000004).
        size = min(n, max(1, math.ceil(round(self.fraction(epoch) * n, 9))))
        return torch.argsort(self.scores, stable=True)[:size]


class OrderSampler(Sampler[int]):
    """One epoch of training indices per ``iter``, in ``shuffle`` order, paced by a curriculum.

    It counts the epochs itself (``epoch``: the next one to draw). Every epoch has ``n`` indices.

    Args:
        n: the number of training examples.
        shuffle: one of :data:`SHUFFLES`.
        generator: draws the permutations (the task's own, so the order is part of the seed).
        curriculum: ``None`` (every epoch is a pass over all examples) or a
            :class:`Curriculum` with ``n`` scores.
    """

    def __init__(
        self,
        n: int,
        *,
        shuffle: str = "epoch",
        generator: torch.Generator,
        curriculum: Curriculum | None = None,
    ) -> None:
        if shuffle not in SHUFFLES:
            raise ValueError(f"shuffle must be one of {', '.join(SHUFFLES)}, got {shuffle!r}")
        if curriculum is not None and len(curriculum.scores) != n:
            raise ValueError(
                f"curriculum scores must have one score per training example ({n}), "
                f"got {len(curriculum.scores)}"
            )
        self.n, self.shuffle, self.generator, self.curriculum = n, shuffle, generator, curriculum
        self.epoch = 0
        self._once = torch.randperm(n, generator=generator) if shuffle == "once" else None

    def __len__(self) -> int:
        return self.n

    def _permutation(self) -> torch.Tensor:
        if self.shuffle == "epoch":
            return torch.randperm(self.n, generator=self.generator)
        if self._once is not None:
            return self._once
        return torch.arange(self.n)

    def __iter__(self) -> Iterator[int]:
        order = self._permutation()
        if self.curriculum is not None:
            member = torch.zeros(self.n, dtype=torch.bool)
            member[self.curriculum.pool(self.epoch)] = True
            pool = order[member[order]]
            order = pool.repeat(math.ceil(self.n / len(pool)))[: self.n]
        self.epoch += 1
        yield from order.tolist()


class WholeBatchSampler(Sampler[list[int]]):
    """One batch per epoch: all the indices ``sampler`` yields for the epoch, sorted.

    ``sampler`` is still iterated once per epoch, so it draws from its generator and counts its
    epochs as it would in smaller batches.
    """

    def __init__(self, sampler: Sampler[int]) -> None:
        self.sampler = sampler

    def __len__(self) -> int:
        return 1

    def __iter__(self) -> Iterator[list[int]]:
        yield sorted(self.sampler)


def reference_difficulty(
    x: torch.Tensor, y: torch.Tensor, *, seed: int = 0, folds: int = 5
) -> torch.Tensor:
    """Per-example difficulty: the out-of-fold cross-entropy of a logistic regression.

    Every example is scored by a ``sklearn`` ``LogisticRegression`` (on the flattened inputs)
    fitted on the other folds (``StratifiedKFold(folds, shuffle=True, random_state=seed)``), so
    an example's own label never helps score it: Hacohen & Weinshall's transfer scoring with a
    small teacher. Deterministic for a seed.

    Args:
        x: inputs, one row per example (any trailing shape; flattened).
        y: a 1-d vector of class labels with integral values (``±1`` floats are fine).
        seed: the shuffle of the folds.
        folds: the number of folds, >= 2, at most the size of the smallest class.

    Returns:
        A float64 tensor of ``len(y)`` losses ``-log p(y_i | x_i)`` (probabilities clipped at
        1e-12, so at most about 27.6); higher = harder.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from threadpoolctl import threadpool_limits

    if y.dim() != 1 or len(y) != len(x):
        raise ValueError(
            "reference_difficulty needs a 1-d vector of class labels, one per example; got "
            f"targets of shape {tuple(y.shape)} for {len(x)} inputs"
        )
    labels = y.detach().cpu().numpy()
    if labels.dtype.kind == "f" and not np.all(np.isfinite(labels) & (labels == np.round(labels))):
        raise ValueError("reference_difficulty needs class labels; got non-integral targets")
    classes, codes, counts = np.unique(labels, return_inverse=True, return_counts=True)
    if len(classes) < 2:
        raise ValueError(f"reference_difficulty needs at least 2 classes, got {len(classes)}")
    if not 2 <= folds <= counts.min():
        raise ValueError(
            f"folds must be in [2, {counts.min()}] (the smallest class's size), got {folds}"
        )
    inputs = x.detach().cpu().reshape(len(x), -1).numpy().astype(np.float64)
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    # One BLAS thread: many threads on a small problem are ~30x slower on a busy machine.
    with threadpool_limits(1):
        proba = cross_val_predict(
            LogisticRegression(max_iter=1000), inputs, codes, cv=cv, method="predict_proba"
        )
    return torch.from_numpy(-np.log(np.clip(proba[np.arange(len(codes)), codes], 1e-12, None)))
