"""Flat vs sharp minima measured fairly: at equal training loss, Keskar's batch sizes, Dinh's guard.

1. **Equal loss.** SGDM and Adam train a problem of the lab (default digits-mlp, batch 32) and
   their sharpness (top Hessian eigenvalue, Keskar et al.'s epsilon-sharpness) is measured where
   each run's full training loss first falls to each of ``levels``
   (:func:`~descentlab.diagnostics.sharpness_at_levels`). Comparing final points instead
   confounds curvature with fit: the lab's tuned SGDM stops at train loss 0.052 and Adam at
   0.0004, and under cross-entropy the Hessian shrinks as the loss goes to zero.
2. **Small vs large batch** (Keskar et al. 2017): the same optimizer from the same initialisation
   with batch 32 and with 10 % of the training set, each stopped where its training loss first
   reaches ``keskar_level``; epsilon-sharpness at their epsilons 1e-3 and 5e-4, the top
   eigenvalue, and the train and test loss along the line between the two points (their
   Figure 3, ``x = (1 - alpha) x_small + alpha x_large``).
3. **Dinh et al. 2017's guard**: every final point is rescaled by
   :func:`~descentlab.diagnostics.rescale` (first hidden layer times ``alpha``, the next layer's
   weights divided by it), which leaves the network's function unchanged; the table shows how
   much the sharpness changes. Sharpness is a statement about one parametrisation.

References: Keskar, Mudigere, Nocedal, Smelyanskiy & Tang 2017, "On Large-Batch Training for Deep
Learning: Generalization Gap and Sharp Minima" (ICLR); Dinh, Pascanu, Bengio & Bengio 2017, "Sharp
Minima Can Generalize For Deep Nets" (ICML).
"""

from __future__ import annotations

import functools
import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..diagnostics import (
    DINH_NOTE,
    EqualLoss,
    epsilon_sharpness,
    interpolate,
    rescale,
    sharpness,
    sharpness_at_levels,
)
from ..diagnostics.rescale import WEIGHTED
from ..optim import create
from ..problems import registry
from ..viz._figure import pyplot, save
from .tables import median_iqr

__all__ = [
    "FLAT_SHARP_OPTIMIZERS",
    "FlatSharp",
    "flat_sharp",
    "plot_equal_loss",
    "plot_small_large_batch",
]

# label: (registry name, lr, hyperparameters). The rates the lab's `descentlab compare` chose
# on digits-mlp (grid of 3 around each default, 10 epochs, docs/lab.md): both 0.01.
FLAT_SHARP_OPTIMIZERS: dict[str, tuple[str, float, dict[str, Any]]] = {
    "sgdm": ("sgdm", 0.01, {}),
    "adam": ("adam", 0.01, {}),
}


@dataclass(frozen=True)
class FlatSharp:
    """The three tables, the per-run results and the interpolation curves.

    Attributes:
        equal_loss: per optimizer and level: steps to reach it and the sharpness there
            (medians and IQRs over the seeds that reached it).
        small_large: per batch size: sharpness, train and test loss at ``keskar_level``.
        rescaled: per final point type: sharpness before and after Dinh's rescaling (empty,
            with the reason in ``settings["not rescalable"]``, for a model that cannot be).
        line: the interpolation's median train and test loss at every alpha that is a multiple
            of 0.5 (0: the small-batch point, 1: the large-batch one).
        runs: ``{optimizer label: [EqualLoss per seed]}``.
        alphas, line_train, line_test: the interpolation, one row per seed.
        settings: what was run.
    """

    equal_loss: list[dict[str, Any]]
    small_large: list[dict[str, Any]]
    rescaled: list[dict[str, Any]]
    line: list[dict[str, Any]]
    runs: dict[str, list[EqualLoss]] = field(repr=False)
    alphas: np.ndarray = field(repr=False)
    line_train: np.ndarray = field(repr=False)
    line_test: np.ndarray = field(repr=False)
    settings: dict[str, Any] = field(default_factory=dict)


def _median(values: Sequence[float]) -> float:
    return median_iqr(values)[0]


