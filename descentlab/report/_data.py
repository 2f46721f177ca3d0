"""What a report shows, read from the store and reduced over seeds.

Reports never show a single run: every number is a statistic over the seeds of one optimizer on one
problem (median and interquartile range, mean and standard deviation), with diverged and failed runs
counted. Time-to-target counts a miss as infinite. The performance profile is Dolan & Moré 2002,
"Benchmarking optimization software with performance profiles", Math. Programming 91(2).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from ..store import Store, Stored, Target, TrialResult

__all__ = [
    "Group",
    "Stats",
    "SummaryRow",
    "band",
    "best_label",
    "load_groups",
    "load_searches",
    "performance_profile",
    "stack",
    "stats",
    "summary",
]


@dataclass(frozen=True)
class Stats:
    """Mean, standard deviation, median and quartiles of the finite values, and their count."""

    mean: float
    std: float
    median: float
    q1: float
    q3: float
    n: int


def stats(values: Sequence[float]) -> Stats:
    """:class:`Stats` over the finite ``values`` (NaN everywhere when there are none)."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if x.size == 0:
        nan = float("nan")
        return Stats(nan, nan, nan, nan, nan, 0)
    q1, med, q3 = np.percentile(x, [25, 50, 75])
    return Stats(float(x.mean()), float(x.std()), float(med), float(q1), float(q3), int(x.size))


def stack(curves: Sequence[Sequence[float]]) -> np.ndarray:
    """Curves of unequal length (diverged runs stop early) as rows padded with NaN."""
    n = max((len(c) for c in curves), default=0)
    out = np.full((len(curves), n), np.nan)
    for i, c in enumerate(curves):
        out[i, : len(c)] = np.asarray(c, dtype=float)
    out[~np.isfinite(out)] = np.nan
    return out


