"""The settings a search tries: each optimizer's ranges, the first stage's points and the
refinement's around the first stage's best (:mod:`descentlab.lab.tuning` plans their trials).

A setting is a learning rate or, with ``tuning.weight_decay_range``, for an optimizer whose weight
decay is decoupled (:func:`tunes_weight_decay`), a learning rate and a weight decay. The points
are the method's (:mod:`descentlab.lab._points`), the same for every optimizer, mapped into each
optimizer's own range.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ._points import log_scale, unit_points
from .axes import Variant
from .spec import OptimizerSpec, Tuning

__all__ = [
    "candidates",
    "center",
    "decoupled",
    "first_draw",
    "lr_candidates",
    "refinements",
    "tunes_weight_decay",
]


def center(opt: OptimizerSpec) -> float:
    """The optimizer's own learning rate: its ``hparams.lr``, else its default (``opt.lr0``)."""
    return opt.lr0


def decoupled(opt: OptimizerSpec) -> bool:
    """Whether ``opt``'s weight decay is decoupled from the gradient (Loshchilov & Hutter 2019).

    Read, when the experiment was read, from the built optimizer's ``decoupled_weight_decay``
    flag, the one torch.optim and the registry's classes set: true for ``adamw``, ``sgdw``,
    ``sgdwm``, ``torch.optim.AdamW`` and ``adam`` with ``decoupled_weight_decay = true``, false
    for an optimizer without the flag.
    """
    return opt.decoupled


def tunes_weight_decay(opt: OptimizerSpec, tuning: Tuning, variant: Variant | None = None) -> bool:
    """Whether the search of ``opt`` is over (lr, weight decay): the tuning has a
    ``weight_decay_range``, ``opt`` is tuned, decoupled and fixes no ``weight_decay`` in its
    hparams, and the variant applies no weight decay of its own (the ``weight_decay`` axis)."""
    return (
        tuning.weight_decay_range is not None
        and tuning.method != "defaults"
        and opt.tune
        and "weight_decay" not in opt.hparams
        and (variant is None or "weight_decay" not in variant.tricks())
        and decoupled(opt)
    )


def _lr_range(opt: OptimizerSpec, tuning: Tuning) -> tuple[float, float]:
    if tuning.lr_range is not None:
        return tuning.lr_range
    lr0 = center(opt)
    return lr0 / tuning.lr_factor, lr0 * tuning.lr_factor


def _settings(
    u: tuple[np.ndarray, np.ndarray],
    lrs: tuple[float, float],
    wds: tuple[float, float] | None,
) -> list[dict[str, float]]:
    settings = [{"lr": lr} for lr in log_scale(*lrs, u[0])]
    if wds is None:
        return settings
    return [{**s, "weight_decay": wd} for s, wd in zip(settings, log_scale(*wds, u[1]))]


def candidates(
    opt: OptimizerSpec, tuning: Tuning, *, seed: int | None = None, weight_decay: bool = False
) -> list[dict[str, float]]:
    """The settings of ``opt``'s first stage: ``tuning.budget - tuning.refine`` at most (the
    same for everyone; the whole budget without a refinement).

    Each is ``{"lr": ...}``, or with ``weight_decay`` ``{"lr": ..., "weight_decay": ...}``,
    sorted by learning rate. The learning-rate range is ``tuning.lr_range`` or ``[lr0 /
    lr_factor, lr0 * lr_factor]`` around the optimizer's own ``lr0``; the weight decay's is
    ``tuning.weight_decay_range``; both log-scaled. Random and quasi-random search map the same
    unit points into every optimizer's range, drawn from a generator seeded by ``seed`` (default:
    the first search's), so no optimizer gets luckier draws than another
    (:func:`descentlab.lab._points.unit_points`).
    """
    if weight_decay and tuning.weight_decay_range is None:
        raise ValueError("candidates: weight_decay=True needs tuning.weight_decay_range")
    n = tuning.budget - tuning.refine
    draw = first_draw(tuning) if seed is None else seed
    u = unit_points(tuning.method, n, draw, joint=weight_decay)
    wds = tuning.weight_decay_range if weight_decay else None
    return _settings(u, _lr_range(opt, tuning), wds)


def _around(x: float, factor: float, bounds: tuple[float, float]) -> tuple[float, float]:
    """``[x / factor, x * factor]`` within ``bounds``."""
    return max(x / factor, bounds[0]), min(x * factor, bounds[1])


def refinements(
    opt: OptimizerSpec,
    tuning: Tuning,
    best: Mapping[str, float],
    *,
    seed: int | None = None,
    weight_decay: bool = False,
) -> list[dict[str, float]]:
    """The ``tuning.refine`` settings of ``opt``'s second stage, around the first stage's
    ``best`` setting, sorted by learning rate.

    The ranges: ``[best / refine_factor, best * refine_factor]`` for the learning rate (and the
    weight decay, with ``weight_decay``), within the first stage's ranges; the points: the
    method's, from another stream of the same seed (the same for every optimizer).
    """
    if not tuning.refine:
        return []
    draw = first_draw(tuning) if seed is None else seed
    u = unit_points(tuning.method, tuning.refine, draw, joint=weight_decay, stage=1)
    lrs = _around(best["lr"], tuning.refine_factor, _lr_range(opt, tuning))
    wds = None
    if weight_decay:
        if tuning.weight_decay_range is None:
            raise ValueError("refinements: weight_decay=True needs tuning.weight_decay_range")
        wds = _around(best["weight_decay"], tuning.refine_factor, tuning.weight_decay_range)
    return _settings(u, lrs, wds)


def lr_candidates(opt: OptimizerSpec, tuning: Tuning) -> list[float]:
    """The learning rates of a learning-rate-only search (:func:`candidates`) of ``opt``."""
    return [c["lr"] for c in candidates(opt, tuning)]


def first_draw(tuning: Tuning) -> int:
    """The draw seed of the first search: the first tuning seed, ``tuning.seed``, else 0."""
    return tuning.seeds[0] if tuning.seeds else tuning.seed or 0
