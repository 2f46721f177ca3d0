"""What a problem is: ``Problem`` (the description and a factory), ``Task`` (one built instance),
``Budget`` and ``Target``; and ``SupervisedTask``, the task every classification problem shares.

The split of a benchmark into a problem that declares its target and a separate runner follows
AlgoPerf (Dahl et al. 2023, "Benchmarking Neural Network Training Algorithms").
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from torch import nn
from torch.utils.data import BatchSampler, RandomSampler, Sampler, TensorDataset

from ._device import Amp, IndexBatches, StreamedBatches, autocast, backward_step
from ._options import check_option
from .ordering import Curriculum, OrderSampler, WholeBatchSampler

__all__ = [
    "FULL_BATCH",
    "SPLITS",
    "Budget",
    "DrawnEpoch",
    "Kind",
    "MetricFn",
    "Problem",
    "SupervisedTask",
    "Target",
    "Task",
    "accuracy",
    "seeded_generator",
]

Kind = Literal["supervised", "gan", "rl", "lm"]  # lm: drawn (x, y) windows, no fixed set
SPLITS = ("train", "val", "test")
FULL_BATCH = sys.maxsize
"""What :meth:`Problem.build` passes as ``batch_size`` for ``"full"``: a supervised task clamps it
to its number of training examples (one batch per epoch: full-batch gradient descent)."""
MetricFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``(output, target) -> sum over the batch`` (a 0-d tensor); divided by the target count."""


@dataclass(frozen=True)
class Budget:
    """The default training budget: ``epochs`` passes over the training set in ``batch_size``."""

    epochs: int
    batch_size: int


@dataclass(frozen=True)
class Target:
    """Time-to-target: the first epoch at which ``metric`` on ``split`` reaches ``value``."""

    metric: str
    value: float
    higher_is_better: bool
    split: str = "val"

    def reached(self, value: float) -> bool:
        """Whether a measured ``value`` of the metric meets the target (NaN never does)."""
        if math.isnan(value):
            return False
        return value >= self.value if self.higher_is_better else value <= self.value


@runtime_checkable
class Task(Protocol):
    """One built problem: a model, its data and its step, deterministic given the build seed."""

    model: nn.Module
    train_loader: Iterable[Any]

    def param_groups(self) -> dict[str, Iterable[torch.Tensor]]: ...

    def train_step(self, optimizers: Mapping[str, torch.optim.Optimizer], batch: Any) -> float: ...

    def evaluate(self, split: str) -> dict[str, float]: ...

    def epoch_batches(self) -> Iterable[Any]: ...


@dataclass(frozen=True)
class Problem:
    """A named training problem: what it is, where it comes from, its budget and target.

    ``axes`` are the keyword options of :meth:`build` an experiment may vary besides the seed
    (``batch_size`` and ``data_dir`` for every problem, plus the problem's own, such as ``width``).
    """

    name: str
    description: str
    source: str
    kind: Kind
    budget: Budget
    target: Target
    main_metric: str
    higher_is_better: bool
    axes: frozenset[str]
    factory: Callable[..., Task] = field(repr=False, compare=False)

    def build(
        self,
        seed: int,
        *,
        data_dir: str | None = None,
        batch_size: int | str | None = None,
        **options: Any,
    ) -> Task:
        """A fresh task: model initialised and data shuffled from ``seed``.

        ``batch_size`` defaults to the budget's; ``"full"`` (supervised problems only) makes one
        batch of the whole training set (the factory gets :data:`FULL_BATCH`). ``options`` are
        the problem's own axes (for example smaller sizes for tests); an unknown one raises
        ``ValueError`` naming the allowed ones.
        """
        unknown = set(options) - set(self.axes)
        if unknown:
            allowed = ", ".join(sorted(self.axes - {"batch_size", "data_dir"})) or "none"
            raise ValueError(
                f"Problem {self.name!r} has no option {', '.join(sorted(unknown))}; "
                f"its options: {allowed}"
            )
        bs = self.budget.batch_size if batch_size is None else self._batch_size(batch_size)
        if bs < 1:
            raise ValueError(f"batch_size must be >= 1, got {bs}")
        return self.factory(seed, data_dir=data_dir, batch_size=bs, **options)

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Every option is one of the problem's and has a valid value, or a ``ValueError``
        starting with the option's name (``"width: ..."``)."""
        allowed = sorted(self.axes - {"batch_size", "data_dir"})
        for option, value in options.items():
            if option not in allowed:
                raise ValueError(
                    f"{option}: unknown option of {self.name!r}; allowed: "
                    f"{', '.join(allowed) or 'none'}"
                )
            try:
                check_option(option, value)
            except ValueError as e:
                raise ValueError(f"{option}: {e}") from e

    def _batch_size(self, batch_size: int | str) -> int:
        """An integer batch size as given, or :data:`FULL_BATCH` for ``"full"``."""
        if not isinstance(batch_size, str):
            return batch_size
        if batch_size != "full":
            raise ValueError(f"batch_size must be an integer >= 1 or 'full', got {batch_size!r}")
        if self.kind != "supervised":
            raise ValueError(
                f"problem {self.name!r} (kind {self.kind}) cannot take batch_size='full': "
                "only supervised problems have a fixed training set"
            )
        return FULL_BATCH