def band(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, 25th and 75th percentiles over seeds (rows), ignoring NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
        mean = np.nanmean(rows, axis=0)
        q1, q3 = np.nanpercentile(rows, [25, 75], axis=0)
    return mean, q1, q3


@dataclass
class Group:
    """The final runs of one optimizer label on one problem of one experiment (typed store
    records, with their curves)."""

    experiment: str
    problem: str
    label: str
    runs: list[Stored] = field(default_factory=list)

    @property
    def finished(self) -> list[int]:
        """Indices of the finished runs (diverged included: they count, as failures)."""
        return [i for i, r in enumerate(self.runs) if r.status == "finished"]

    def _results(self) -> list[TrialResult]:
        return [self.runs[i].result for i in self.finished]

    @property
    def main_metric(self) -> str:
        """The problem's main metric (from the first finished run)."""
        return next((r.summary.main_metric or "loss" for r in self._results()), "loss")

    @property
    def higher_is_better(self) -> bool:
        """Whether a larger main metric is better."""
        return next((bool(r.summary.higher_is_better) for r in self._results()), False)

    def final(self, split: str, metric: str) -> list[float]:
        """The final value of ``metric`` on ``split`` of each finished run (NaN if diverged)."""
        return [math.nan if r.diverged else r.final(split, metric) for r in self._results()]

    def curve(self, split: str, metric: str) -> np.ndarray:
        """One row per finished run of the curve ``(split, metric)``, padded with NaN."""
        return stack([r.curve(split, metric) for r in self._results()])

    @property
    def steps_per_epoch(self) -> float:
        """The runs' optimizer steps per epoch (NaN for older runs)."""
        return _first([r.summary.steps_per_epoch for r in self._results()])

    @property
    def examples_per_epoch(self) -> float:
        """The training examples the runs saw per epoch (NaN for older runs)."""
        return _first([r.summary.examples_per_epoch for r in self._results()])

    def sharpness(self, key: str) -> list[float]:
        """A sharpness measure of each finished run's final point (NaN where not measured)."""
        return [float((r.summary.sharpness or {}).get(key, math.nan)) for r in self._results()]

    def epochs_to_target(self) -> list[float]:
        """Epochs to reach the problem's target per finished run; a miss is ``inf``."""
        out = []
        for r in self._results():
            e = r.summary.epochs_to_target
            out.append(math.inf if e is None or r.diverged else float(e))
        return out

    def median_epochs_to_target(self) -> float:
        """The median over finished runs of :meth:`epochs_to_target` (``inf`` if most missed)."""
        e = self.epochs_to_target()
        return float(np.median(e)) if e else math.inf

    @property
    def lrs(self) -> list[float]:
        """The distinct learning rates of the runs (one, after tuning)."""
        return sorted({r.trial.hparams.get("lr") for r in self.runs} - {None})

    @property
    def weight_decays(self) -> list[float]:
        """The distinct weight decays the runs set in their hyperparameters (one, after a joint
        search of learning rate and weight decay; none where the optimizer's default applies)."""
        return sorted({r.trial.hparams.get("weight_decay") for r in self.runs} - {None})

    @property
    def devices(self) -> list[str]:
        """Where the finished runs ran (:attr:`~descentlab.store.Placement.label`), sorted."""
        return sorted({r.placement.label for r in self._results()})

    def wall_times(self) -> list[float]:
        """Each finished run's wall time (seconds)."""
        return [r.wall_time for r in self._results()]

    @property
    def target(self) -> Target | None:
        """The problem's target as its finished runs recorded it."""
        return next((r.summary.target for r in self._results()), None)


def _first(values: list[int | None]) -> float:
    return float(next((v for v in values if v is not None), math.nan))


def _order(names: list[str], preferred: list[str]) -> list[str]:
    """``names`` in the experiment's order (``x@defaults`` right after ``x``), others last."""
    rank = {n: i for i, n in enumerate(preferred)}

    def key(n: str) -> tuple[int, bool, str]:
        base = n.removesuffix("@defaults")
        return rank.get(base, len(rank)), n != base, n

    return sorted(names, key=key)


def best_label(groups: Mapping[str, Group]) -> str | None:
    """The label with the best median test main metric (``None`` if no median is finite)."""
    scored = [(stats(g.final("test", g.main_metric)).median, k) for k, g in groups.items()]
    scored = [(m, k) for m, k in scored if math.isfinite(m)]
    if not scored:
        return None
    higher = next(iter(groups.values())).higher_is_better
    return (max if higher else min)(scored)[1]


def load_groups(store: Store, role: str = "final") -> dict[str, dict[str, dict[str, Group]]]:
    """``{experiment: {problem: {label: Group}}}`` of the final runs, in the experiment's order.

    ``role``: ``"final"`` (the reported runs: the first search's) or ``"final@<seed>"`` (the
    reruns of the search repeated with that tuning seed).
    """
    out: dict[str, dict[str, dict[str, Group]]] = {}
    for t in store.records(role=role, curves=True):
        tag = t.tag
        labels = out.setdefault(tag.experiment, {}).setdefault(tag.problem, {})
        labels.setdefault(tag.label, Group(tag.experiment, tag.problem, tag.label)).runs.append(t)
    specs = store.experiments()
    for name, problems in out.items():
        spec = specs.get(name)
        labels = spec.labels if spec is not None else []
        ordered = _order(list(problems), list(spec.problem_labels) if spec is not None else [])
        out[name] = {
            p: {k: problems[p][k] for k in _order(list(problems[p]), labels)} for p in ordered
        }
    return out


def load_searches(store: Store) -> dict[str, dict[str, dict[str, list[tuple[float, float]]]]]:
    """``{experiment: {problem: {label: [(lr, final validation main metric)]}}}`` of the search
    runs, sorted by lr; a diverged or failed run scores NaN."""
    out: dict[str, dict[str, dict[str, list[tuple[float, float]]]]] = {}
    for t in store.records(role="tune"):
        r = t.result
        ok = r is not None and r.ok
        score = r.final("val", r.summary.main_metric) if ok else math.nan
        runs = out.setdefault(t.tag.experiment, {}).setdefault(t.tag.problem, {})
        runs.setdefault(t.tag.label, []).append((t.trial.hparams["lr"], score))
    for problems in out.values():
        for labels in problems.values():
            for runs in labels.values():
                runs.sort()
    return out


def performance_profile(
    costs: Mapping[str, Mapping[str, float]], taus: np.ndarray
) -> dict[str, np.ndarray]:
    """Dolan & Moré's profile: for each solver, the fraction of problems within ``tau`` of the best.

    Args:
        costs: ``{problem: {solver: cost}}``, ``inf`` for a miss.
        taus: the ratios at which to evaluate the profile (>= 1).

    Returns:
        ``{solver: rho(taus)}`` with ``rho_s(tau) = |{p : t_ps <= tau * min_s t_ps}| / |P|``. A
        problem no solver solves counts against every solver.
    """
    solvers = sorted({s for per in costs.values() for s in per})
    ratios = {s: [] for s in solvers}
    for per in costs.values():
        best = min((c for c in per.values()), default=math.inf)
        for s in solvers:
            c = per.get(s, math.inf)
            ratios[s].append(c / best if math.isfinite(c) and best > 0 else math.inf)
    n = max(1, len(costs))
    return {s: np.array([sum(r <= t for r in ratios[s]) / n for t in taus]) for s in solvers}


@dataclass(frozen=True)
class SummaryRow:
    """One optimizer label on one problem, over its seeds: the row of ``descentlab compare``.

    ``row["label"]`` reads a field too, as the plain dicts of earlier releases did.
    """

    label: str
    lrs: list[float]
    runs: int
    diverged: int
    metric: str
    test: Stats
    train_loss: Stats
    wall_time: Stats
    device: str
    epochs_to_target: float

    @classmethod
    def of(cls, label: str, g: Group) -> SummaryRow:
        """The row of the group ``g``."""
        return cls(
            label=label,
            lrs=g.lrs,
            runs=len(g.runs),
            diverged=sum(1 for i in g.finished if g.runs[i].result.diverged),
            metric=g.main_metric,
            test=stats(g.final("test", g.main_metric)),
            train_loss=stats(g.final("train", "loss")),
            wall_time=stats(g.wall_times()),
            device=", ".join(g.devices),
            epochs_to_target=g.median_epochs_to_target(),
        )

    def __getitem__(self, key: str) -> Any:
        if key not in {f.name for f in fields(self)}:
            raise KeyError(key)
        return getattr(self, key)


def summary(store: Store, experiment: str) -> dict[str, list[SummaryRow]]:
    """Per problem, one row per optimizer label: lr, runs, diverged, test main metric statistics,
    where the runs ran (``device``) and their wall time."""
    return {
        problem: [SummaryRow.of(label, g) for label, g in groups.items()]
        for problem, groups in load_groups(store).get(experiment, {}).items()
    }