def _build(problem: str, seed: int, batch_size: int, options: Mapping[str, Any]):
    with torch.random.fork_rng():  # the problem seeds the global generator for the init
        return registry.get(problem).build(seed, batch_size=batch_size, **options)


def _train(task, spec, levels, *, check_every, max_steps, seed, iters) -> EqualLoss:
    name, lr, hp = spec
    make = functools.partial(create, name, lr=lr, impl="forloop", **hp)
    return sharpness_at_levels(
        task.model,
        task.criterion,
        task.train_loader,
        make,
        levels,
        loss_data=[task.splits["train"]],
        test_data=[task.splits["test"]],
        check_every=check_every,
        max_steps=max_steps,
        iters=iters,
        seed=seed,
    )


def _accuracy(model, split: tuple[torch.Tensor, torch.Tensor]) -> float:
    was = model.training
    model.eval()
    with torch.no_grad():
        acc = float((model(split[0]).argmax(-1) == split[1]).float().mean())
    model.train(was)
    return acc


def _rescaled_row(label: str, tasks: list, alpha: float, iters: int) -> dict[str, Any]:
    """Sharpness of the final points before and after rescaling, medians over seeds."""
    before, after, eps_b, eps_a, diff = [], [], [], [], []
    for task in tasks:
        model, data = task.model, [task.splits["train"]]
        n_hidden = sum(isinstance(m, WEIGHTED) for m in model.modules()) - 1
        twin = rescale(model, [alpha] + [1.0] * (n_hidden - 1))
        s, s_twin = (sharpness(m, task.criterion, data, iters=iters) for m in (model, twin))
        with torch.no_grad():
            x = task.splits["train"][0]
            diff.append(float((model(x) - twin(x)).abs().max()))
        before.append(s.top_eigenvalue)
        after.append(s_twin.top_eigenvalue)
        eps_b.append(s.epsilon_sharpness)
        eps_a.append(s_twin.epsilon_sharpness)
    return {
        "point": label,
        "α": alpha,
        "max |Δ out|": max(diff),
        "λmax": _median(before),
        "λmax rescaled": _median(after),
        "ε": _median(eps_b),
        "ε rescaled": _median(eps_a),
    }


