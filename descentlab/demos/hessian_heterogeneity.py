"""Why transformers need Adam (Zhang, Chen, Ding, Li, Sun & Luo 2024, "Why Transformers Need
Adam: A Hessian Perspective"): the Hessian's block heterogeneity, measured and acted out.

1. **Block spectra at initialisation.** The SLQ spectral density of every parameter block's
   Hessian (:mod:`descentlab.diagnostics.spectrum`) and their mean pairwise Jensen-Shannon
   divergence :math:`JS^0`, for the charlm-transformer's GPT against the MLP and CNN problems.
   Blocks: one per parameter tensor, nanoGPT's fused attention weight cut into query, key and
   value (as the authors' GPT-2 has them). Two block sets are reported: the weight matrices
   (embeddings, q, k, v, attention output, MLP and convolution kernels: the blocks of the paper's
   figures) and every tensor (biases and LayerNorm gains as well).
2. **The block-heterogeneous quadratic** (the paper's section 4):
   :math:`f(x) = \\tfrac12 x^T H x`, ``H`` block-diagonal, each block :math:`Q_b \\Lambda_b Q_b^T`
   with a Haar-random rotation :math:`Q_b`, condition number 5000. *Heterogeneous*: the
   eigenvalues log-spaced over [1, 5000] and dealt to the blocks in order, so the blocks' ranges
   are disjoint; *homogeneous*: the same eigenvalues dealt at random, so every block spans the
   whole range. Gradient descent sees only the eigenvalues (the same in both cases); Adam's
   per-coordinate step can rescale a block only where the blocks differ. Each optimizer gets its
   best learning rate of a grid, per seed, by the final loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..diagnostics.spectrum import Spectrum, block_heterogeneity, block_spectra, parameter_blocks
from ..optim import create
from ..problems import get
from ..problems.charlm_transformer import CharGPT
from ..viz._figure import pyplot, save

__all__ = [
    "HESSIAN_MODELS",
    "HessianHeterogeneity",
    "QuadraticRace",
    "block_quadratic",
    "hessian_heterogeneity",
    "plot_hessian_heterogeneity",
    "plot_quadratic_race",
    "quadratic_race",
]

Setup = tuple[nn.Module, Callable[..., torch.Tensor], list[tuple[torch.Tensor, torch.Tensor]], dict]
_QKV = {"attn.c_attn.weight": ("q", "k", "v")}


def _lm_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.flatten(0, -2), target.flatten())


def _transformer(seed: int, *, layers: int = 4, windows: int = 8, **_: Any) -> Setup:
    """The charlm-transformer's GPT (nanoGPT's width 128, 4 heads, context 64) with ``layers``
    blocks, at its initialisation for ``seed``, on ``windows`` training windows drawn by it."""
    task = get("charlm-transformer").build(seed)
    x, y = task.draw("train", windows, torch.Generator().manual_seed(seed))
    torch.manual_seed(seed)
    model = CharGPT(len(task.vocab), layers=layers)
    return model, _lm_loss, [(x, y)], {"split": _QKV}


def _classifier(name: str) -> Callable[..., Setup]:
    def setup(seed: int, *, examples: int = 512, **_: Any) -> Setup:
        task = get(name).build(seed)
        x, y = task.splits["train"]
        idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:examples]
        return task.model, F.cross_entropy, [(x[idx], y[idx])], {}

    return setup


HESSIAN_MODELS: dict[str, Callable[..., Setup]] = {
    "charlm-transformer": _transformer,
    "mnist1d-cnn": _classifier("mnist1d-cnn"),
    "digits-mlp": _classifier("digits-mlp"),
}
"""The models compared: problem name -> ``setup(seed, **sizes)`` giving the model at
initialisation, its loss, the data of the Hessian and the options of its blocks."""

BLOCK_SETS = {"weights": 2, "all tensors": 1}  # name -> parameter_blocks' min_dim


def _check_models(models: Sequence[str], known: Mapping[str, Any]) -> None:
    unknown = [m for m in models if m not in known]
    if unknown:
        raise ValueError(f"unknown model {unknown[0]!r}; choose from {', '.join(known)}")


def _iqr(values: Sequence[float]) -> tuple[float, str]:
    """The median and the IQR as ``"[q1, q3]"`` (a table cell)."""
    q1, med, q3 = np.percentile(np.asarray(values, dtype=float), [25, 50, 75])
    return float(med), f"[{q1:.4g}, {q3:.4g}]"


@dataclass(frozen=True)
class HessianHeterogeneity:
    """:math:`JS^0` per model and block set over seeds.

    Attributes:
        rows: per model and block set: the blocks, the parameters, and :math:`JS^0` (median and
            IQR over ``seeds``) with the paper's broadening and with ``relative`` times the
            blocks' rms eigenvalue.
        seeds: the seeds (initialisation and data).
        spectra: ``{model: {block set: {block: Spectrum}}}`` at the first seed.
        js: ``{model: {block set: per-seed JS^0 with the paper's broadening}}``.
    """

    rows: list[dict[str, Any]]
    seeds: tuple[int, ...]
    relative: float
    spectra: dict[str, dict[str, dict[str, Spectrum]]] = field(repr=False)
    js: dict[str, dict[str, list[float]]] = field(repr=False)


def hessian_heterogeneity(
    models: Sequence[str] = tuple(HESSIAN_MODELS),
    *,
    seeds: Sequence[int] = (0, 1, 2),
    steps: int = 20,
    relative: float = 0.1,
    layers: int = 4,
    windows: int = 8,
    examples: int = 512,
) -> HessianHeterogeneity:
    """Block spectra at initialisation and their heterogeneity :math:`JS^0`, model by model.

    ``steps`` Lanczos steps, one probe per block and seed; ``layers`` of the GPT (nanoGPT's 4; 2
    halve the time and leave the kinds of block the same), ``windows`` of 64 characters for its
    Hessian, ``examples`` training examples for the classifiers'.
    """
    _check_models(models, HESSIAN_MODELS)
    rows, spectra, js = [], {}, {}
    for name in models:
        paper: dict[str, list[float]] = {s: [] for s in BLOCK_SETS}
        rel: dict[str, list[float]] = {s: [] for s in BLOCK_SETS}
        for seed in seeds:
            model, loss_fn, loader, opts = HESSIAN_MODELS[name](
                seed, layers=layers, windows=windows, examples=examples
            )
            blocks = parameter_blocks(model, **opts)
            found = block_spectra(model, loss_fn, loader, blocks=blocks, steps=steps, seed=seed)
            sets = {
                set_name: {
                    b.name: found[b.name] for b in parameter_blocks(model, min_dim=d, **opts)
                }
                for set_name, d in BLOCK_SETS.items()
            }
            if seed == seeds[0]:
                spectra[name] = sets
            for set_name, chosen in sets.items():
                paper[set_name].append(block_heterogeneity(chosen).mean)
                rel[set_name].append(block_heterogeneity(chosen, relative=relative).mean)
        js[name] = paper
        for set_name, chosen in spectra[name].items():
            (p, p_iqr), (r, r_iqr) = _iqr(paper[set_name]), _iqr(rel[set_name])
            rows.append(
                {
                    "model": name,
                    "blocks": set_name,
                    "n blocks": len(chosen),
                    "parameters": sum(s.dim for s in chosen.values()),
                    "JS0 (paper sigma) median": p,
                    "JS0 (paper sigma) IQR": p_iqr,
                    f"JS0 (sigma = {relative:g} rms) median": r,
                    f"JS0 (sigma = {relative:g} rms) IQR": r_iqr,
                }
            )
    return HessianHeterogeneity(rows, tuple(seeds), relative, spectra, js)


def block_quadratic(
    case: str, *, blocks: int = 4, size: int = 25, condition: float = 5000.0, seed: int = 0
) -> torch.Tensor:
    """The Hessian of the paper's quadratic (module docstring): ``blocks`` blocks of ``size``,
    eigenvalues log-spaced over [1, ``condition``], ``"heterogeneous"`` or ``"homogeneous"``."""
    if case not in ("heterogeneous", "homogeneous"):
        raise ValueError(f"case must be 'heterogeneous' or 'homogeneous', got {case!r}")
    if blocks < 2 or size < 1 or condition <= 1:
        raise ValueError(
            f"need blocks >= 2, size >= 1, condition > 1; got {blocks}, {size}, {condition}"
        )
    gen = torch.Generator().manual_seed(seed)
    eig = torch.logspace(0, math.log10(condition), blocks * size, dtype=torch.float64)
    if case == "homogeneous":
        eig = eig[torch.randperm(len(eig), generator=gen)]
    H = torch.zeros(blocks * size, blocks * size, dtype=torch.float64)
    for b in range(blocks):
        q, r = torch.linalg.qr(torch.randn(size, size, generator=gen, dtype=torch.float64))
        q = q * torch.sign(torch.diagonal(r))  # Haar: fix the signs QR leaves arbitrary
        part = slice(b * size, (b + 1) * size)
        H[part, part] = q @ torch.diag(eig[part]) @ q.T
    return H


def _descend(
    name: str, H: torch.Tensor, x0: torch.Tensor, lrs: np.ndarray, steps: int
) -> np.ndarray:
    """f(x_t) / f(x_0), t = 0..steps, of optimizer ``name`` on 0.5 x^T H x (gradient H x), one
    row per learning rate: one param group per rate, so that one ``step()`` moves them all."""
    xs = [x0.clone().requires_grad_(True) for _ in lrs]
    opt = create(name, [{"params": [x], "lr": float(lr)} for x, lr in zip(xs, lrs)], lr=1.0)
    f0 = float(0.5 * x0 @ H @ x0)
    out = np.empty((len(lrs), steps + 1))
    for t in range(steps + 1):
        with torch.no_grad():
            X = torch.stack(xs, 1)
            G = H @ X
            out[:, t] = (0.5 * (X * G).sum(0) / f0).numpy()
            for j, x in enumerate(xs):
                x.grad = G[:, j].clone()
        if t < steps:
            opt.step()
    return np.nan_to_num(out, nan=math.inf)


# Learning-rate grids (10 each): gradient descent in units of 1/lambda_max (stable below 2; the
# best constant rate for a large condition number is near 2 / lambda_max), heavy ball with
# momentum 0.9 (stable below 2 (1 + 0.9) / lambda_max), Adam in units of the start's coordinates
# (~1: its step is at most about lr per coordinate).
LR_GRIDS: dict[str, Callable[[float], np.ndarray]] = {
    "sgd": lambda lam_max: np.geomspace(0.1, 1.98, 10) / lam_max,
    "sgdm": lambda lam_max: np.geomspace(0.01, 3.78, 10) / lam_max,
    "adam": lambda lam_max: np.geomspace(1e-3, 1.0, 10),
}


@dataclass(frozen=True)
class QuadraticRace:
    """Gradient descent, heavy ball and Adam on the two quadratics.

    Attributes:
        rows: per case and optimizer: median and IQR over seeds of the final loss ratio
            f(x_T) / f(x_0) at the best learning rate of :data:`LR_GRIDS`, and the median best lr.
        curves: ``{(case, optimizer): (seeds, steps + 1)}`` loss ratios at each seed's best lr.
    """

    rows: list[dict[str, Any]]
    seeds: tuple[int, ...]
    steps: int
    curves: dict[tuple[str, str], np.ndarray] = field(repr=False)


def quadratic_race(
    *,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    steps: int = 400,
    blocks: int = 4,
    size: int = 25,
    condition: float = 5000.0,
    optimizers: Sequence[str] = ("sgd", "sgdm", "adam"),
) -> QuadraticRace:
    """Each optimizer at its best learning rate (per seed) on both quadratics: ``"sgd"`` with the
    exact gradient is gradient descent, ``"sgdm"`` the heavy ball (momentum 0.9: Adam's beta1,
    so that momentum is not what separates them), ``"adam"`` torch's Adam with default betas."""
    rows, curves = [], {}
    for case in ("heterogeneous", "homogeneous"):
        for name in optimizers:
            best_curves, best_lrs = [], []
            for seed in seeds:
                H = block_quadratic(case, blocks=blocks, size=size, condition=condition, seed=seed)
                gen = torch.Generator().manual_seed(10_000 + seed)
                x0 = torch.randn(len(H), generator=gen, dtype=torch.float64)
                lrs = LR_GRIDS[name](condition)
                runs = _descend(name, H, x0, lrs, steps)
                best = int(np.argmin(runs[:, -1]))
                best_curves.append(runs[best])
                best_lrs.append(float(lrs[best]))
            curves[(case, name)] = np.stack(best_curves)
            med, iqr = _iqr([c[-1] for c in best_curves])
            rows.append(
                {
                    "case": case,
                    "optimizer": name,
                    f"f(x_{steps}) / f(x_0) median": med,
                    "IQR": iqr,
                    "best lr (median)": float(np.median(best_lrs)),
                }
            )
    return QuadraticRace(rows, tuple(seeds), steps, curves)


_PLOT_POINTS = 4000


def plot_hessian_heterogeneity(result: HessianHeterogeneity, path: str | Path) -> Path:
    """Top: each model's weight blocks' densities (first seed, paper's broadening, log scale);
    bottom: their pairwise JS matrices."""
    plt = pyplot()
    names = list(result.spectra)
    fig, axes = plt.subplots(2, len(names), figsize=(4.6 * len(names), 8.2), squeeze=False)
    for col, name in enumerate(names):
        het = block_heterogeneity(result.spectra[name]["weights"])
        ax = axes[0, col]
        k = -(-len(het.grid) // _PLOT_POINTS)  # max-pool the grid to at most 4000 points
        grid = het.grid[: len(het.grid) // k * k].reshape(-1, k).mean(1)
        for i, label in enumerate(het.names):
            dens = het.densities[i, : len(grid) * k].reshape(-1, k).max(1)
            ax.semilogy(grid, np.maximum(dens, 1e-8), lw=0.9, label=label)
        ax.set_ylim(1e-6, None)
        ax.set_xlabel("eigenvalue of the block's Hessian")
        ax.set_ylabel("density (log scale)")
        ax.set_title(f"{name}: JS⁰ = {het.mean:.3f} (seed {result.seeds[0]})")
        if len(het.names) <= 8:
            ax.legend(fontsize="x-small")
        im = axes[1, col].imshow(het.matrix, vmin=0, vmax=math.log(2), cmap="viridis")
        axes[1, col].set_title("pairwise JS (nats; ln 2 = disjoint)")
        axes[1, col].set_xlabel("block")
        axes[1, col].set_ylabel("block")
        fig.colorbar(im, ax=axes[1, col], fraction=0.046)
    fig.tight_layout()
    return save(fig, path)


def plot_quadratic_race(result: QuadraticRace, path: str | Path) -> Path:
    """f(x_t) / f(x_0) (log scale), median and IQR over seeds, at each optimizer's best lr."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, case in zip(axes, ("heterogeneous", "homogeneous")):
        for (c, name), curves in result.curves.items():
            if c != case:
                continue
            t = np.arange(curves.shape[1])
            q1, med, q3 = np.percentile(curves, [25, 50, 75], axis=0)
            label = {"sgd": "GD", "sgdm": "GD + momentum 0.9"}.get(name, name)
            (line,) = ax.semilogy(t, med, label=label)
            ax.fill_between(t, q1, q3, color=line.get_color(), alpha=0.25)
        ax.set_title(f"{case} blocks (condition number 5000)")
        ax.set_xlabel("step")
        ax.legend(fontsize="small")
    axes[0].set_ylabel("f(x_t) / f(x_0) (log scale)")
    fig.tight_layout()
    return save(fig, path)
