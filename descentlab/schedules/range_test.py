"""The LR range test: train briefly with a growing LR and watch the loss.

References:
    Smith 2017, "Cyclical Learning Rates for Training Neural Networks", section 3.3;
    fastai's ``lr_find`` (bias-corrected smoothing, stop at 4x the best loss, the suggestions);
    the torch-lr-finder package (``LRFinder.range_test``: the LR sequence, ``val_loader``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from ..checks import (
    POSITIVE,
    HyperparameterError,
    Interval,
    check_choice,
    check_int,
    check_number,
)
from ..optim.schedule_free import evaluating
from ._suggest import METHODS, usable

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["LRRangeResult", "lr_range_test"]

Batch = Any


@dataclass(frozen=True)
class LRRangeResult:
    """What an LR range test saw.

    Attributes:
        lrs: the LR of every step taken.
        losses: the smoothed loss after each step (bias-corrected exponential moving average).
        raw_losses: the loss of each step (the training batch's before the update, or the
            validation loss after it when a ``val_loader`` was given).
        diverged_at: the LR at which the test stopped because the loss diverged, else ``None``.
        stop_reason: ``"completed"``, ``"diverged"`` (smoothed loss above ``diverge_factor``
            times the best) or ``"nonfinite"`` (a NaN/inf loss).
        num_steps: the steps asked for (``len(lrs)`` is smaller after an early stop).
        mode: ``"exp"`` or ``"linear"``.
    """

    lrs: list[float]
    losses: list[float]
    raw_losses: list[float]
    diverged_at: float | None
    stop_reason: str
    num_steps: int
    mode: str

    def suggestion(self, method: str = "valley") -> float:
        """A suggested LR, computed as fastai does on the smoothed curve without its first tenth
        (of ``num_steps``), its last 5 points and anything from the first non-finite loss on.

        Methods: ``"steepest"`` (where the loss falls fastest against log LR), ``"valley"``
        (fastai's default: 2/3 into the longest valley) and ``"min/10"`` (a tenth of the LR at the
        lowest loss). Raises ``ValueError`` if fewer than 3 usable points remain.
        """
        check_choice("method", method, METHODS)
        lrs, losses = usable(self.lrs, self.losses, self.num_steps)
        if len(lrs) < 3:
            raise HyperparameterError(
                f"Too few points for a suggestion: {len(lrs)} usable of {len(self.lrs)} taken; "
                "run more steps or start at a lower start_lr"
            )
        return METHODS[method](lrs, losses)

    def suggestions(self) -> dict[str, float]:
        """Every method's suggestion."""
        return {m: self.suggestion(m) for m in METHODS}

    def plot(self, ax: Axes | None = None, *, method: str = "valley") -> Axes:
        """Draw the raw and smoothed loss against the LR and mark ``method``'s suggestion."""
        import matplotlib.pyplot as plt

        if ax is None:
            ax = plt.subplots(figsize=(6, 4))[1]
        ax.plot(self.lrs, self.raw_losses, color="tab:blue", alpha=0.3, label="loss")
        ax.plot(self.lrs, self.losses, color="tab:blue", label="smoothed loss")
        if self.mode == "exp":
            ax.set_xscale("log")
        finite = [x for x in self.losses if math.isfinite(x)]
        best = min(range(len(finite)), key=finite.__getitem__)
        top = 1.25 * max(finite[: best + 1])  # the descent, not the diverged tail
        low = min(x for x in self.raw_losses[: len(finite)] if math.isfinite(x))
        ax.set_ylim(low - 0.05 * (top - low), top)
        lr = self.suggestion(method)
        ax.axvline(lr, color="tab:red", linestyle="--", label=f"{method}: {lr:.3g}")
        if self.diverged_at is not None:
            ax.axvline(self.diverged_at, color="gray", linestyle=":", label="stopped")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        ax.set_title(f"LR range test ({self.stop_reason} after {len(self.lrs)} steps)")
        ax.legend()
        return ax


def _cycle(loader: Iterable[Batch]) -> Iterator[Batch]:
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise HyperparameterError("Invalid train_loader: it yields no batches")


def _to(batch: Batch, device: torch.device) -> tuple[Any, Any]:
    x, y = batch[0], batch[1]
    return x.to(device), y.to(device)


@torch.no_grad()
def _evaluate(model: nn.Module, loss_fn: Callable, loader: Iterable[Batch], device) -> float:
    """Mean loss over ``loader``, each batch weighted by its size (as torch-lr-finder does)."""
    model.eval()
    total, count = 0.0, 0
    for batch in loader:
        x, y = _to(batch, device)
        total += loss_fn(model(x), y).item() * len(y)
        count += len(y)
    if count == 0:
        raise HyperparameterError("Invalid val_loader: it yields no batches")
    return total / count


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr


