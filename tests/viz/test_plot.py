"""Still figures and animations are written (tiny sizes; the Agg backend)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest
from PIL import Image

from descentlab.viz import animate, plot, trajectories


@pytest.fixture(scope="module")
def paths():
    return trajectories("himmelblau", ["sgd", "adam"], steps=6)


def test_plot_png(tmp_path, paths):
    out = plot("himmelblau", paths, tmp_path / "sub" / "h.png", dpi=30)
    assert out.exists() and Image.open(out).format == "PNG"


def test_animate_gif_frames(tmp_path, paths):
    out = animate("himmelblau", paths, tmp_path / "h.gif", frames=3, dpi=20)
    img = Image.open(out)
    assert img.format == "GIF" and img.n_frames == 3


def test_mp4_without_ffmpeg_is_a_clear_error(tmp_path, paths, monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(RuntimeError, match="ffmpeg"):
        animate("himmelblau", paths, tmp_path / "h.mp4", frames=2, dpi=20)


def test_plot_slices(tmp_path):
    import numpy as np

    from descentlab.diagnostics import Slice1D, Slice2D
    from descentlab.viz import plot_slices

    a = np.linspace(-1, 1, 5)
    one = Slice1D(a, a**2 + 1)
    two = Slice2D(a, a, a[None] ** 2 + a[:, None] ** 2 + 1)
    out = plot_slices({"adam": one, "sgdm": one, "adam ": two}, tmp_path / "l.png", log=True)
    assert out.exists()
    with pytest.raises(ValueError, match="Slice1D or Slice2D"):
        plot_slices({"x": a}, tmp_path / "bad.png")
