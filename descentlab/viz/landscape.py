"""Draw loss-landscape slices (:mod:`descentlab.diagnostics.landscape`): lines and contour maps.

Reference: Li, Xu, Taylor, Studer & Goldstein 2018, "Visualizing the Loss Landscape of Neural
Nets" (1-D curves and 2-D contours along filter-normalized directions).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..diagnostics.landscape import Slice1D, Slice2D
from ._figure import pyplot, save

__all__ = ["plot_slices"]


def plot_slices(
    slices: Mapping[str, Slice1D | Slice2D],
    path: str | Path,
    *,
    title: str = "Loss landscape",
    xlabel: str = "α (step along the direction, in units of the direction)",
    log: bool = False,
) -> Path:
    """Save a figure of labelled slices: all 1-D ones on one axis, one contour map per 2-D one.

    For an :func:`~descentlab.diagnostics.interpolate` result pass
    ``xlabel="α (0: model A, 1: model B)"``. Returns the path written.
    """
    plt = pyplot()
    ones = {k: s for k, s in slices.items() if isinstance(s, Slice1D)}
    twos = {k: s for k, s in slices.items() if isinstance(s, Slice2D)}
    if not slices or len(ones) + len(twos) != len(slices):
        raise ValueError("slices must map labels to Slice1D or Slice2D results")
    panels = (1 if ones else 0) + len(twos)
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4.5), squeeze=False)
    axes = list(axes[0])
    if ones:
        ax = axes.pop(0)
        for label, s in ones.items():
            ax.plot(s.alphas, s.loss, "-", label=label)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("loss (log scale)" if log else "loss")
        if log:
            ax.set_yscale("log")
        ax.set_title(f"{title}: 1-D")
        ax.legend(fontsize="small")
    for ax, (label, s) in zip(axes, twos.items()):
        z = np.log10(s.loss) if log else s.loss
        cs = ax.contour(s.alphas, s.betas, z, levels=20, cmap="viridis")
        ax.clabel(cs, fontsize="x-small")
        ax.plot([0], [0], "*", color="gold", markeredgecolor="black", markersize=12, label=label)
        ax.set_xlabel("α (direction 1)")
        ax.set_ylabel("β (direction 2)")
        ax.set_title(f"{title}: {'log10 ' if log else ''}loss around {label}")
        ax.legend(fontsize="small")
    fig.tight_layout()
    return save(fig, path)
