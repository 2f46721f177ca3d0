"""The report's figures (matplotlib, Agg backend: no display needed), one PNG each.

Every figure reduces over seeds: lines are means, bands and whiskers the interquartile range.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from ._data import Group, band, performance_profile, stats

if TYPE_CHECKING:
    from ._noise import Noise

__all__ = [
    "colors",
    "cost_figure",
    "gap_figure",
    "learning_curves",
    "noise_figure",
    "profile_figure",
    "search_figure",
    "target_figure",
]


def colors(labels: list[str]) -> dict[str, tuple]:
    """One stable colour per optimizer label."""
    cmap = plt.get_cmap("tab20" if len(labels) > 10 else "tab10")
    return {label: cmap(i % cmap.N) for i, label in enumerate(labels)}


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _smooth(row: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or row.size < window:
        return row
    kernel = np.ones(window) / window
    return np.convolve(row, kernel, mode="valid")


def learning_curves(groups: Mapping[str, Group], palette: dict, path: Path) -> Path:
    """Train loss per step, test loss and test main metric per epoch: mean and IQR band."""
    first = next(iter(groups.values()))
    metric = first.main_metric
    panels = [
        ("train", "step_loss", "step", "train loss (per step, smoothed)"),
        ("train", "loss", "epoch", "train loss (full split, per epoch)"),
        ("test", "loss", "epoch", "test loss"),
        # where the loss is the metric, the validation loss instead of the same panel twice
        ("val", "loss", "epoch", "validation loss")
        if metric == "loss"
        else ("test", metric, "epoch", f"test {metric}"),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(11.0, 7.5))
    for ax, (split, name, unit, title) in zip(axes.flat, panels):
        shown = []
        for label, g in groups.items():
            rows = g.curve(split, name)
            if rows.size == 0:
                continue
            window = max(1, rows.shape[1] // 50) if unit == "step" else 1
            if window > 1:
                rows = np.array([_smooth(r, window) for r in rows])
            mean, q1, q3 = band(rows)
            x = np.arange(mean.size) + (window if unit == "step" else 0)
            ax.plot(x, mean, color=palette[label], label=label, lw=1.4)
            ax.fill_between(x, q1, q3, color=palette[label], alpha=0.2, lw=0)
            shown.append(mean[1:])
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(unit)
        if name.endswith("loss"):
            ax.set_yscale("log")
        elif shown and first.higher_is_better:  # zoom on the trained range, not epoch 0
            values = np.concatenate(shown)
            values = values[np.isfinite(values)]
            if values.size:
                lo, hi = np.percentile(values, [5, 100])
                ax.set_ylim(lo - 0.05 * (hi - lo + 1e-12), hi + 0.02 * (hi - lo + 1e-12))
    title = f"{first.problem}: mean over seeds, band = interquartile range"
    return _legend_right(fig, axes.flat[0], title, path, 0.84)


def _legend_right(fig: plt.Figure, ax: plt.Axes, title: str, path: Path, width: float) -> Path:
    """Title the figure, put ``ax``'s legend on its right and save it."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, width, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def cost_figure(groups: Mapping[str, Group], palette: dict, path: Path) -> Path:
    """Train loss (full split, per epoch) against steps, examples seen and training seconds.

    What a batch size buys: fewer, costlier steps. The x positions are each epoch's step and
    example counts (from the runs' summaries) and the mean cumulative training seconds.
    """
    first = next(iter(groups.values()))
    titles = ["optimizer steps", "examples seen", "training seconds"]
    fig, axes = plt.subplots(1, 3, figsize=(13.0, 3.8))
    for label, g in groups.items():
        rows = g.curve("train", "loss")
        if rows.size == 0:
            continue
        mean, q1, q3 = band(rows)
        epochs = np.arange(mean.size)
        seconds = band(g.curve("time", "train_seconds"))[0]
        xs = [epochs * g.steps_per_epoch, epochs * g.examples_per_epoch, seconds[: mean.size]]
        for ax, x in zip(axes, xs):
            ax.plot(x, mean, color=palette[label], label=label, lw=1.4)
            ax.fill_between(x, q1, q3, color=palette[label], alpha=0.2, lw=0)
    for ax, title in zip(axes, titles):
        ax.set_xlabel(title)
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_yscale("log")
        ax.set_title(f"train loss against {title}", fontsize=10)
    title = f"{first.problem}: the cost of a step (mean over seeds, IQR band)"
    return _legend_right(fig, axes[0], title, path, 0.82)


