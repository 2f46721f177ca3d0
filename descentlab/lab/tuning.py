"""Tuning with the same budget for every optimizer, as in DeepOBS, repeated per tuning seed.

Schneider, Balles & Hennig 2019, "DeepOBS: A Deep Learning Optimizer Benchmark Suite": every
optimizer gets the same number of settings (a log-spaced grid, a log-uniform random search or a
quasi-random one, :mod:`descentlab.lab._points`), each trained once on the tuning seed; the setting with the best final validation metric is rerun
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
x 2, 8: 4 x 2, 9: 3 x 3), at most ``budget`` runs; quasi-random search covers the square of
(log learning rate, log weight decay) evenly.

``tuning.refine = N`` splits the budget in two stages (random and quasi-random search): the first
``budget - N`` settings, then, once they are all finished, ``N`` settings within a factor
``tuning.refine_factor`` on each side of the first stage's best (:func:`refinements`), trained on
the same seed and tagged ``tune`` too; the best of all ``budget`` is rerun. The sweep plans the
second stage from the stored first stage (:func:`plan_refine`), so a rerun on a store plans the
same trials.

``tuning.seeds`` repeats the whole search once per tuning seed, with other random draws and other
training seeds (Sivaprasad et al. 2020, "Optimizer benchmarking needs to account for
hyperparameter tuning"): each search's best setting is rerun on every seed. The first search is
the reported one, tagged ``tune`` and ``final`` as a single search is; a repeated search with
tuning seed ``s`` is tagged ``tune@s`` and ``final@s`` (its untuned rows too, so that each search
has a complete table). A rerun that two searches share (the same setting) is one trial.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from ..store import Trial
from ._points import round_setting
from ._settings import (
    candidates,
    center,
    decoupled,
    first_draw,
    lr_candidates,
    refinements,
    tunes_weight_decay,
)
from .axes import Variant
from .spec import Experiment, OptimizerSpec, ProblemSpec

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
    "plan_refine",
    "refinements",
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
    tuning seed of a repeated search (``None``: the first search); ``refined``: a search run of
    the second stage (``tuning.refine``), tagged ``tune`` as the first stage's are.
    """

    trial: Trial
    problem: str  # the problem's label in reports
    label: str
    role: str
    repeat: int | None = None
    refined: bool = False

    @property
    def tag(self) -> str:
        """The role the store tags it with: ``role``, or ``role@<seed>`` in a repeated search."""
        return self.role if self.repeat is None else f"{self.role}@{self.repeat}"


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
        epochs=exp.epochs_for(problem, tuning=tuning),
        batch_size=fields.pop("batch_size", None) or problem.problem.budget.batch_size,
        optimizer=opt.name,
        hparams={**opt.hparams, **setting},
        schedule=opt.schedule,
        schedule_args=dict(opt.schedule_args),
        tricks=variant.tricks(),
        sharpness=exp.sharpness,
        device=exp.where.type,
        deterministic=exp.deterministic,
        **fields,
    )


def row_label(opt: OptimizerSpec, variant: Variant) -> str:
    """How reports call the runs of ``opt`` in ``variant``: ``"sgdm [init=zeros]"``."""
    return f"{opt.label} [{variant.label}]" if variant.label else opt.label


def _tuned(exp: Experiment, opt: OptimizerSpec) -> bool:
    return opt.tune and exp.tuning.method != "defaults"


def searches(exp: Experiment) -> list[Search]:
    """The experiment's searches, the reported one first.

    One search without ``tuning.seeds``: its draws are seeded by ``tuning.seed`` (else 0), its
    runs train from ``tuning.seed`` (else the experiment's first seed). With ``tuning.seeds``,
    one per tuning seed ``s``, draws and training both seeded by ``s``. ``"defaults"``: one.
    """
    t = exp.tuning
    if t.seeds is None or t.method == "defaults":
        return [Search(first_draw(t), exp.seeds[0] if t.seed is None else t.seed)]
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
        trial = _trial(exp, opt, problem, variant, seed, {"lr": round_setting(center(opt))})
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


