"""Learning-rate tuning with the same budget for every optimizer, as in DeepOBS.

Schneider, Balles & Hennig 2019, "DeepOBS: A Deep Learning Optimizer Benchmark Suite": every
optimizer gets the same number of learning rates (a log-spaced grid or a log-uniform random
search), each trained once on the tuning seed; the setting with the best final validation metric is
rerun on every seed, and only those reruns are reported (ties on the metric go to the lower
validation loss). A diverged or failed tuning run scores
worst; if every setting diverged, the smallest learning rate is rerun, so the report shows it. The ``"defaults"`` method skips tuning and runs each optimizer at its paper's default
learning rate (the registry's ``lr``, or the class default for an importable optimizer).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from ..store import Trial
from ._build import default_lr, load_problem
from .axes import Variant
from .devices import resolve
from .spec import Experiment, OptimizerSpec, ProblemSpec, Tuning

__all__ = [
    "DEFAULTS_SUFFIX",
    "Planned",
    "Score",
    "choose",
    "lr_candidates",
    "plan_final",
    "plan_initial",
    "row_label",
]

DEFAULTS_SUFFIX = "@defaults"


@dataclass(frozen=True, eq=False)
class Planned:
    """One trial as an experiment sees it: the trial, its problem's label, its label and role.

    ``role`` is ``"tune"`` (a learning-rate search run) or ``"final"`` (a reported run).
    """

    trial: Trial
    problem: str  # the problem's label in reports
    label: str
    role: str


def _round(lr: float) -> float:
    return float(f"{lr:.4g}")  # 4 significant digits: readable labels, stable hashes


def _center(opt: OptimizerSpec) -> float:
    return float(opt.hparams.get("lr", default_lr(opt.name)))


def lr_candidates(opt: OptimizerSpec, tuning: Tuning) -> list[float]:
    """The ``tuning.budget`` learning rates tried for ``opt`` (the same count for everyone).

    The range is ``tuning.lr_range`` or ``[lr0 / lr_factor, lr0 * lr_factor]`` around the
    optimizer's own ``lr0``. Random search draws the same quantiles for every optimizer (seeded by
    ``tuning.seed``), so no optimizer gets luckier draws than another.
    """
    if tuning.lr_range is not None:
        lo, hi = tuning.lr_range
    else:
        lr0 = _center(opt)
        lo, hi = lr0 / tuning.lr_factor, lr0 * tuning.lr_factor
    if tuning.budget == 1:
        return [_round(math.sqrt(lo * hi))]
    if tuning.method == "grid":
        u = np.linspace(0.0, 1.0, tuning.budget)
    else:
        u = np.sort(np.random.default_rng(tuning.seed or 0).random(tuning.budget))
    return [_round(math.exp(math.log(lo) + x * (math.log(hi) - math.log(lo)))) for x in u]


def _trial(
    exp: Experiment,
    opt: OptimizerSpec,
    problem: ProblemSpec,
    variant: Variant,
    seed: int,
    lr: float,
    *,
    tuning: bool = False,
) -> Trial:
    """A trial of the experiment: ``opt`` at ``lr`` on ``problem`` in ``variant``, from ``seed``."""
    budget = load_problem(problem.name).budget
    epochs = exp.epochs or budget.epochs
    if tuning:
        epochs = exp.tuning.epochs or epochs
    fields = variant.fields()
    return Trial(
        problem=problem.name,
        options={**problem.options, **variant.options()},
        seed=seed,
        epochs=epochs,
        batch_size=fields.pop("batch_size", None) or budget.batch_size,
        optimizer=opt.name,
        hparams={**opt.hparams, "lr": lr},
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


def _tuning_seed(exp: Experiment) -> int:
    return exp.seeds[0] if exp.tuning.seed is None else exp.tuning.seed


def plan_initial(exp: Experiment) -> list[Planned]:
    """Every trial that needs no tuning result: the search runs and the untuned final runs."""
    plan: list[Planned] = []
    for problem in exp.problems:
        for variant in exp.variants_for(problem):
            for opt in exp.optimizers:
                label = row_label(opt, variant)
                if _tuned(exp, opt):
                    for lr in lr_candidates(opt, exp.tuning):
                        trial = _trial(
                            exp, opt, problem, variant, _tuning_seed(exp), lr, tuning=True
                        )
                        plan.append(Planned(trial, problem.label, label, "tune"))
                    if not exp.tuning.defaults:
                        continue
                    label += DEFAULTS_SUFFIX
                for seed in exp.seeds:
                    trial = _trial(exp, opt, problem, variant, seed, _round(_center(opt)))
                    plan.append(Planned(trial, problem.label, label, "final"))
    return plan


Score = tuple[float, float]
"""A search run's final validation (main metric, loss); ``None`` if it diverged or failed."""


def choose(scores: Iterable[tuple[float, Score | None]], *, higher_is_better: bool) -> float | None:
    """The learning rate with the best validation metric; ties go to the lower validation loss.

    ``None`` or non-finite scores (diverged, failed) rank last. A tie on both goes to the first
    (the smallest learning rate, as candidates are sorted). The loss breaks ties that a coarse
    metric leaves (accuracy on a small split, or a metric stuck at one value for every setting).
    """
    best: tuple[float, tuple[float, float]] | None = None
    for lr, score in scores:
        if score is None or not all(math.isfinite(x) for x in score):
            continue
        metric, loss = score
        signed = (metric if higher_is_better else -metric, -loss)
        if best is None or signed > best[1]:
            best = (lr, signed)
    return None if best is None else best[0]


def plan_final(
    exp: Experiment,
    tuning_runs: Iterable[Planned],
    score: Callable[[Trial], tuple[bool, Score | None]],
) -> list[Planned]:
    """The reruns of each optimizer's best learning rate on every seed.

    ``score(trial)`` returns ``(finished, Score or None)`` for a tuning run. A problem
    and optimizer whose search is not complete yet (a capped or interrupted sweep) get no reruns.
    """
    by_group: dict[tuple[str, str], list[Planned]] = {}
    for p in tuning_runs:
        if p.role == "tune":
            by_group.setdefault((p.problem, p.label), []).append(p)
    plan: list[Planned] = []
    problems = {p.label: p for p in exp.problems}
    rows = {
        (p.label, row_label(o, v)): (o, v)
        for p in exp.problems
        for o in exp.optimizers
        for v in exp.variants_for(p)
    }
    for (label_p, label), runs in by_group.items():
        problem = problems[label_p]
        results = [score(p.trial) for p in runs]
        if not all(done for done, _ in results):
            continue
        higher = load_problem(problem.name).higher_is_better
        lrs = [p.trial.hparams["lr"] for p in runs]
        best = choose(zip(lrs, (s for _, s in results)), higher_is_better=higher)
        if best is None:  # every setting diverged: rerun the smallest, the report shows it
            best = min(lrs)
        opt, variant = rows[label_p, label]
        for seed in exp.seeds:
            trial = _trial(exp, opt, problem, variant, seed, best)
            plan.append(Planned(trial, label_p, label, "final"))
    return plan