def flat_sharp(
    *,
    problem: str = "digits-mlp",
    options: Mapping[str, Any] | None = None,
    optimizers: Mapping[str, tuple[str, float, Mapping[str, Any]]] = FLAT_SHARP_OPTIMIZERS,
    levels: Sequence[float] = (0.5, 0.2, 0.1, 0.05, 0.02, 0.01),
    seeds: int = 5,
    batch_size: int = 32,
    max_epochs: int = 100,
    check_every: int = 10,
    keskar_optimizer: tuple[str, float, Mapping[str, Any]] = ("adam", 1e-3, {}),
    keskar_level: float = 0.01,
    large_fraction: float = 0.1,
    alpha: float = 10.0,
    alphas: Sequence[float] | np.ndarray | None = None,
    iters: int = 50,
) -> FlatSharp:
    """Run the three comparisons on ``problem`` (a supervised problem of the registry).

    Args:
        problem, options: the problem and its build options (``n_train`` for a quick run).
        optimizers: ``{label: (registry name, lr, hyperparameters)}`` for the equal-loss part.
        levels: the training-loss levels.
        seeds: runs per optimizer (and per batch size); seeds 0, 1, ...
        batch_size, max_epochs, check_every: the equal-loss training; the loss is checked every
            ``check_every`` steps, so crossings are resolved to that many steps.
        keskar_optimizer, keskar_level, large_fraction: the small- vs large-batch part: batch
            ``batch_size`` against ``large_fraction`` of the training set, each stopped at
            ``keskar_level``, both within the steps of ``max_epochs`` epochs of the small batch.
        alpha: Dinh's rescaling factor of the first hidden layer.
        alphas: the interpolation coordinates (default -1 to 2 in 31 points, as Keskar et al.).
        iters: power iterations at most per top eigenvalue.
    """
    if seeds < 1 or not 0 < large_fraction <= 1:
        raise ValueError(
            f"need seeds >= 1 and 0 < large_fraction <= 1; got {seeds} and {large_fraction}"
        )
    options = dict(options or {})
    alphas = np.linspace(-1.0, 2.0, 31) if alphas is None else np.asarray(alphas, dtype=float)
    levels = sorted(levels, reverse=True)
    runs: dict[str, list[EqualLoss]] = {}
    finals: dict[str, list] = {}
    steps_per_epoch = 1
    for label, spec in optimizers.items():
        runs[label], finals[label] = [], []
        for seed in range(seeds):
            task = _build(problem, seed, batch_size, options)
            steps_per_epoch = len(task.train_loader)
            runs[label].append(
                _train(
                    task,
                    spec,
                    levels,
                    check_every=check_every,
                    max_steps=max_epochs * steps_per_epoch,
                    seed=seed,
                    iters=iters,
                )
            )
            finals[label].append(task)
    equal_loss = []
    for level in levels:
        for label, results in runs.items():
            points = [p for r in results for p in r.points if p.level == level]
            eig, eig_iqr = median_iqr([p.sharpness.top_eigenvalue for p in points], 3)
            eps, eps_iqr = median_iqr([p.sharpness.epsilon_sharpness for p in points], 3)
            equal_loss.append(
                {
                    "level": level,
                    "opt": label,
                    "n": f"{len(points)}/{len(results)}",
                    "epochs": _median([p.step / steps_per_epoch for p in points]),
                    "λmax": eig,
                    "λmax IQR": eig_iqr,
                    "ε-sharp": eps,
                    "ε IQR": eps_iqr,
                    "test loss": _median([p.test_loss for p in points]),
                }
            )

    # Keskar et al.: small vs large batch from the same initialisation, at the same train loss
    n_train = len(_build(problem, 0, batch_size, options).splits["train"][0])
    large = max(1, round(large_fraction * n_train))
    budget = max_epochs * math.ceil(n_train / batch_size)  # the same number of steps for both
    small_large, lines_train, lines_test, pair_tasks = [], [], [], {}
    for bs in (batch_size, large):
        results, tasks = [], []
        for seed in range(seeds):
            task = _build(problem, seed, bs, options)
            results.append(
                _train(
                    task,
                    keskar_optimizer,
                    [keskar_level],
                    check_every=check_every,
                    max_steps=budget,
                    seed=seed,
                    iters=iters,
                )
            )
            tasks.append(task)
        pair_tasks[bs] = tasks
        reached = [i for i, r in enumerate(results) if r.points]
        eps_half = [
            epsilon_sharpness(
                tasks[i].model,
                tasks[i].criterion,
                [tasks[i].splits["train"]],
                epsilon=5e-4,
                seed=i,
            )
            for i in reached
        ]
        pts = [results[i].points[0] for i in reached]
        eps, eps_iqr = median_iqr([p.sharpness.epsilon_sharpness for p in pts], 3)
        small_large.append(
            {
                "batch": bs,
                "n": f"{len(reached)}/{seeds}",
                "epochs": _median([p.step / len(tasks[0].train_loader) for p in pts]),
                "λmax": _median([p.sharpness.top_eigenvalue for p in pts]),
                "ε 1e-3": eps,
                "ε IQR": eps_iqr,
                "ε 5e-4": _median(eps_half),
                "test loss": _median([p.test_loss for p in pts]),
                "test acc": _median(
                    [_accuracy(tasks[i].model, tasks[i].splits["test"]) for i in reached]
                ),
            }
        )
    for small, big in zip(pair_tasks[batch_size], pair_tasks[large]):
        for split, out in (("train", lines_train), ("test", lines_test)):
            line = interpolate(
                small.model, big.model, small.criterion, [small.splits[split]], alphas=alphas
            )
            out.append(line.loss)

    try:
        rescaled = [
            _rescaled_row(f"{label}, final point", finals[label], alpha, iters)
            for label in optimizers
        ]
        rescaled.append(
            _rescaled_row(f"batch {large}, final point", pair_tasks[large], alpha, iters)
        )
        not_rescalable = ""
    except ValueError as e:  # a norm layer or a non-ReLU activation between the layers
        rescaled, not_rescalable = [], str(e)
    settings = {
        "problem": problem,
        "options": options,
        "optimizers": {k: f"{v[0]} lr={v[1]:g}" for k, v in optimizers.items()},
        "batch size": batch_size,
        "large batch": large,
        "seeds": seeds,
        "check every": check_every,
        "max epochs": max_epochs,
        "keskar": f"{keskar_optimizer[0]} lr={keskar_optimizer[1]:g}, level {keskar_level:g}",
        "not rescalable": not_rescalable,
    }
    line_train, line_test = np.array(lines_train), np.array(lines_test)
    line = [
        {
            "α": float(a),
            "train loss": float(np.median(line_train[:, i])),
            "test loss": float(np.median(line_test[:, i])),
        }
        for i, a in enumerate(alphas)
        if math.isclose(2 * a, round(2 * a), abs_tol=1e-9)
    ]
    return FlatSharp(
        equal_loss,
        small_large,
        rescaled,
        line,
        runs,
        alphas,
        line_train,
        line_test,
        settings,
    )


