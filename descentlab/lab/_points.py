"""Where a search looks: each method's points in the unit square, the same for every optimizer.

A search's setting is a point ``(u_lr, u_wd)`` of the unit square, mapped log-linearly into each
optimizer's own learning-rate range (and the weight-decay range, where the optimizer tunes it):
every optimizer gets the same points, so none gets luckier draws than another.

* ``"grid"``: ``n`` log-spaced learning rates, ends included; a joint grid is the product of
  ``n // floor(sqrt(n))`` learning rates and ``floor(sqrt(n))`` weight decays.
* ``"random"``: ``n`` learning-rate quantiles (sorted), then ``n`` weight-decay quantiles drawn
  next from the same generator (in draw order).
* ``"quasi-random"``: the first ``n`` points of a scrambled Sobol sequence in two dimensions
  (Owen 1998; scipy's ``qmc.Sobol``), sorted by the learning rate. The first coordinate is the
  learning rate's, for every optimizer, whether or not it tunes its weight decay, so that
  learning-rate-only and joint searches share their learning rates. For ``n`` a power of two,
  each of ``n`` equal bins of either coordinate holds exactly one point (a (t, m, 2)-net whose
  one-dimensional projections are (0, m, 1)-nets), so any budget covers the range evenly, where
  ``n`` random draws leave gaps (the Deep Learning Tuning Playbook's argument, Godbole et al.
  2023; AlgoPerf's baselines search this way).

A first stage of one point is the middle of the square (the default learning rate, for a range
centred on it). ``stage`` draws the points of a later stage (a refinement) from another stream
of the same seed.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import qmc

__all__ = ["log_scale", "round_setting", "unit_points"]


def round_setting(x: float) -> float:
    """``x`` to 4 significant digits: readable labels, stable trial keys."""
    return float(f"{x:.4g}")


def log_scale(lo: float, hi: float, u: np.ndarray) -> list[float]:
    """Unit coordinates ``u`` mapped log-linearly onto ``[lo, hi]``, rounded."""
    return [round_setting(math.exp(math.log(lo) + x * (math.log(hi) - math.log(lo)))) for x in u]


def _grid(n: int) -> np.ndarray:
    return np.linspace(0.0, 1.0, n) if n > 1 else np.array([0.5])


def _generator(seed: int, stage: int) -> np.random.Generator:
    # stage 0 keeps the generator the first stage always had: the same keys as before stages
    return np.random.default_rng(seed if stage == 0 else [seed, stage])


def _sobol(n: int, rng: np.random.Generator) -> np.ndarray:
    """The first ``n`` points of a scrambled two-dimensional Sobol sequence, by learning rate."""
    sobol = qmc.Sobol(d=2, scramble=True, rng=rng)
    # the first n of the next power of two: the same points as random(n), without its warning
    # that only powers of two keep the balance
    u = sobol.random_base2((n - 1).bit_length())[:n]
    return u[np.argsort(u[:, 0], kind="stable")]


def unit_points(
    method: str, n: int, seed: int, *, joint: bool, stage: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The unit coordinates ``(u_lr, u_wd)`` of ``n`` settings of ``method``, seeded by ``seed``.

    Args:
        method: ``"grid"``, ``"random"`` or ``"quasi-random"``.
        n: how many settings (a joint grid may have fewer).
        seed: the search's draw seed (:class:`descentlab.lab.tuning.Search`).
        joint: the settings pair a learning rate with a weight decay (only a grid differs).
        stage: 0 for the first stage; a refinement draws from stream ``stage`` of ``seed``.

    Returns:
        Two arrays of equal length: the learning rates' coordinates, sorted, and the weight
        decays' (meaningful with ``joint``).
    """
    if n == 1 and stage == 0:
        return np.array([0.5]), np.array([0.5])
    if method == "grid":
        if not joint:
            u = _grid(n)
            return u, np.full_like(u, 0.5)
        n_wd = math.isqrt(n)
        u_lr, u_wd = _grid(n // n_wd), _grid(n_wd)
        return np.repeat(u_lr, len(u_wd)), np.tile(u_wd, len(u_lr))
    rng = _generator(seed, stage)
    if method == "quasi-random":
        u = _sobol(n, rng)
        return u[:, 0], u[:, 1]
    if method != "random":
        raise ValueError(f"method {method!r}: no points; expected grid, random or quasi-random")
    u_lr = np.sort(rng.random(n))
    return u_lr, rng.random(n)
