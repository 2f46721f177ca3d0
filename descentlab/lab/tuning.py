"""Tuning with the same budget for every optimizer, as in DeepOBS, repeated per tuning seed.

Schneider, Balles & Hennig 2019, "DeepOBS: A Deep Learning Optimizer Benchmark Suite": every
optimizer gets the same number of settings (a log-spaced grid or a log-uniform random search),
each trained once on the tuning seed; the setting with the best final validation metric is rerun
on every seed, and only those reruns are reported (ties on the metric go to the lower validation
loss). A diverged or failed tuning run scores worst; if every setting diverged, the smallest
learning rate is rerun, so the report shows it. The ``"defaults"`` method skips tuning and runs
each optimizer at its paper's default learning rate (the registry's ``lr``, or the class default
for an importable optimizer).

A setting is a learning rate or, with ``tuning.weight_decay_range``, for an optimizer whose weight
decay is decoupled (:func:`tunes_weight_decay`), a learning rate and a weight decay, in the same
budget: random search pairs the learning-rate quantiles every optimizer gets with as many
weight-decay quantiles drawn next from the same generator; a grid is the product of
``budget // floor(sqrt(budget))`` learning rates and ``floor(sqrt(budget))`` weight decays (6: 3
x 2, 8: 4 x 2, 9: 3 x 3), at most ``budget`` runs.

``tuning.seeds`` repeats the whole search once per tuning seed, with other random draws and other
training seeds (Sivaprasad et al. 2020, "Optimizer benchmarking needs to account for
hyperparameter tuning"): each search's best setting is rerun on every seed. The first search is
the reported one, tagged ``tune`` and ``final`` as a single search is; a repeated search with
tuning seed ``s`` is tagged ``tune@s`` and ``final@s`` (its untuned rows too, so that each search
has a complete table). A rerun that two searches share (the same setting) is one trial.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

from ..store import Trial
from ._build import build_optimizer, default_lr, load_problem
from .axes import Variant
from .devices import resolve
from .spec import Experiment, OptimizerSpec, ProblemSpec, Tuning

__all__ = [
    "DEFAULTS_SUFFIX",
    "Planned",
    "Score",
    "Search",
    "candidates",
    "choose",
    "decoupled",
    "lr_candidates",
    "plan_final",
    "plan_initial",
    "row_label",
    "searches",
    "tunes_weight_decay",
]

DEFAULTS_SUFFIX = "@defaults"


@dataclass(frozen=True)
class Search:
    """One search of an experiment: the seed of its random draws and of its runs' training.

    ``repeat`` is ``None`` for the first (reported) search, else its tuning seed.
    """

    draw: int
    train: int
    repeat: int | None = None


@dataclass(frozen=True, eq=False)
class Planned:
    """One trial as an experiment sees it: the trial, its problem's label, its label and role.

    ``role`` is ``"tune"`` (a search run) or ``"final"`` (a reported run); ``repeat`` is the
    tuning seed of a repeated search (``None``: the first search).
    """

    trial: Trial
    problem: str  # the problem's label in reports
    label: str
    role: str
    repeat: int | None = None

    @property
    def tag(self) -> str:
        """The role the store tags it with: ``role``, or ``role@<seed>`` in a repeated search."""
        return self.role if self.repeat is None else f"{self.role}@{self.repeat}"


def _round(x: float) -> float:
    return float(f"{x:.4g}")  # 4 significant digits: readable labels, stable hashes


def _center(opt: OptimizerSpec) -> float:
    return float(opt.hparams.get("lr", default_lr(opt.name)))


@functools.lru_cache(maxsize=256)
def _decoupled(name: str, hparams: str) -> bool:
    dummy = [torch.zeros(1, requires_grad=True)]
    optimizer = build_optimizer(name, dummy, json.loads(hparams))
    return bool(optimizer.param_groups[0].get("decoupled_weight_decay", False))


def decoupled(opt: OptimizerSpec) -> bool:
    """Whether ``opt``'s weight decay is decoupled from the gradient (Loshchilov & Hutter 2019).

    Read from the built optimizer's ``decoupled_weight_decay`` flag, the one torch.optim and
    the registry's classes set: true for ``adamw``, ``sgdw``, ``sgdwm``, ``torch.optim.AdamW``
    and ``adam`` with ``decoupled_weight_decay = true``, false for an optimizer without the flag.
    """
    hparams = json.dumps({**opt.hparams, "lr": _center(opt)}, sort_keys=True, default=str)
    return _decoupled(opt.name, hparams)


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


def _log_scale(lo: float, hi: float, u: np.ndarray) -> list[float]:
    return [_round(math.exp(math.log(lo) + x * (math.log(hi) - math.log(lo)))) for x in u]


def _grid(n: int) -> np.ndarray:
    return np.linspace(0.0, 1.0, n) if n > 1 else np.array([0.5])


def candidates(
    opt: OptimizerSpec, tuning: Tuning, *, seed: int | None = None, weight_decay: bool = False
) -> list[dict[str, float]]:
    """The settings tried for ``opt``: at most ``tuning.budget`` (the same for everyone).

    Each is ``{"lr": ...}``, or with ``weight_decay`` ``{"lr": ..., "weight_decay": ...}``,
    sorted by learning rate. The learning-rate range is ``tuning.lr_range`` or ``[lr0 /
    lr_factor, lr0 * lr_factor]`` around the optimizer's own ``lr0``; the weight decay's is
    ``tuning.weight_decay_range``; both log-scaled. Random search draws the same quantiles for
    every optimizer from a generator seeded by ``seed`` (default: the first search's), so no
    optimizer gets luckier draws than another: first the learning rates' (sorted), then the
    weight decays' (in draw order).
    """
    if weight_decay and tuning.weight_decay_range is None:
        raise ValueError("candidates: weight_decay=True needs tuning.weight_decay_range")
    if tuning.lr_range is not None:
        lo, hi = tuning.lr_range
    else:
        lr0 = _center(opt)
        lo, hi = lr0 / tuning.lr_factor, lr0 * tuning.lr_factor
    budget = tuning.budget
    if budget == 1:
        u_lr, u_wd = np.array([0.5]), np.array([0.5])
    elif tuning.method == "grid" and weight_decay:
        n_wd = math.isqrt(budget)
        u_lr, u_wd = _grid(budget // n_wd), _grid(n_wd)
        u_lr, u_wd = np.repeat(u_lr, len(u_wd)), np.tile(u_wd, len(u_lr))
    elif tuning.method == "grid":
        u_lr = _grid(budget)
    else:
        rng = np.random.default_rng(_first_draw(tuning) if seed is None else seed)
        u_lr = np.sort(rng.random(budget))
        u_wd = rng.random(budget)
    lrs = [{"lr": lr} for lr in _log_scale(lo, hi, u_lr)]
    if not weight_decay:
        return lrs
    wds = _log_scale(*tuning.weight_decay_range, u_wd)
    return [{**lr, "weight_decay": wd} for lr, wd in zip(lrs, wds)]


def lr_candidates(opt: OptimizerSpec, tuning: Tuning) -> list[float]:
    """The learning rates of a learning-rate-only search (:func:`candidates`) of ``opt``."""
    return [c["lr"] for c in candidates(opt, tuning)]


def _epochs(exp: Experiment, problem: ProblemSpec, *, tuning: bool) -> int:
    """A trial's epochs: the tuning's (search runs), else the problem entry's, the experiment's,
    the problem's own budget, the first given."""
    own = problem.epochs or exp.epochs or load_problem(problem.name).budget.epochs
    return (exp.tuning.epochs or own) if tuning else own


def _trial(
    exp: Experiment,
    opt: OptimizerSpec,
    problem: ProblemSpec,
    variant: Variant,
    seed: int,
    setting: Mapping[str, float],
    *,
    tuning: bool = False,
) -> Trial:
    """A trial of the experiment: ``opt`` with ``setting`` (its lr, maybe its weight decay) on
    ``problem`` in ``variant``, from ``seed``."""
    fields = variant.fields()
    return Trial(
        problem=problem.name,
        options={**problem.options, **variant.options()},
        seed=seed,
        epochs=_epochs(exp, problem, tuning=tuning),
        batch_size=fields.pop("batch_size", None) or load_problem(problem.name).budget.batch_size,
        optimizer=opt.name,
        hparams={**opt.hparams, **setting},
        schedule=opt.schedule,
        schedule_args=dict(opt.schedule_args),
        tricks=variant.tricks(),
        sharpness=exp.sharpness,
        device=resolve(exp.device).type,
        deterministic=exp.deterministic,
        **fields,
    )


def row_label(opt: OptimizerSpec, variant: Variant) -> str:
    """How reports call the runs of ``opt`` in ``variant``: ``"sgdm [init=zeros]"``."""
    return f"{opt.label} [{variant.label}]" if variant.label else opt.label


def _tuned(exp: Experiment, opt: OptimizerSpec) -> bool:
    return opt.tune and exp.tuning.method != "defaults"


def _first_draw(tuning: Tuning) -> int:
    return tuning.seeds[0] if tuning.seeds else tuning.seed or 0


def searches(exp: Experiment) -> list[Search]:
    """The experiment's searches, the reported one first.

    One search without ``tuning.seeds``: its draws are seeded by ``tuning.seed`` (else 0), its
    runs train from ``tuning.seed`` (else the experiment's first seed). With ``tuning.seeds``,
    one per tuning seed ``s``, draws and training both seeded by ``s``. ``"defaults"``: one.
    """
    t = exp.tuning
    if t.seeds is None or t.method == "defaults":
        return [Search(_first_draw(t), exp.seeds[0] if t.seed is None else t.seed)]
    first, *rest = t.seeds
    return [Search(first, first), *(Search(s, s, repeat=s) for s in rest)]


def plan_initial(exp: Experiment) -> list[Planned]:
    """Every trial that needs no tuning result: the search runs and the untuned final runs."""
    plan: list[Planned] = []
    for search in searches(exp):
        for problem in exp.problems:
            for variant in exp.variants_for(problem):
                for opt in exp.optimizers:
                    plan += _initial(exp, search, problem, variant, opt)
    return plan


def _initial(
    exp: Experiment, search: Search, problem: ProblemSpec, variant: Variant, opt: OptimizerSpec
) -> list[Planned]:
    label = row_label(opt, variant)
    plan: list[Planned] = []
    if _tuned(exp, opt):
        wd = tunes_weight_decay(opt, exp.tuning, variant)
        for setting in candidates(opt, exp.tuning, seed=search.draw, weight_decay=wd):
            trial = _trial(exp, opt, problem, variant, search.train, setting, tuning=True)
            plan.append(Planned(trial, problem.label, label, "tune", search.repeat))
        if not exp.tuning.defaults:
            return plan
        label += DEFAULTS_SUFFIX
    for seed in exp.seeds:
        trial = _trial(exp, opt, problem, variant, seed, {"lr": _round(_center(opt))})
        plan.append(Planned(trial, problem.label, label, "final", search.repeat))
    return plan


Score = tuple[float, float]
"""A search run's final validation (main metric, loss); ``None`` if it diverged or failed."""
T = TypeVar("T")


def choose(scores: Iterable[tuple[T, Score | None]], *, higher_is_better: bool) -> T | None:
    """The setting (a learning rate, or anything) with the best validation metric; ties go to
    the lower validation loss.

    ``None`` or non-finite scores (diverged, failed) rank last. A tie on both goes to the first
    (the smallest learning rate, as candidates are sorted). The loss breaks ties that a coarse
    metric leaves (accuracy on a small split, or a metric stuck at one value for every setting).
    """
    best: tuple[T, tuple[float, float]] | None = None
    for setting, score in scores:
        if score is None or not all(math.isfinite(x) for x in score):
            continue
        metric, loss = score
        signed = (metric if higher_is_better else -metric, -loss)
        if best is None or signed > best[1]:
            best = (setting, signed)
    return None if best is None else best[0]


def plan_final(
    exp: Experiment,
    tuning_runs: Iterable[Planned],
    score: Callable[[Trial], tuple[bool, Score | None]],
) -> list[Planned]:
    """The reruns of each search's best setting on every seed.

    ``score(trial)`` returns ``(finished, Score or None)`` for a tuning run. A search of a
    problem and optimizer that is not complete yet (a capped or interrupted sweep) gets no reruns.
    """
    by_group: dict[tuple[int | None, str, str], list[Planned]] = {}
    for p in tuning_runs:
        if p.role == "tune":
            by_group.setdefault((p.repeat, p.problem, p.label), []).append(p)
    plan: list[Planned] = []
    problems = {p.label: p for p in exp.problems}
    rows = {
        (p.label, row_label(o, v)): (o, v)
        for p in exp.problems
        for o in exp.optimizers
        for v in exp.variants_for(p)
    }
    for (repeat, label_p, label), runs in by_group.items():
        problem = problems[label_p]
        results = [score(p.trial) for p in runs]
        if not all(done for done, _ in results):
            continue
        higher = load_problem(problem.name).higher_is_better
        trials = [p.trial for p in runs]
        best = choose(zip(trials, (s for _, s in results)), higher_is_better=higher)
        if best is None:  # every setting diverged: rerun the smallest, the report shows it
            best = min(trials, key=lambda t: t.hparams["lr"])
        opt, variant = rows[label_p, label]
        for seed in exp.seeds:
            trial = _trial(exp, opt, problem, variant, seed, best.hparams)
            plan.append(Planned(trial, label_p, label, "final", repeat))
    return plan