def plot_equal_loss(result: FlatSharp, path: str | Path) -> Path:
    """Top eigenvalue and epsilon-sharpness against the training-loss level (medians, IQR bars)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    labels = list(result.runs)
    for ax, key, name in (
        (axes[0], "top_eigenvalue", "top Hessian eigenvalue λmax"),
        (axes[1], "epsilon_sharpness", "ε-sharpness (ε = 1e-3, percent)"),
    ):
        for label in labels:
            levels = sorted({p.level for r in result.runs[label] for p in r.points}, reverse=True)
            med, lo, hi = [], [], []
            for level in levels:
                v = [
                    getattr(p.sharpness, key)
                    for r in result.runs[label]
                    for p in r.points
                    if p.level == level
                ]
                q1, m, q3 = np.percentile(v, [25, 50, 75])
                med.append(m)
                lo.append(m - q1)
                hi.append(q3 - m)
            ax.errorbar(levels, med, yerr=[lo, hi], marker="o", capsize=3, label=label)
        ax.set_xscale("log")
        ax.invert_xaxis()  # training goes left to right
        ax.set_xlabel("training loss level (cross-entropy, log scale; lower to the right)")
        ax.set_ylabel(name)
        ax.legend(fontsize="small")
    s = result.settings
    fig.suptitle(
        f"Sharpness at equal training loss, {s['problem']}, batch {s['batch size']}, "
        f"medians and IQRs over {s['seeds']} seeds ({', '.join(s['optimizers'].values())})\n"
        + textwrap.fill(DINH_NOTE, 130),
        fontsize="small",
    )
    fig.tight_layout()
    return save(fig, path)


def plot_small_large_batch(result: FlatSharp, path: str | Path) -> Path:
    """Train and test loss between the small- and the large-batch point (median, IQR band)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for lines, name in ((result.line_train, "train"), (result.line_test, "test")):
        q1, med, q3 = np.percentile(lines, [25, 50, 75], axis=0)
        (line,) = ax.plot(result.alphas, med, label=f"{name} loss (median)")
        ax.fill_between(result.alphas, q1, q3, color=line.get_color(), alpha=0.25)
    ax.axvline(0, color="black", ls=":", lw=1)
    ax.axvline(1, color="black", ls=":", lw=1)
    ax.set_yscale("log")
    s = result.settings
    ax.set_xlabel(
        f"α: (1 − α) x_small + α x_large (0: batch {s['batch size']}, 1: batch {s['large batch']})"
    )
    ax.set_ylabel("cross-entropy (log scale)")
    ax.set_title(
        f"Keskar et al. 2017 on {s['problem']}: {s['keskar']}, IQR over {s['seeds']} seeds\n"
        + textwrap.fill(DINH_NOTE, 95),
        fontsize="small",
    )
    ax.legend(fontsize="small")
    fig.tight_layout()
    return save(fig, path)
