"""Adam's failure cases, reproduced with the real optimizer objects.

1. **One large gradient** (the lecture's worked example): with beta1 = 0 and beta2 = 0.999,
   after many steps of gradient 1 (so v = 1) one gradient of 1e5 moves Adam by
   lr * 1e5 / sqrt(0.999 * 1 + 0.001 * 1e10) = 31.6 lr = 10 sqrt(10) lr, while SGD moves 1e5 lr:
   the rare, informative gradient is damped by a factor of about 3000.
2. **The online convex counterexample** (Reddi, Kale & Kumar 2018, "On the Convergence of Adam
   and Beyond", section 3): f_t(x) = C x when t mod 3 = 1, else -x, on x in [-1, 1]. The sum is
   minimized at x = -1, but the large gradient C comes once every three steps and Adam's short
   memory (beta2 = 1/(1 + C^2), beta1 = 0, lr_t = lr / sqrt(t), their Theorem 1) forgets it, so Adam
   drifts to x = +1; AMSGrad, whose second moment never decreases, converges to x = -1.

Gradients are hooked: the scalar parameter's ``.grad`` is set to the sequence, then
``optimizer.step()`` runs; for (2) the iterate is projected onto [-1, 1] after each step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..optim import create
from ..viz._figure import pyplot, save

__all__ = [
    "ESTIMATES",
    "LARGE_GRADIENT_HPARAMS",
    "LargeGradient",
    "OnlineCounterexample",
    "large_gradient",
    "online_counterexample",
    "plot_large_gradient",
    "plot_online_counterexample",
]

# The lecture's setting: no momentum for the adaptive methods (beta1 = 0) and beta2 = 0.999;
# AdaBound's SGD limit final_lr is set to lr (None below) so its bounds close in on the SGD rate.
LARGE_GRADIENT_HPARAMS: dict[str, dict[str, Any]] = {
    "adam": {"betas": (0.0, 0.999)},
    "amsgrad": {"betas": (0.0, 0.999)},
    "adabound": {"betas": (0.0, 0.999), "final_lr": None},
    "sgdm": {"momentum": 0.9},
    "sgd": {},
}

# The step on the large gradient ``big`` in units of lr, by hand, where the lecture gives it:
# Adam/AMSGrad with v = 1 before it (many steps), SGD, and SGD with momentum 0.9 whose buffer
# holds 1 / (1 - 0.9) = 10 before it. AdaBound has none: its step is clipped to its lower bound.
ESTIMATES: dict[str, Callable[[float], float]] = {
    "adam": lambda big: big / math.sqrt(0.999 + 0.001 * big**2),
    "amsgrad": lambda big: big / math.sqrt(0.999 + 0.001 * big**2),
    "sgdm": lambda big: big + 0.9 * 10,
    "sgd": lambda big: big,
}


@dataclass(frozen=True)
class LargeGradient:
    """The step sizes around the large gradient.

    Attributes:
        rows: per optimizer: its step (in units of lr) just before, on, and ``later`` steps after
            the large gradient, and the step computed by hand (:data:`ESTIMATES`; NaN if none).
        steps: the step index of ``sizes`` columns (the large gradient is at ``spike``).
        sizes: ``{name: |x_t - x_{t-1}| / lr}`` around the spike.
    """

    rows: list[dict[str, Any]]
    spike: int
    steps: np.ndarray
    sizes: dict[str, np.ndarray] = field(repr=False)


def _run_hooked(
    name: str,
    grads: np.ndarray,
    *,
    lr: float,
    hparams: Mapping[str, Any],
    project: bool = False,
    schedule: np.ndarray | None = None,
) -> np.ndarray:
    """Iterates x_0..x_T of optimizer ``name`` fed the gradient sequence ``grads``."""
    x = torch.zeros((), dtype=torch.float64, requires_grad=True)
    # The readable per-tensor path: on one scalar the fused kernels gain nothing.
    opt = create(name, [x], lr=lr, impl="forloop", **hparams)
    xs = np.empty(len(grads) + 1)
    xs[0] = 0.0
    for t, g in enumerate(grads):
        if schedule is not None:
            opt.param_groups[0]["lr"] = float(schedule[t])
        x.grad = torch.tensor(float(g), dtype=torch.float64)
        opt.step()
        if project:
            with torch.no_grad():
                x.clamp_(-1.0, 1.0)
        xs[t + 1] = float(x.detach())
    return xs


def large_gradient(
    names: Sequence[str] = tuple(LARGE_GRADIENT_HPARAMS),
    *,
    warmup: int = 10_000,
    big: float = 1e5,
    lr: float = 1e-3,
    later: int = 10,
    window: int = 50,
) -> LargeGradient:
    """Feed ``warmup`` gradients of 1, one of ``big``, then gradients of 1 again.

    The lecture's estimate of Adam's step on the large gradient assumes v = 1 before it (many
    steps): ``big / sqrt(0.999 + 0.001 big^2) * lr``; with ``warmup = 10000`` the bias correction
    differs from 1 by 5e-5, so the measured step agrees to 4 digits.
    """
    if warmup < 1 or not 0 <= later < window:
        raise ValueError(
            f"need warmup >= 1 and 0 <= later < window; got warmup={warmup}, later={later}, "
            f"window={window}"
        )
    grads = np.ones(warmup + 1 + window)
    grads[warmup] = big
    first = max(warmup - window, 0)  # the plotted window starts at step 0 for a short warm-up
    rows, sizes = [], {}
    for name in names:
        hp = dict(LARGE_GRADIENT_HPARAMS.get(name, {}))
        if hp.get("final_lr", 0) is None:
            hp["final_lr"] = lr
        xs = _run_hooked(name, grads, lr=lr, hparams=hp)
        size = np.abs(np.diff(xs)) / lr  # size[t] is the step on grads[t]
        sizes[name] = size[first : warmup + window + 1]
        rows.append(
            {
                "optimizer": name,
                "settings": _settings(hp),
                "step before / lr": float(size[warmup - 1]),
                "step on 1e5 gradient / lr": float(size[warmup]),
                f"step {later} later / lr": float(size[warmup + later]),
                "by hand / lr": ESTIMATES[name](big) if name in ESTIMATES else math.nan,
            }
        )
    steps = np.arange(first, warmup + window + 1)
    return LargeGradient(rows, warmup, steps, sizes)


def _settings(hp: Mapping[str, Any]) -> str:
    parts = []
    for k, v in hp.items():
        if k == "betas":
            parts.append(f"β1={v[0]:g}, β2={v[1]:g}")
        else:
            parts.append(f"{k}={v:g}")
    return ", ".join(parts) or "defaults"


@dataclass(frozen=True)
class OnlineCounterexample:
    """Reddi et al.'s online problem: rows (final x, average regret) and the iterates."""

    rows: list[dict[str, Any]]
    C: float
    iterates: dict[str, np.ndarray] = field(repr=False)
    regret: dict[str, np.ndarray] = field(repr=False)


