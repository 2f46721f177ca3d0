"""How a task's batches reach its device, and mixed precision for its steps.

* :class:`IndexBatches`: an epoch of ``(x, y)`` batches indexed straight from whole tensors (on
  the task's device) by a batch sampler: no DataLoader, no collation, and on a GPU one copy of
  the epoch's indices instead of a host copy per step.
* :class:`StreamedBatches`: batches gathered on the host (a DataLoader with pinned memory when the
  device is a GPU) and copied with ``non_blocking=True``: for image datasets too big to keep on
  the device.
* :class:`Amp`: ``torch.autocast`` in ``bf16`` or ``fp16``; ``fp16`` scales the loss with a
  ``torch.amp.GradScaler`` (a step whose gradients overflowed is skipped and the scale halved).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler, TensorDataset

__all__ = ["AMP_DTYPES", "Amp", "IndexBatches", "StreamedBatches", "autocast", "backward_step"]

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _base_seed_draw() -> None:
    """The draw of the global generator that a DataLoader makes per epoch (its workers' base
    seed). Batches made without a DataLoader make it too, so that dropout and everything else
    drawing from the global generator sees the numbers it saw with one (release 0.1.0's)."""
    torch.empty((), dtype=torch.int64).random_()


class IndexBatches:
    """One epoch of ``(x[i], y[i])`` per iteration, ``i`` the index lists of ``batches``."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batches: Sampler[list[int]]) -> None:
        self.x, self.y, self.batches = x, y, batches

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        _base_seed_draw()
        epoch = list(self.batches)
        if self.x.device.type == "cpu":
            for i in epoch:
                yield self.x[i], self.y[i]
            return
        flat = torch.tensor([j for i in epoch for j in i], device=self.x.device)
        for i in flat.split([len(i) for i in epoch]):
            yield self.x[i], self.y[i]


class StreamedBatches:
    """One epoch of host batches, each copied to ``device`` without blocking the host."""

    def __init__(
        self, data: TensorDataset, batches: Sampler[list[int]], device: torch.device
    ) -> None:
        pin = device.type == "cuda"
        self.loader = DataLoader(data, sampler=batches, batch_size=None, pin_memory=pin)
        self.device = device

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in self.loader:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


class Amp:
    """Mixed precision for a task's training steps on ``device_type`` (``"bf16"``, ``"fp16"``).

    ``fp16`` keeps its GradScaler across steps (``state_dict`` of the scaler: ``scaler``).
    """

    def __init__(self, device_type: str, precision: str) -> None:
        if precision not in AMP_DTYPES:
            raise ValueError(f"precision: {precision!r}; allowed: {', '.join(AMP_DTYPES)}")
        self.device_type, self.precision = device_type, precision
        self.dtype = AMP_DTYPES[precision]
        self.scaler = torch.amp.GradScaler(device_type) if precision == "fp16" else None

    def autocast(self) -> AbstractContextManager[Any]:
        """The forward pass's context."""
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        """``loss.backward()``, scaled under fp16."""
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """``optimizer.step()``; under fp16 on unscaled gradients, skipped if they overflowed."""
        if self.scaler is None:
            optimizer.step()
        else:
            self.scaler.step(optimizer)

    def update(self) -> None:
        """After a training step's optimizer steps: adapt the loss scale (fp16)."""
        if self.scaler is not None:
            self.scaler.update()


def backward_step(amp: Amp | None, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
    """``loss.backward()`` then ``optimizer.step()``, through ``amp`` when there is one."""
    if amp is None:
        loss.backward()
        optimizer.step()
    else:
        amp.backward(loss)
        amp.step(optimizer)


def autocast(amp: Amp | None) -> AbstractContextManager[Any]:
    """``amp.autocast()``, or nothing in full precision."""
    return nullcontext() if amp is None else amp.autocast()