def gap_figure(groups: Mapping[str, Group], palette: dict, path: Path) -> Path:
    """Generalization gap per optimizer: train minus test main metric, test minus train loss.

    Bars are medians over seeds, whiskers the interquartile range.
    """
    first = next(iter(groups.values()))
    metric = first.main_metric
    labels = list(groups)
    x = np.arange(len(labels))
    panels = [
        ("train", "test", metric, f"train − test {metric}"),
        ("test", "train", "loss", "test − train loss"),
    ]
    fig, axes = plt.subplots(1, 2, figsize=(max(8.0, 0.9 * len(labels) + 3), 3.8))
    for ax, (a, b, name, title) in zip(axes, panels):
        s = [
            stats([u - v for u, v in zip(groups[k].final(a, name), groups[k].final(b, name))])
            for k in labels
        ]
        med = np.array([v.median for v in s])
        err = np.array([[v.median - v.q1 for v in s], [v.q3 - v.median for v in s]])
        ax.bar(x, med, 0.7, yerr=err, color=[palette[k] for k in labels], capsize=2)
        ax.axhline(0.0, color="black", lw=0.6)
        ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=8)
        ax.set_title(f"{title} (median, IQR)", fontsize=10)
    fig.suptitle(f"{first.problem}: generalization gap at the end of training", fontsize=10)
    return _save(fig, path)


def search_figure(
    searches: Mapping[str, list[tuple[float, float]]], metric: str, palette: dict, path: Path
) -> Path:
    """The learning-rate search: final validation metric against the learning rate, per optimizer.

    Diverged or failed settings are drawn as crosses at the bottom of the plot.
    """
    fig, ax = plt.subplots(figsize=(7.5, 4.0))
    finite = [v for runs in searches.values() for _, v in runs if math.isfinite(v)]
    floor = min(finite, default=0.0)
    for label in sorted(searches, key=lambda k: list(palette).index(k) if k in palette else 0):
        runs = searches[label]
        lrs = [lr for lr, _ in runs]
        scores = [v for _, v in runs]
        ax.plot(lrs, scores, "o-", color=palette.get(label), label=label, lw=1.2, ms=4)
        bad = [lr for lr, v in runs if not math.isfinite(v)]
        ax.plot(bad, [floor] * len(bad), "x", color=palette.get(label), ms=7)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel(f"final validation {metric} (tuning seed)")
    ax.set_title("Learning-rate search (x: diverged)", fontsize=10)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return _save(fig, path)