class DrawnEpoch:
    """An epoch of ``steps`` batches, each made by ``draw()`` when iterated; it has a length.

    The train loader of problems whose data is sampled or played rather than stored (GAN, RL).
    """

    def __init__(self, steps: int, draw: Callable[[], Any]) -> None:
        self.steps, self.draw = steps, draw

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[Any]:
        for _ in range(self.steps):
            yield self.draw()


def seeded_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator on ``device`` seeded with ``seed`` (data order, noise), independent of the
    global one."""
    g = torch.Generator(device)
    g.manual_seed(seed)
    return g


def accuracy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Number of correct arg-max predictions (classes on the last axis of ``output``)."""
    return (output.argmax(-1) == target).sum()


class SupervisedTask:
    """A supervised task on in-memory tensors: minibatch SGD steps and exact evaluation.

    Each split is a pair ``(x, y)``. The training loader draws batches of indices from a
    generator seeded by ``seed`` (so the data order is part of the seed) and indexes the tensors
    directly (no per-example collation, no DataLoader); it reshuffles every epoch unless
    :meth:`set_order` chose another order or a curriculum. :meth:`to` moves the model and the
    data to a device (the order stays drawn on the CPU, so it is the same on every device);
    with ``stream=True`` the data stays on the host and each batch is copied (pinned,
    non-blocking) instead. ``amp`` (an :class:`~descentlab.problems._device.Amp`, set by the
    trial runner) runs the steps in mixed precision. With ``batch_size=FULL_BATCH`` the one batch of an epoch
    comes in index order (see :mod:`descentlab.problems.ordering`). Evaluation runs the model in
    ``eval`` mode without gradients over the whole split and reports ``loss`` (the criterion,
    averaged over all targets), each of ``metrics`` (summed, divided by the number of targets)
    and whatever ``derived`` computes from those (for example bits per character from the loss).

    Args:
        model: the network; its parameters are the single ``"model"`` param group.
        splits: ``{"train": (x, y), "val": (x, y), "test": (x, y)}``.
        criterion: ``loss_fn(output, target)``, a mean over targets.
        seed: seeds the loader's generator (kept as ``generator``).
        batch_size: training batch size (evaluation uses the same size), at most the number of
            training examples; :data:`FULL_BATCH` means all of them, in one sorted batch.
        metrics: per-batch sums, keyed by name; defaults to ``{"accuracy": accuracy}``.
        derived: extra metrics computed from the averaged ones.
        difficulty: the problem's own per-training-example difficulty (higher = harder) for a
            curriculum, or ``None`` (kept as ``difficulty``).
        stream: keep the data on the host on any device (datasets too big for it).
    """

    def __init__(
        self,
        model: nn.Module,
        splits: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
        criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        *,
        seed: int,
        batch_size: int,
        metrics: Mapping[str, MetricFn] | None = None,
        derived: Callable[[dict[str, float]], dict[str, float]] | None = None,
        difficulty: torch.Tensor | None = None,
        stream: bool = False,
    ) -> None:
        missing = set(SPLITS) - set(splits)
        if missing:
            raise ValueError(f"splits lack {', '.join(sorted(missing))}")
        self.model = model
        self.splits = dict(splits)
        self.criterion = criterion
        self._train = TensorDataset(*self.splits["train"])
        n = len(self._train)
        self.batch_size = min(batch_size, n)
        self._full = batch_size >= FULL_BATCH
        self.metrics = dict(metrics) if metrics is not None else {"accuracy": accuracy}
        self.derived = derived
        if difficulty is not None and (difficulty.dim() != 1 or len(difficulty) != n):
            raise ValueError(
                f"difficulty must have one score per training example ({n}), "
                f"got shape {tuple(difficulty.shape)}"
            )
        self.difficulty = difficulty
        self.generator = seeded_generator(seed)
        self.device, self.stream = torch.device("cpu"), stream
        self.amp: Amp | None = None
        self._set_loader(RandomSampler(self._train, generator=self.generator))

    def _set_loader(self, sampler: Sampler[int]) -> None:
        self._sampler = sampler
        if self._full:
            batches: Sampler[list[int]] = WholeBatchSampler(sampler)
        else:
            batches = BatchSampler(sampler, self.batch_size, drop_last=False)
        if self.stream:
            self.train_loader: Iterable[Any] = StreamedBatches(self._train, batches, self.device)
        else:
            self.train_loader = IndexBatches(*self.splits["train"], batches)

    def to(self, device: torch.device) -> SupervisedTask:
        """Move the model (and, unless streaming, every split) to ``device``; returns the task."""
        self.device = torch.device(device)
        self.model.to(self.device)
        if not self.stream:
            self.splits = {
                s: (x.to(self.device), y.to(self.device)) for s, (x, y) in self.splits.items()
            }
        self._set_loader(self._sampler)
        return self

    @property
    def examples_per_epoch(self) -> int:
        """The number of training examples (every order and curriculum keeps it per epoch)."""
        return len(self._train)

    def set_order(self, *, shuffle: str = "epoch", curriculum: Curriculum | None = None) -> None:
        """Choose the order of the training examples; rebuilds ``train_loader``.

        ``shuffle`` is one of :data:`~descentlab.problems.ordering.SHUFFLES` (``"epoch"``:
        reshuffle every epoch, ``"once"``: one permutation reused, ``"none"``: index order);
        ``curriculum`` starts from the easiest examples (see
        :class:`~descentlab.problems.ordering.Curriculum`). Epoch length and batch size stay the
        same; the orders are drawn from the task's generator, and the defaults give exactly the
        order the task had when built.
        """
        n = len(self._train)
        if shuffle == "epoch" and curriculum is None:
            sampler: Sampler[int] = RandomSampler(self._train, generator=self.generator)
        else:
            sampler = OrderSampler(
                n, shuffle=shuffle, generator=self.generator, curriculum=curriculum
            )
        self._set_loader(sampler)

    def param_groups(self) -> dict[str, Iterable[torch.Tensor]]:
        """The parameters of the one optimizer this task needs."""
        return {"model": self.model.parameters()}

    def epoch_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of ``(x, y)`` batches, reshuffled by the task's generator."""
        return iter(self.train_loader)

    def train_step(
        self,
        optimizers: Mapping[str, torch.optim.Optimizer],
        batch: tuple[torch.Tensor, torch.Tensor],
    ) -> float:
        """zero_grad, loss, backward, step; returns the batch's training loss."""
        opt = optimizers["model"]
        x, y = batch
        if not self.model.training:  # train() walks every module: 0.2 ms a step on an MLP
            self.model.train()
        opt.zero_grad(set_to_none=True)
        with autocast(self.amp):
            loss = self.criterion(self.model(x), y)
        backward_step(self.amp, loss, opt)
        if self.amp is not None:
            self.amp.update()
        return float(loss.detach())

    @torch.no_grad()
    def evaluate(self, split: str) -> dict[str, float]:
        """``loss`` and the metrics on a whole split (``"train"``, ``"val"`` or ``"test"``)."""
        if split not in self.splits:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        x, y = self.splits[split]
        was_training = self.model.training
        self.model.eval()
        loss, sums, count = 0.0, dict.fromkeys(self.metrics, 0.0), 0
        for i in range(0, len(x), self.batch_size):
            xb, yb = x[i : i + self.batch_size], y[i : i + self.batch_size]
            xb, yb = xb.to(self.device, non_blocking=True), yb.to(self.device, non_blocking=True)
            with autocast(self.amp):
                out = self.model(xb)
                batch_loss = self.criterion(out, yb)
            n = yb.numel()
            loss += float(batch_loss) * n
            for name, fn in self.metrics.items():
                sums[name] += float(fn(out, yb))
            count += n
        self.model.train(was_training)
        result = {"loss": loss / count, **{k: v / count for k, v in sums.items()}}
        if self.derived is not None:
            result.update(self.derived(result))
        return result
