"""Track effective learning rates, update-to-weight ratios and gradient norms during training.

``track(optimizer)`` hooks the optimizer's step (``register_step_pre_hook`` and
``register_step_post_hook``), so it works in any training loop, with any torch optimizer, and
records per parameter tensor and step. The effective learning rates come from the optimizer's
state (:mod:`._effective_lr`); for optimizers it does not know, they are NaN and the rest is still
recorded.

References: Luo et al. 2019 (AdaBound's bounds), Keskar & Socher 2017 (SWATS's switch); the
update-to-weight ratio as a health check is from Karpathy's CS231n notes ("ratio of weights:updates").
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ._effective_lr import effective_lr

__all__ = ["METRICS", "Record", "Tracker", "track"]


@dataclass(frozen=True)
class Record:
    """One parameter tensor after one step.

    ``lr_*`` summarize the per-element effective learning rate (NaN when unknown; the median of
    a tensor with more than 16384 elements is that of an evenly strided subsample);
    ``lower``/``upper`` are AdaBound's bounds (NaN otherwise); ``phase`` is SWATS's
    (``"adam"``/``"sgd"``; empty otherwise).
    """

    step: int
    name: str
    grad_norm: float
    update_norm: float
    param_norm: float
    update_ratio: float
    lr_mean: float
    lr_median: float
    lr_min: float
    lr_max: float
    lower: float = math.nan
    upper: float = math.nan
    phase: str = ""


METRICS = {
    "lr": "effective learning rate (log scale)",
    "update_ratio": "‖Δp‖ / ‖p‖ (dimensionless; log scale)",
    "grad_norm": "‖g‖ (loss units per parameter unit; log scale)",
}

_NAN4 = torch.full((4,), math.nan)
MEDIAN_SAMPLE = 1 << 14


def _median(flat: torch.Tensor) -> torch.Tensor:
    """The median; above :data:`MEDIAN_SAMPLE` elements, that of an evenly strided subsample.

    An exact median sorts the tensor, the one costly part of tracking a large layer.
    """
    if flat.numel() > MEDIAN_SAMPLE:
        flat = flat[:: -(-flat.numel() // MEDIAN_SAMPLE)]
    return flat.median()


class Tracker:
    """Records per parameter tensor and step; attach it with :func:`track`.

    Attributes:
        records: the :class:`Record` list, in step order.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        names: dict[torch.Tensor, str] | None = None,
        every: int = 1,
    ) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.optimizer = optimizer
        self.every = every
        self.records: list[Record] = []
        self._names = {id(p): n for p, n in (names or {}).items()}
        self._steps = 0
        self._before: dict[int, torch.Tensor] | None = None
        self._handles: list[Any] = []

    # ------------------------------------------------------------ hooks
    def attach(self) -> Tracker:
        """Register the step hooks (idempotent)."""
        if not self._handles:
            self._handles = [
                self.optimizer.register_step_pre_hook(self._pre),
                self.optimizer.register_step_post_hook(self._post),
            ]
        return self

    def detach(self) -> None:
        """Remove the hooks; the records stay."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self) -> Tracker:
        return self.attach()

    def __exit__(self, *exc: object) -> None:
        self.detach()

    def _name(self, gi: int, pi: int, p: torch.Tensor) -> str:
        return self._names.get(id(p), f"group{gi}.param{pi}")

    def _pre(self, optimizer, args, kwargs) -> None:
        self._steps += 1
        if self._steps % self.every:
            self._before = None
            return
        self._before = {
            id(p): p.detach().clone() for g in optimizer.param_groups for p in g["params"]
        }

    @torch.no_grad()
    def _post(self, optimizer, args, kwargs) -> None:
        if self._before is None:
            return
        meta, params, rates = [], [], []
        for gi, group in enumerate(optimizer.param_groups):
            for pi, p in enumerate(group["params"]):
                if p.grad is None or id(p) not in self._before:
                    continue
                rate, extra = effective_lr(optimizer, group, p)
                params.append(p)
                rates.append(rate)
                meta.append((self._name(gi, pi, p), extra))
        before, self._before = self._before, None
        if not params:
            return
        detached = [p.detach() for p in params]
        deltas = torch._foreach_sub(detached, [before[id(p)] for p in params])
        norms = [
            torch.stack(torch._foreach_norm(ts)).float()
            for ts in ([p.grad for p in params], deltas, detached)
        ]
        stats = []
        for i, rate in enumerate(rates):
            if rate is None:
                lr4 = _NAN4.to(params[i].device)
            else:
                flat = rate.reshape(-1).float()
                lr4 = torch.stack((flat.mean(), _median(flat), flat.min(), flat.max()))
            stats.append(torch.cat((torch.stack([n[i] for n in norms]), lr4.to(norms[0]))))
        for (name, extra), v in zip(meta, torch.stack(stats).cpu().tolist()):  # one host sync
            g, u, w = v[:3]
            ratio = u / w if w > 0 else math.nan
            self.records.append(Record(self._steps, name, g, u, w, ratio, *v[3:], **extra))

    # ------------------------------------------------------------ reading
    def rows(self) -> list[dict[str, Any]]:
        """The records as dicts (for a results table or a CSV writer)."""
        return [asdict(r) for r in self.records]

    def names(self) -> list[str]:
        """The parameter names recorded, in first-seen order."""
        return list(dict.fromkeys(r.name for r in self.records))

    def series(self, field: str, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(steps, values)`` of one :class:`Record` field for parameter ``name``."""
        rs = [r for r in self.records if r.name == name]
        return np.array([r.step for r in rs]), np.array([getattr(r, field) for r in rs])

    def switch_steps(self) -> dict[str, int]:
        """SWATS: the first step each parameter was recorded in the SGD phase."""
        out: dict[str, int] = {}
        for r in self.records:
            if r.phase == "sgd":
                out.setdefault(r.name, r.step)
        return out

    def plot(
        self,
        path: str | Path,
        *,
        metrics: Sequence[str] = tuple(METRICS),
        names: Iterable[str] | None = None,
        title: str | None = None,
    ) -> Path:
        """One panel per metric, one line per parameter tensor (layer) over training.

        The ``lr`` panel draws the median with a min-max band, AdaBound's bounds (dashed) and
        SWATS's switch (a dotted vertical line). Returns the path written.
        """
        from ..viz._figure import pyplot, save

        plt = pyplot()
        unknown = [m for m in metrics if m not in METRICS]
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; known: {', '.join(METRICS)}")
        shown = list(names) if names is not None else self.names()
        fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4), squeeze=False)
        switches = self.switch_steps()
        for ax, metric in zip(axes[0], metrics):
            for name in shown:
                if metric == "lr":
                    steps, med = self.series("lr_median", name)
                    (line,) = ax.plot(steps, med, label=f"{name} (median)")
                    lo, hi = self.series("lr_min", name)[1], self.series("lr_max", name)[1]
                    ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.2)
                    for bound in ("lower", "upper"):
                        s, b = self.series(bound, name)
                        if np.isfinite(b).any():
                            ax.plot(s, b, "--", color=line.get_color(), lw=0.8)
                    if name in switches:
                        ax.axvline(switches[name], ls=":", color=line.get_color())
                else:
                    ax.plot(*self.series(metric, name), label=name)
            ax.set_yscale("log")
            ax.set_xlabel("step")
            ax.set_ylabel(METRICS[metric])
            ax.set_title(METRICS[metric].split(" (")[0])
            ax.legend(fontsize="x-small")
        if any(np.isfinite(self.series("lower", n)[1]).any() for n in shown) and "lr" in metrics:
            axes[0][list(metrics).index("lr")].plot([], [], "k--", lw=0.8, label="AdaBound bounds")
        if switches and "lr" in metrics:
            axes[0][list(metrics).index("lr")].plot([], [], "k:", label="SWATS switch")
        if "lr" in metrics:
            axes[0][list(metrics).index("lr")].legend(fontsize="x-small")
        fig.suptitle(title or f"Tracked {type(self.optimizer).__name__}: per parameter tensor")
        fig.tight_layout()
        return save(fig, path)


def track(
    optimizer: torch.optim.Optimizer,
    *,
    model: nn.Module | None = None,
    names: dict[torch.Tensor, str] | None = None,
    every: int = 1,
) -> Tracker:
    """Start tracking ``optimizer``'s steps; returns the attached :class:`Tracker`.

    Args:
        optimizer: any ``torch.optim.Optimizer`` (descentlab's, torch's, a Lookahead wrapper...).
        model: names the parameters with ``model.named_parameters()`` (else ``group0.param1``...).
        names: an explicit ``{parameter: name}`` map instead.
        every: record every ``every``-th step only (the others cost nothing).

    Use it as a context manager (the hooks are removed on exit) or keep it attached::

        with track(optimizer, model=model) as tracker:
            for x, y in loader:
                optimizer.zero_grad(); loss_fn(model(x), y).backward(); optimizer.step()
        tracker.plot("effective_lr.png")

    Overhead: one copy of the parameters before each recorded step, a few reductions per
    tensor after it, and one host synchronization (see ``benchmarks/track_overhead.py``).
    """
    if names is None and model is not None:
        names = {p: n for n, p in model.named_parameters()}
    return Tracker(optimizer, names=names, every=every).attach()