@dataclass(frozen=True, eq=False)
class _Chosen:
    """A complete search of one row on one problem and the best of its runs."""

    repeat: int | None
    problem: ProblemSpec
    label: str
    opt: OptimizerSpec
    variant: Variant
    runs: tuple[Planned, ...]
    best: Trial


def _chosen(
    exp: Experiment,
    tuning_runs: Iterable[Planned],
    score: Callable[[Trial], tuple[bool, Score | None]],
) -> list[_Chosen]:
    """Each search (tuning seed, problem, row) whose runs among ``tuning_runs`` are all
    finished, with its best run (:func:`choose`; if every run diverged, the smallest lr)."""
    by_group: dict[tuple[int | None, str, str], list[Planned]] = {}
    for p in tuning_runs:
        if p.role == "tune":
            by_group.setdefault((p.repeat, p.problem, p.label), []).append(p)
    problems = {p.label: p for p in exp.problems}
    rows = {
        (p.label, row_label(o, v)): (o, v)
        for p in exp.problems
        for o in exp.optimizers
        for v in exp.variants_for(p)
    }
    out = []
    for (repeat, label_p, label), runs in by_group.items():
        problem = problems[label_p]
        results = [score(p.trial) for p in runs]
        if not all(done for done, _ in results):
            continue
        higher = problem.problem.higher_is_better
        trials = [p.trial for p in runs]
        best = choose(zip(trials, (s for _, s in results)), higher_is_better=higher)
        if best is None:  # every setting diverged: the smallest, the report shows it
            best = min(trials, key=lambda t: t.hparams["lr"])
        opt, variant = rows[label_p, label]
        out.append(_Chosen(repeat, problem, label, opt, variant, tuple(runs), best))
    return out


def plan_refine(
    exp: Experiment,
    tuning_runs: Iterable[Planned],
    score: Callable[[Trial], tuple[bool, Score | None]],
) -> list[Planned]:
    """The second stage of every search whose first stage is complete (``tuning.refine``
    settings around its best, :func:`refinements`), trained as the first stage was.

    ``score`` as for :func:`plan_final`. The refinements are a function of the first stage's
    scores: a rerun on a store plans the same trials.
    """
    if not exp.tuning.refine:
        return []
    draws = {s.repeat: s.draw for s in searches(exp)}
    first = [p for p in tuning_runs if not p.refined]
    plan: list[Planned] = []
    for c in _chosen(exp, first, score):
        wd = tunes_weight_decay(c.opt, exp.tuning, c.variant)
        best = c.best.hparams
        for setting in refinements(c.opt, exp.tuning, best, seed=draws[c.repeat], weight_decay=wd):
            seed = c.runs[0].trial.seed
            trial = _trial(exp, c.opt, c.problem, c.variant, seed, setting, tuning=True)
            plan.append(Planned(trial, c.problem.label, c.label, "tune", c.repeat, refined=True))
    return plan


def plan_final(
    exp: Experiment,
    tuning_runs: Iterable[Planned],
    score: Callable[[Trial], tuple[bool, Score | None]],
) -> list[Planned]:
    """The reruns of each search's best setting on every seed.

    ``score(trial)`` returns ``(finished, Score or None)`` for a tuning run. A search of a
    problem and optimizer that is not complete yet (a capped or interrupted sweep, or with
    ``tuning.refine`` a first stage without its refinements among ``tuning_runs``) gets no
    reruns.
    """
    plan: list[Planned] = []
    for c in _chosen(exp, tuning_runs, score):
        if exp.tuning.refine and not any(p.refined for p in c.runs):
            continue
        for seed in exp.seeds:
            trial = _trial(exp, c.opt, c.problem, c.variant, seed, c.best.hparams)
            plan.append(Planned(trial, c.problem.label, c.label, "final", c.repeat))
    return plan