class _Snapshot:
    """Deep copies of a model's parameters, buffers, gradients and module modes and of an
    optimizer's state and hyperparameters, put back exactly by ``restore``."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self.model, self.optimizer = model, optimizer
        self.weights = copy.deepcopy(model.state_dict())
        self.grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
        self.modes = [m.training for m in model.modules()]
        self.state = copy.deepcopy(optimizer.state_dict())

    def restore(self) -> None:
        self.model.load_state_dict(self.weights)  # copies in place: the optimizer's params stay
        for p, g in zip(self.model.parameters(), self.grads):
            p.grad = g
        for m, mode in zip(self.model.modules(), self.modes):
            m.training = mode
        self.optimizer.load_state_dict(self.state)


def lr_range_test(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[Any, Any], torch.Tensor],
    train_loader: Iterable[Batch],
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    mode: Literal["exp", "linear"] = "exp",
    smooth: float = 0.05,
    diverge_factor: float = 4.0,
    val_loader: Iterable[Batch] | None = None,
) -> LRRangeResult:
    r"""Run the LR range test, then put the model and the optimizer back as they were.

    Step :math:`i = 0, \dots, N-1` trains one batch (``zero_grad``, ``loss_fn(model(x), y)``,
    ``backward``, ``optimizer.step()``) at

    .. math::
        \eta_i = \eta_s (\eta_e / \eta_s)^{i/(N-1)} \text{ (exp) or }
                 \eta_s + (\eta_e - \eta_s)\, i/(N-1) \text{ (linear)}                      \tag{1}

    for every parameter group, and records the batch's loss :math:`\ell_i` (or, with
    ``val_loader``, the mean validation loss after the step). The smoothed loss is the
    bias-corrected moving average (fastai's)

    .. math::
        a_i = (1 - s) a_{i-1} + s \ell_i,\ a_{-1} = 0,\quad \bar\ell_i = a_i / (1 - (1-s)^{i+1}) \tag{2}

    The test stops early, after recording the step, when :math:`\bar\ell_i` exceeds
    ``diverge_factor`` times the lowest :math:`\bar\ell` so far (``"diverged"``) or the loss is
    NaN/inf (``"nonfinite"``). A loader shorter than ``num_steps`` is cycled.

    Afterwards the parameters, buffers (e.g. BatchNorm statistics), gradients and train/eval modes
    of ``model`` and the state and hyperparameters (LRs included) of ``optimizer`` are restored
    from deep copies taken before. The global RNG and the loaders' own generators are not.

    Differences from torch-lr-finder (same LR sequence (1), same loss per step): it smooths with
    :math:`\bar\ell_0 = \ell_0,\ \bar\ell_i = s\ell_i + (1-s)\bar\ell_{i-1}` (no bias correction;
    the two differ by a term that decays as :math:`(1-s)^i`), stops at 5x the best by default,
    never stops on NaN, and leaves restoring to the caller (``reset()``).

    Args:
        model, optimizer, loss_fn: what to train; batches are ``(x, y)`` pairs (more items are
            ignored), moved to the device of the model's first parameter.
        start_lr, end_lr: the LR range, ``0 < start_lr < end_lr``.
        num_steps: steps to take (>= 2).
        mode: ``"exp"`` (the default) or ``"linear"`` growth (1).
        smooth: the weight :math:`s \in (0, 1]` of the new loss in (2); 1 means no smoothing.
        diverge_factor: the stop threshold (> 1).
        val_loader: evaluate the loss on this held-out data after every step instead.

    Returns:
        An :class:`LRRangeResult`.

    Example:
        >>> res = lr_range_test(model, opt, nn.functional.cross_entropy, loader)  # doctest: +SKIP
        >>> res.suggestion("valley"), res.diverged_at                              # doctest: +SKIP
    """
    start_lr = check_number("start_lr", start_lr, POSITIVE)
    end_lr = check_number("end_lr", end_lr, Interval(start_lr, lo_open=True))
    check_int("num_steps", num_steps, Interval(2.0))
    check_choice("mode", mode, ("exp", "linear"))
    beta = 1.0 - check_number("smooth", smooth, Interval(0.0, 1.0, lo_open=True))
    diverge_factor = check_number("diverge_factor", diverge_factor, Interval(1.0, lo_open=True))
    device = next(model.parameters()).device

    lrs: list[float] = []
    losses: list[float] = []
    raw: list[float] = []
    reason, avg, best = "completed", 0.0, math.inf
    batches = _cycle(train_loader)
    snapshot = _Snapshot(model, optimizer)
    try:
        for i in range(num_steps):
            r = i / (num_steps - 1)  # (1), written as torch-lr-finder writes it
            lr = (
                start_lr * (end_lr / start_lr) ** r
                if mode == "exp"
                else start_lr + r * (end_lr - start_lr)
            )
            _set_lr(optimizer, lr)
            model.train()
            x, y = _to(next(batches), device)
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            if val_loader is None:
                value = loss.item()
            else:
                with evaluating(optimizer):  # Schedule-Free's average, where it keeps one
                    value = _evaluate(model, loss_fn, val_loader, device)
            avg = beta * avg + (1.0 - beta) * value  # (2)
            smoothed = avg / (1.0 - beta ** (i + 1))
            lrs.append(lr)
            raw.append(value)
            losses.append(smoothed)
            if not math.isfinite(smoothed):
                reason = "nonfinite"
                break
            best = min(best, smoothed)
            if smoothed > diverge_factor * best:
                reason = "diverged"
                break
    finally:
        snapshot.restore()
    diverged_at = None if reason == "completed" else lrs[-1]
    return LRRangeResult(lrs, losses, raw, diverged_at, reason, num_steps, mode)