def online_counterexample(
    names: Sequence[str] = ("adam", "amsgrad"),
    *,
    C: float = 3.0,
    steps: int = 3000,
    lr: float = 0.5,
    beta1: float = 0.0,
    beta2: float | None = None,
) -> OnlineCounterexample:
    """Run Reddi et al. 2018's counterexample (section 3) with decaying lr_t = lr / sqrt(t).

    ``beta2`` defaults to the paper's 1 / (1 + C^2). The regret is against the best fixed point
    x* = -1: R_T = sum_t f_t(x_t) - f_t(-1); Adam's average regret R_T / T stays positive,
    AMSGrad's goes to zero.
    """
    if C <= 2:
        raise ValueError(f"C must be > 2 (then x = -1 minimizes the sum), got {C}")
    b2 = 1 / (1 + C**2) if beta2 is None else beta2
    t = np.arange(1, steps + 1)
    coeff = np.where(t % 3 == 1, C, -1.0)  # f_t(x) = coeff_t x, so the gradient is coeff_t
    iterates, regret, rows = {}, {}, []
    for name in names:
        xs = _run_hooked(
            name,
            coeff,
            lr=lr,
            hparams={"betas": (beta1, b2)},
            project=True,
            schedule=lr / np.sqrt(t),
        )
        loss_gap = coeff * (xs[:-1] + 1.0)  # f_t(x_t) - f_t(-1), x_t played before g_t
        r = np.cumsum(loss_gap)
        iterates[name], regret[name] = xs, r
        rows.append(
            {
                "optimizer": name,
                "final x": float(xs[-1]),
                "mean x over the last 300 steps": float(xs[-300:].mean()),
                "average regret R_T/T": float(r[-1] / steps),
                "converges to": "x = -1 (right)" if xs[-300:].mean() < 0 else "x = +1 (wrong)",
            }
        )
    return OnlineCounterexample(rows, C, iterates, regret)


def plot_large_gradient(result: LargeGradient, path: str | Path) -> Path:
    """Step size (in units of lr, log scale) around the large gradient, one line per optimizer."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    styles = ("-", "--", "-.", (0, (1, 1)), (0, (5, 1)))  # overlapping lines stay visible
    for i, (name, size) in enumerate(result.sizes.items()):
        ax.plot(result.steps - result.spike, size, ls=styles[i % len(styles)], lw=1.5, label=name)
    ax.axhline(10 * math.sqrt(10), color="black", ls=":", lw=1, label="10√10 ≈ 31.6 (lecture)")
    ax.set_yscale("log")
    ax.set_xlabel("step relative to the gradient of 1e5")
    ax.set_ylabel("|x_t − x_{t−1}| / lr (log scale)")
    ax.set_title(f"One gradient of 1e5 after {result.spike} gradients of 1")
    ax.legend(fontsize="small")
    fig.tight_layout()
    return save(fig, path)


def plot_online_counterexample(result: OnlineCounterexample, path: str | Path) -> Path:
    """The iterate x_t and the average regret R_t / t, one line per optimizer."""
    plt = pyplot()
    fig, (ax_x, ax_r) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, xs in result.iterates.items():
        t = np.arange(len(xs))
        (line,) = ax_x.plot(t, xs, lw=0.8, label=name)
        r = result.regret[name]
        ax_r.plot(t[1:], r / t[1:], color=line.get_color(), label=name)
    ax_x.axhline(-1, color="black", ls=":", lw=1, label="optimum x* = −1")
    ax_x.set_xlabel("step t")
    ax_x.set_ylabel("x_t (dimensionless)")
    ax_x.set_title(f"Reddi et al. 2018: f_t(x) = {result.C:g}x once every 3 steps, −x otherwise")
    ax_x.legend(fontsize="small")
    ax_r.set_xscale("log")
    ax_r.set_xlabel("step t (log scale)")
    ax_r.set_ylabel("average regret R_t / t (loss units)")
    ax_r.set_title("Average regret against x* = −1")
    ax_r.legend(fontsize="small")
    fig.tight_layout()
    return save(fig, path)