def target_figure(problems: Mapping[str, Mapping[str, Group]], palette: dict, path: Path) -> Path:
    """Median epochs to reach each problem's target; a miss (infinite) is drawn as 'miss'."""
    fig, axes = plt.subplots(
        1,
        len(problems),
        figsize=(4.5 * len(problems), 0.35 * max(map(len, problems.values())) + 1.6),
    )
    axes = np.atleast_1d(axes)
    for ax, (problem, groups) in zip(axes, problems.items()):
        labels = list(groups)
        med = [groups[label].median_epochs_to_target() for label in labels]
        misses = [sum(map(math.isinf, groups[label].epochs_to_target())) for label in labels]
        finite = [m for m in med if math.isfinite(m)]
        top = max(finite, default=1.0) * 1.15
        y = np.arange(len(labels))
        ax.barh(
            y,
            [m if math.isfinite(m) else top for m in med],
            color=[
                palette[label] if math.isfinite(m) else "white" for label, m in zip(labels, med)
            ],
            edgecolor="black",
            lw=0.5,
        )
        for yi, m, k in zip(y, med, misses):
            note = "miss" if not math.isfinite(m) else f"{m:g}"
            ax.text(min(m, top), yi, f" {note} ({k} missed)", va="center", fontsize=7)
        ax.set_xlim(0, top * 1.7)  # room for the notes
        ax.set_yticks(y, labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("epochs to target (median over seeds)")
        ax.set_title(problem, fontsize=10)
    return _save(fig, path)


def profile_figure(costs: Mapping[str, Mapping[str, float]], palette: dict, path: Path) -> Path:
    """Dolan & Moré performance profile of epochs-to-target across problems."""
    finite = [c for per in costs.values() for c in per.values() if math.isfinite(c)]
    worst = max((c / min(finite) for c in finite), default=2.0) if finite else 2.0
    taus = np.geomspace(1.0, max(2.0, worst * 1.5), 200)
    rho = performance_profile(costs, taus)
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    solvers = sorted(rho, key=list(palette).index if set(rho) <= set(palette) else str)
    styles = ("-", "--", ":", "-.")
    for i, solver in enumerate(solvers):
        # equal profiles would hide each other: a small vertical offset and line styles show all
        offset = 0.006 * (i - (len(solvers) - 1) / 2)
        ax.step(
            taus,
            rho[solver] + offset,
            where="post",
            color=palette.get(solver),
            ls=styles[i % len(styles)],
            label=solver,
            lw=1.4,
        )
    ax.set_xscale("log", base=2)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("tau: within this factor of the fastest optimizer")
    ax.set_ylabel("fraction of problems (lines offset slightly)")
    ax.set_title(f"Performance profile over {len(costs)} problem(s): epochs to target", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def noise_figure(noises: Mapping[str, Noise], palette: dict, path: Path) -> Path:
    """Per problem, each optimizer's median test metric and IQR in every search (one marker
    per tuning seed): a ranking the searches reverse is within tuning noise."""
    markers = ("o", "s", "^", "D", "v")
    cols = min(3, len(noises))
    rows = math.ceil(len(noises) / cols)
    height = 0.4 * max(len(n.labels) for n in noises.values()) + 1.4
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, height * rows), squeeze=False)
    for ax in axes.flat[len(noises) :]:
        ax.set_visible(False)
    for ax, (problem, noise) in zip(axes.flat, noises.items()):
        y = np.arange(len(noise.labels))
        spread = 0.25 * (len(noise.seeds) > 1)
        for i, groups in enumerate(noise.groups):
            shift = spread * (i / max(1, len(noise.seeds) - 1) - 0.5) * 2
            for yi, label in zip(y, noise.labels):
                m = stats(groups[label].final("test", groups[label].main_metric))
                if not math.isfinite(m.median):
                    continue
                ax.errorbar(
                    m.median, yi + shift, xerr=[[m.median - m.q1], [m.q3 - m.median]],
                    fmt=markers[i % len(markers)], color=palette.get(label), ms=5, capsize=2,
                    lw=1,
                )  # fmt: skip
        first = next(iter(noise.groups[0].values()))
        ax.set_yticks(y, noise.labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel(f"test {first.main_metric} ({'higher' if first.higher_is_better else 'lower'}"
                      " is better)", fontsize=8)  # fmt: skip
        ax.set_title(problem.replace("[", "\n["), fontsize=9)  # options on a line of their own
        ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    handles = [
        plt.Line2D(
            [], [], color="black", marker=markers[i % len(markers)], ls="", label=f"tuning seed {s}"
        )
        for i, s in enumerate(next(iter(noises.values())).seeds)
    ]
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), fontsize=8, frameon=False)
    fig.suptitle("Median and IQR over seeds of each search's best setting", fontsize=10, y=1.04)
    return _save(fig, path)
