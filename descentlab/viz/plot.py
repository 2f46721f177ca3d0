"""Draw trajectories on a function's contour plot: a still figure (PNG) or an animation.

Animations are GIFs written with Pillow, or MP4s when ``ffmpeg`` is on the PATH.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.colors import BoundaryNorm

from ._figure import pyplot, save
from .functions2d import Function2D, get
from .trajectories import Trajectory

__all__ = ["animate", "plot"]

_AXES = ("x (parameter 1, dimensionless)", "y (parameter 2, dimensionless)")


def _contour(ax, fn: Function2D, resolution: int = 200, *, bands: bool = False) -> None:
    """The function's contours, its known minima (stars) and saddle points (crosses)."""
    xs = torch.linspace(*fn.xlim, resolution, dtype=torch.float64)
    ys = torch.linspace(*fn.ylim, resolution, dtype=torch.float64)
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")
    z = fn.f(gx, gy).numpy()
    extent = (*fn.xlim, *fn.ylim)
    if fn.log_levels:
        z = z - fn.min_value() + 1e-3
        levels = np.logspace(np.log10(z.min()), np.log10(z.max()), 30)
        norm = "log"
    else:
        levels, norm = np.linspace(z.min(), z.max(), 30), "linear"
    # A raster background and contour lines: far cheaper to redraw per animation frame than contourf.
    # Animations shade in flat bands (few colours: a GIF's 256-colour palette needs no dithering).
    if bands:
        norm = BoundaryNorm(levels[::3], 256)
    ax.imshow(
        z, extent=extent, origin="lower", cmap="Greys_r", norm=norm, alpha=0.45, aspect="auto"
    )
    ax.contour(gx, gy, z, levels=levels, colors="grey", linewidths=0.4)
    marks = ((fn.minima, "*", "gold", 14, "known minima"), (fn.saddles, "X", "white", 9, "saddles"))
    for points, marker, color, size, label in marks:
        if points:
            xs, ys = zip(*points)
            ax.plot(
                xs,
                ys,
                marker,
                color=color,
                markeredgecolor="black",
                markersize=size,
                label=label,
                zorder=5,
            )
    ax.set_xlim(*fn.xlim)
    ax.set_ylim(*fn.ylim)
    ax.set_xlabel(_AXES[0])
    ax.set_ylabel(_AXES[1])


def _legend_label(t: Trajectory) -> str:
    lr = "" if t.lr is None else f" (lr={t.lr:g})"
    end = f", diverged at step {t.diverged_at}" if t.diverged_at is not None else ""
    return f"{t.label}{lr}{end}"


def plot(
    function: Function2D | str,
    paths: Sequence[Trajectory],
    path: str | Path,
    *,
    dpi: int = 100,
) -> Path:
    """Save a still figure: the paths on the contour plot, and the loss against the step.

    Returns the path written (PNG, or any format matplotlib infers from the suffix).
    """
    plt = pyplot()
    fn = get(function) if isinstance(function, str) else function
    steps = max(t.steps for t in paths)
    fig, (ax, ax_loss) = plt.subplots(1, 2, figsize=(12, 5), gridspec_kw={"width_ratios": [1.2, 1]})
    _contour(ax, fn)
    floor = fn.min_value()
    for t in paths:
        (line,) = ax.plot(t.xy[:, 0], t.xy[:, 1], "-", lw=1.5, label=_legend_label(t))
        ax.plot(*t.xy[0], "o", color="black", markersize=5)
        ax_loss.plot(
            np.arange(len(t.loss)), t.loss - floor + 1e-16, color=line.get_color(), label=t.label
        )
    ax.set_title(f"{fn.title}: {steps} steps")
    ax.legend(loc="best", fontsize="small")
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("f(x, y) − f(minimum) (log scale)")
    ax_loss.set_title("Loss above the minimum")
    ax_loss.legend(loc="best", fontsize="small")
    fig.tight_layout()
    return save(fig, path, dpi=dpi)


def animate(
    function: Function2D | str,
    paths: Sequence[Trajectory],
    path: str | Path,
    *,
    frames: int = 100,
    fps: int = 15,
    dpi: int = 90,
    tail: int | None = None,
) -> Path:
    """Save an animation of the paths racing on the contour plot, with the step count.

    ``.mp4`` needs ``ffmpeg`` on the PATH; anything else is written as a GIF with Pillow.
    At most ``frames`` frames (the steps are subsampled evenly); ``tail`` draws only the last
    ``tail`` steps of each path (default: the whole path so far).

    Returns the path written.
    """
    plt = pyplot()
    from matplotlib.animation import FFMpegWriter, FuncAnimation, PillowWriter

    fn = get(function) if isinstance(function, str) else function
    out = Path(path)
    if out.suffix.lower() == ".mp4":
        if shutil.which("ffmpeg") is None:
            raise RuntimeError("writing MP4 needs ffmpeg on the PATH; write a .gif instead")
        writer = FFMpegWriter(fps=fps)
    else:
        writer = PillowWriter(fps=fps)
    steps = max(t.steps for t in paths)
    shown = np.unique(np.linspace(0, steps, min(frames, steps + 1)).round().astype(int))

    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    _contour(ax, fn, resolution=150, bands=True)
    lines, heads = [], []
    for t in paths:
        (line,) = ax.plot([], [], "-", lw=1.8, label=_legend_label(t))
        (head,) = ax.plot([], [], "o", color=line.get_color(), markersize=6)
        lines.append(line)
        heads.append(head)
    ax.legend(loc="upper right", fontsize="x-small", framealpha=0.8)

    def draw(k: int):
        lo = 0 if tail is None else max(0, k - tail)
        for t, line, head in zip(paths, lines, heads):
            seg = t.xy[lo : k + 1]
            line.set_data(seg[:, 0], seg[:, 1])
            last = seg[~np.isnan(seg).any(axis=1)][-1:]
            head.set_data(last[:, 0], last[:, 1])
        ax.set_title(f"{fn.title}: step {k}/{steps}")
        return [*lines, *heads]

    draw(0)  # the title exists before the layout is fixed
    fig.tight_layout()
    anim = FuncAnimation(fig, draw, frames=shown, blit=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    anim.save(out, writer=writer, dpi=dpi)
    plt.close(fig)
    return out
