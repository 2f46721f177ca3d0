"""The full-data loss of a model and its parameters as one list, shared by the diagnostics."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

__all__ = ["Batches", "LossFn", "evaluation", "full_loss", "second_order", "trainable"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


def trainable(model: nn.Module) -> list[nn.Parameter]:
    """The parameters that require gradients, in ``model.parameters()`` order."""
    return [p for p in model.parameters() if p.requires_grad]


def full_loss(model: nn.Module, loss_fn: LossFn, loader: Batches) -> torch.Tensor:
    """The mean loss over every example of ``loader`` (batch losses weighted by batch size).

    ``loss_fn(model(x), y)`` must return the batch mean (PyTorch's default ``reduction="mean"``).
    The result keeps its graph, so it can be differentiated (twice).
    """
    total, count = None, 0
    for x, y in loader:
        n = len(x) if x.dim() else 1
        term = loss_fn(model(x), y) * n
        total = term if total is None else total + term
        count += n
    if total is None:
        raise ValueError("the loader yielded no batches")
    return total / count


def second_order() -> Any:
    """Attention through the math kernel, which has a second derivative (torch's fused CPU
    attention has none: a Hessian-vector product of a transformer would raise)."""
    return sdpa_kernel([SDPBackend.MATH])


@contextmanager
def evaluation(model: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Eval mode (no dropout, frozen batch-norm statistics), :func:`second_order` attention, and
    the parameters restored afterwards.

    Yields copies of the trainable parameters' values as they were on entry.
    """
    was_training = model.training
    saved = [p.detach().clone() for p in trainable(model)]
    model.eval()
    try:
        with second_order():
            yield saved
    finally:
        with torch.no_grad():
            for p, s in zip(trainable(model), saved):
                p.copy_(s)
        model.train(was_training)
