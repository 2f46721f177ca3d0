"""Heavy-tailed gradient noise (Simsekli, Sagun & Gurbuzbalaban 2019; Zhang et al. 2020, "Why are
Adaptive Methods Good for Attention Models?"): the charlm-transformer against the CNN and MLP.

At initialisation (or after ``train_steps`` Adam steps), for each model and seed, ``batches`` minibatches of the problem's own batch
size (12 windows of 64 characters for the GPT, 100 signals for mnist1d-cnn, 32 digits for
digits-mlp), each one's gradient minus the mean gradient of them all (a large batch), and
:func:`descentlab.diagnostics.noise_tail.gradient_noise`'s three numbers: Simsekli et al.'s tail
index of the pooled coordinates, the same index with every coordinate divided by its own scale,
and the excess kurtosis of the noise norms (Zhang et al.'s Figure 1 shows their histograms: a
long right tail for BERT, a concentrated one for ResNet). Zhang et al.'s claim: heavier tails for
attention models (smaller alpha, larger kurtosis) than for the CNN.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from ..diagnostics.noise_tail import GradientNoise, gradient_noise
from ..problems import get, optimizers_for
from ..viz._figure import pyplot, save
from .hessian_heterogeneity import _check_models, _iqr, _lm_loss  # shared with that demo

__all__ = ["NOISE_MODELS", "NoiseTails", "noise_tails", "plot_noise_tails"]

Data = tuple[Callable[..., torch.Tensor], list[tuple[torch.Tensor, torch.Tensor]]]


def _lm_batches(task: Any, seed: int, batches: int) -> Data:
    """Windows drawn as the GPT trains on them, from a generator of their own."""
    gen = torch.Generator().manual_seed(seed)
    return _lm_loss, [task.draw("train", None, gen) for _ in range(batches)]


def _classifier_batches(task: Any, seed: int, batches: int) -> Data:
    """Random minibatches (without replacement within one) of the training split."""
    x, y = task.splits["train"]
    gen = torch.Generator().manual_seed(seed)
    picks = [torch.randperm(len(x), generator=gen)[: task.batch_size] for _ in range(batches)]
    return F.cross_entropy, [(x[i], y[i]) for i in picks]


NOISE_MODELS: dict[str, Callable[[Any, int, int], Data]] = {
    "charlm-transformer": _lm_batches,
    "mnist1d-cnn": _classifier_batches,
    "digits-mlp": _classifier_batches,
}
"""problem name -> ``minibatches(task, seed, batches)``: its loss and ``batches`` minibatches of
the problem's batch size."""


def _trained(name: str, seed: int, steps: int) -> Any:
    """The problem's task for ``seed`` after ``steps`` of its own training steps with Adam (the
    registry's lr 1e-3; the GPT's steps clip the gradient norm to 1, as nanoGPT)."""
    task = get(name).build(seed)
    opts = optimizers_for(task, "adam") if steps else {}
    done = 0
    while done < steps:
        for batch in task.epoch_batches():
            task.train_step(opts, batch)
            done += 1
            if done == steps:
                break
    return task


@dataclass(frozen=True)
class NoiseTails:
    """The gradient noise's tails per model over seeds.

    Attributes:
        rows: per model: median and IQR over ``seeds`` of alpha (pooled), alpha (standardized)
            and the excess kurtosis of the noise norms; parameters, minibatches.
        results: ``{model: [GradientNoise per seed]}``.
    """

    rows: list[dict[str, Any]]
    seeds: tuple[int, ...]
    train_steps: int
    results: dict[str, list[GradientNoise]] = field(repr=False)


def noise_tails(
    models: Sequence[str] = tuple(NOISE_MODELS),
    *,
    seeds: Sequence[int] = (0, 1, 2),
    batches: int = 64,
    coordinates: int = 50_000,
    train_steps: int = 0,
) -> NoiseTails:
    """:func:`gradient_noise` of each model, ``batches`` minibatches a seed, at initialisation or
    after ``train_steps`` Adam steps (Simsekli et al. and Zhang et al. also measure in training).
    """
    _check_models(models, NOISE_MODELS)
    rows, results = [], {}
    for name in models:
        runs = []
        for seed in seeds:
            task = _trained(name, seed, train_steps)
            loss_fn, data = NOISE_MODELS[name](task, seed, batches)
            runs.append(
                gradient_noise(task.model, loss_fn, data, coordinates=coordinates, seed=seed)
            )
        results[name] = runs
        row: dict[str, Any] = {
            "model": name,
            "parameters": runs[0].parameters,
            "Adam steps before": train_steps,
            "minibatches": batches,
            "batch size": get(name).budget.batch_size,
        }
        for label, attr in (
            ("alpha (pooled)", "alpha"),
            ("alpha (standardized)", "alpha_standardized"),
            ("norm excess kurtosis", "norm_kurtosis"),
        ):
            row[f"{label} median"], row[f"{label} IQR"] = _iqr([getattr(r, attr) for r in runs])
        rows.append(row)
    return NoiseTails(rows, tuple(seeds), train_steps, results)


def plot_noise_tails(result: NoiseTails, path: str | Path) -> Path:
    """Left: the survival function of the noise norms over their median (every seed's
    minibatches pooled; a heavy right tail stays up); right: the tail indices, median and IQR
    over seeds."""
    plt = pyplot()
    fig, (ax_h, ax_a) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, runs in result.results.items():
        r = np.sort(np.concatenate([run.norms / np.median(run.norms) for run in runs]))
        ax_h.step(r, 1 - np.arange(len(r)) / len(r), where="post", label=name)
    ax_h.set_yscale("log")
    ax_h.set_xlabel("‖g_B − g‖ / median over the minibatches (dimensionless)")
    ax_h.set_ylabel("fraction of minibatches above (log scale)")
    when = f"after {result.train_steps} Adam steps" if result.train_steps else "at initialisation"
    ax_h.set_title(f"Noise norms {when} ({len(result.seeds)} seeds pooled)")
    ax_h.legend(fontsize="small")
    names = list(result.results)
    x = np.arange(len(names))
    for k, (attr, label) in enumerate(
        (("alpha", "pooled (Simsekli et al.)"), ("alpha_standardized", "each coordinate scaled"))
    ):
        vals = [[getattr(r, attr) for r in result.results[n]] for n in names]
        med = np.array([np.median(v) for v in vals])
        lo = med - np.array([np.percentile(v, 25) for v in vals])
        hi = np.array([np.percentile(v, 75) for v in vals]) - med
        ax_a.errorbar(x + (k - 0.5) * 0.2, med, yerr=[lo, hi], fmt="o", capsize=4, label=label)
    ax_a.axhline(2.0, color="black", ls=":", lw=1, label="α = 2: Gaussian")
    ax_a.set_xticks(x, names)
    ax_a.set_ylabel("tail index α (median, IQR)")
    ax_a.set_title("Tail index of the gradient noise")
    ax_a.legend(fontsize="small")
    fig.tight_layout()
    return save(fig, path)
