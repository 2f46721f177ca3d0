"""The edge of stability on digits: GD's sharpness hovers at 2/eta, Adam's preconditioned at 38/eta.

Full-batch training of a tanh MLP with the square loss, as Cohen et al. 2021 (their section 3
uses tanh and ReLU networks, square and cross-entropy losses, on a 5,000-example CIFAR-10
subset), on ``n_train`` examples of scikit-learn's digits (:mod:`descentlab.problems.digits`).
Gradient descent runs at each of ``gd_lrs`` and Adam (beta1 = 0.9, beta2 = 0.999) at each of
``adam_lrs`` on every seed, with :func:`~descentlab.diagnostics.track_stability` measuring every
``every`` steps. The plateau of a run is the median of the tracked quantity over its last
``tail`` fraction of measurements. The table gives, per optimizer and learning rate, the
prediction (``theory``: 2/eta for lambda_max(H) under GD, Cohen et al. 2021;
(2 + 2 beta1)/((1 - beta1) eta) = 38/eta for lambda_max(P^-1 H) under Adam, Cohen et al. 2022),
the median and IQR of the plateaus over the seeds (``plateau``, ``IQR``), their ratio to the
prediction, the median plateau of lambda_max(H) itself and the median final training loss.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..diagnostics import DINH_NOTE, track_stability
from ..optim import create
from ..problems.digits import digits_splits
from ..viz._figure import pyplot, save
from .tables import median_iqr

__all__ = [
    "EdgeOfStability",
    "StabilityRun",
    "edge_of_stability",
    "plot_edge_of_stability",
    "square_loss",
]


def square_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``0.5 ||output - one_hot(target)||^2``, summed over classes, averaged over examples."""
    onehot = nn.functional.one_hot(target, output.shape[-1]).to(output.dtype)
    return 0.5 * (output - onehot).pow(2).sum(-1).mean()


@dataclass(frozen=True)
class StabilityRun:
    """One training run: the measurements after every ``every`` steps.

    ``tracked`` is lambda_max(H) for GD and lambda_max(P^-1 H) for Adam; ``sharpness`` is
    lambda_max(H) for both; ``diverged`` is the step at which the loss stopped being finite.
    """

    optimizer: str
    lr: float
    seed: int
    threshold: float
    steps: np.ndarray
    loss: np.ndarray
    sharpness: np.ndarray
    tracked: np.ndarray
    diverged: int | None = None


@dataclass(frozen=True)
class EdgeOfStability:
    """The table (one row per optimizer and learning rate), the runs and the settings."""

    rows: list[dict[str, Any]]
    runs: list[StabilityRun] = field(repr=False)
    settings: dict[str, Any]


def _mlp(width: int, seed: int) -> nn.Module:
    with torch.random.fork_rng():  # the global generator is left as it was
        torch.manual_seed(seed)
        return nn.Sequential(
            nn.Linear(64, width),
            nn.Tanh(),
            nn.Linear(width, width),
            nn.Tanh(),
            nn.Linear(width, 10),
        )


def _run(
    name: str,
    lr: float,
    seed: int,
    data: list[tuple[torch.Tensor, torch.Tensor]],
    *,
    width: int,
    steps: int,
    every: int,
) -> StabilityRun:
    model = _mlp(width, seed)
    hparams = {"betas": (0.9, 0.999)} if name == "adam" else {}
    opt = create(name, model.parameters(), lr=lr, impl="forloop", **hparams)
    (x, y), diverged = data[0], None
    with track_stability(opt, model, square_loss, data, every=every) as tracker:
        for step in range(1, steps + 1):
            opt.zero_grad(set_to_none=True)
            loss = square_loss(model(x), y)
            if not math.isfinite(float(loss.detach())):
                diverged = step
                break
            loss.backward()
            opt.step()
    rec = tracker.records
    sharp = np.array([r.sharpness for r in rec])
    return StabilityRun(
        name,
        lr,
        seed,
        rec[0].threshold if rec else math.nan,
        np.array([r.step for r in rec]),
        np.array([r.loss for r in rec]),
        sharp,
        np.array([r.preconditioned for r in rec]) if name == "adam" else sharp,
        diverged,
    )


def edge_of_stability(
    *,
    gd_lrs: Sequence[float] = (0.2, 0.4),
    adam_lrs: Sequence[float] = (2e-3, 4e-3),
    seeds: int = 3,
    steps: int = 1200,
    every: int = 20,
    n_train: int = 1000,
    width: int = 100,
    tail: float = 0.5,
) -> EdgeOfStability:
    """Train full-batch GD and Adam on digits and compare the sharpness plateaus with theory.

    Args:
        gd_lrs, adam_lrs: the learning rates (GD: descentlab's ``sgd``; Adam: ``adam`` with
            beta1 = 0.9, beta2 = 0.999, eps = 1e-8).
        seeds: runs per learning rate (seeds 0, 1, ...: the initialisation).
        steps, every: full-batch steps per run, and steps between measurements.
        n_train, width: the first ``n_train`` training digits; the MLP 64-width-width-10 (tanh).
        tail: the fraction of measurements at the end of a run that makes its plateau.
    """
    if not 0 < tail <= 1 or seeds < 1 or every > steps:
        raise ValueError(
            f"need 0 < tail <= 1, seeds >= 1 and every <= steps; got tail={tail}, "
            f"seeds={seeds}, every={every}, steps={steps}"
        )
    x, y = digits_splits(n_train=n_train)["train"]
    data = [(x, y)]
    runs, rows = [], []
    for name, lrs, what in (
        ("sgd", gd_lrs, "GD λmax(H)"),
        ("adam", adam_lrs, "Adam λmax(P⁻¹H)"),
    ):
        for lr in lrs:
            group = [
                _run(name, lr, s, data, width=width, steps=steps, every=every) for s in range(seeds)
            ]
            runs += group
            plateaus, raw = [], []
            for r in group:
                keep = r.steps > (1 - tail) * steps
                plateaus.append(float(np.median(r.tracked[keep])) if keep.any() else math.nan)
                raw.append(float(np.median(r.sharpness[keep])) if keep.any() else math.nan)
            med, iqr = median_iqr(plateaus)
            threshold = group[0].threshold
            rows.append(
                {
                    "tracked": what,
                    "lr": lr,
                    "theory": threshold,
                    "plateau": med,
                    "IQR": iqr,
                    "ratio": med / threshold,
                    "λmax(H)": median_iqr(raw)[0],
                    "loss": median_iqr([r.loss[-1] for r in group])[0],
                }
            )
    settings = {
        "data": f"digits, first {n_train} training examples, full batch",
        "model": f"MLP 64-{width}-{width}-10, tanh, square loss",
        "steps": steps,
        "every": every,
        "seeds": seeds,
        "tail": tail,
    }
    return EdgeOfStability(rows, runs, settings)


def plot_edge_of_stability(result: EdgeOfStability, path: str | Path) -> Path:
    """Sharpness over training against the threshold: GD (left), Adam preconditioned (right).

    One line per run (colour per learning rate), the threshold dashed; the train loss below.
    """
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 6.5), sharex=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    panels = (("sgd", "GD", "λmax(H)"), ("adam", "Adam (β1 = 0.9)", "λmax(P⁻¹H)"))
    for col, (name, label, what) in enumerate(panels):
        ax, ax_loss = axes[0][col], axes[1][col]
        lrs = list(dict.fromkeys(r.lr for r in result.runs if r.optimizer == name))
        for i, lr in enumerate(lrs):
            colour = colours[i % len(colours)]
            group = [r for r in result.runs if r.optimizer == name and r.lr == lr]
            for j, r in enumerate(group):
                lab = f"η = {lr:g}" if j == 0 else None
                ax.plot(r.steps, r.tracked, color=colour, lw=0.9, alpha=0.8, label=lab)
                ax_loss.plot(r.steps, r.loss, color=colour, lw=0.9, alpha=0.8)
            rule = "2/η" if name == "sgd" else "38/η"
            ax.axhline(
                group[0].threshold,
                color=colour,
                ls="--",
                lw=1,
                label=f"{rule} = {group[0].threshold:.4g}",
            )
        ax.set_title(f"{label}: {what} against its threshold")
        ax.set_ylabel(f"{what} (top eigenvalue)")
        ax.legend(fontsize="x-small")
        ax_loss.set_yscale("log")
        ax_loss.set_xlabel("full-batch step")
        ax_loss.set_ylabel("train loss (square loss, log scale)")
    fig.suptitle(
        "Edge of stability (Cohen et al. 2021, 2022): "
        f"{result.settings['model']}, {result.settings['data']}\n" + textwrap.fill(DINH_NOTE, 130),
        fontsize="small",
    )
    fig.tight_layout()
    return save(fig, path)
