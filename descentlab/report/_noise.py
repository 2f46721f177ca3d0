"""Which conclusions survive the tuning's own randomness: one search per tuning seed, compared.

Sivaprasad et al. 2020, "Optimizer benchmarking needs to account for hyperparameter tuning"
(ICML): a ranking of optimizers is only as good as the search behind it. An experiment with
``tuning.seeds`` repeats its search per tuning seed and reruns each search's best setting on every
seed (:mod:`descentlab.lab.tuning`). On each problem, a search *shows* that one optimizer is the
best (the best median test metric) and, for each pair of optimizers, which of the two is better
(the better median; equal medians show neither). A conclusion every search shows holds; one that
some search shows and another does not is *within tuning noise*, but only where every search of
the optimizers involved resolved their optimum (:mod:`descentlab.report._resolution`); where one
did not, the verdict says so instead: the disagreement may be the search's own holes.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..store import Store, StoredExperiment
from ._data import Group, best_label, load_groups, stats
from ._resolution import Disagreement, Resolution, Resolutions, disagreements
from .rounding import median_iqr, number

__all__ = [
    "Noise",
    "Ranking",
    "Repeats",
    "Table",
    "load_repeats",
    "problem_noise",
    "tables",
    "tuning_noise",
]

_HOLDS, _NOISE = "holds in every search", "within tuning noise"
_UNRESOLVED = "a search did not resolve the optimum"


@dataclass(frozen=True)
class Ranking:
    """Two optimizers compared in every search: the better one per search (``None``: neither,
    on equal or missing medians), the gap of their medians (``first - second``) and the
    searches of either that did not resolve its optimum."""

    first: str
    second: str
    winners: tuple[str | None, ...]
    gaps: tuple[float, ...]
    unresolved: tuple[Resolution, ...] = ()

    @property
    def holds(self) -> bool:
        """Every search shows the same winner."""
        return self.winners[0] is not None and len(set(self.winners)) == 1

    @property
    def noisy(self) -> bool:
        """Some search shows a winner that another search does not show."""
        return not self.holds and any(w is not None for w in self.winners)

    @property
    def verdict(self) -> str:
        """``"holds in every search"``, ``"within tuning noise"`` (every search of both
        resolved), ``"a search did not resolve the optimum: <which>"`` or ``"no search ranks
        them"``."""
        if self.holds:
            return _HOLDS
        if not self.noisy:
            return "no search ranks them"
        if self.unresolved:
            return f"{_UNRESOLVED}: {', '.join(r.where for r in self.unresolved)}"
        return _NOISE


@dataclass(frozen=True)
class Noise:
    """One problem's searches (``groups[i]``: the reruns of tuning seed ``seeds[i]``'s choices,
    by label), the best optimizer per search, every pairwise ranking, every search's
    resolution and the pairs of searches whose choices' results differ beyond their IQR."""

    seeds: tuple[int, ...]
    labels: tuple[str, ...]
    groups: tuple[Mapping[str, Group], ...]
    best: tuple[str | None, ...]
    rankings: tuple[Ranking, ...]
    resolutions: tuple[Resolution, ...] = ()
    disagreements: tuple[Disagreement, ...] = ()

    @property
    def best_holds(self) -> bool:
        """Every search has the same best optimizer."""
        return self.best[0] is not None and len(set(self.best)) == 1

    @property
    def best_unresolved(self) -> tuple[Resolution, ...]:
        """The unresolved searches of the optimizers that some search finds best."""
        return tuple(r for r in self.resolutions if r.label in self.best and not r.resolved)


def _median(g: Group) -> float:
    return stats(g.final("test", g.main_metric)).median


def tuning_noise(
    seeds: Sequence[int],
    searches: Sequence[Mapping[str, Group]],
    resolutions: Resolutions | None = None,
) -> Noise:
    """Compare one problem's searches: ``searches[i]`` are the final groups of tuning seed
    ``seeds[i]``. Only the labels every search has are compared, in the first search's order.
    ``resolutions``: ``{(problem, label, tuning seed): Resolution}`` (none: every search counts
    as resolved)."""
    labels = tuple(k for k in searches[0] if all(k in s for s in searches))
    problem = next(iter(searches[0].values())).problem if labels else ""
    found = [
        r
        for r in ((resolutions or {}).get((problem, k, s)) for k in labels for s in seeds)
        if r is not None
    ]
    groups = tuple({k: s[k] for k in labels} for s in searches)
    higher = next(iter(searches[0].values())).higher_is_better if labels else False
    rankings = []
    for a, b in itertools.combinations(labels, 2):
        winners, gaps = [], []
        for g in groups:
            gap = _median(g[a]) - _median(g[b])
            gaps.append(gap)
            better = gap > 0 if higher else gap < 0
            winners.append(None if gap == 0 or not math.isfinite(gap) else a if better else b)
        unresolved = tuple(r for r in found if r.label in (a, b) and not r.resolved)
        rankings.append(Ranking(a, b, tuple(winners), tuple(gaps), unresolved))
    best = tuple(best_label(g) if g else None for g in groups)
    differ = disagreements(problem, seeds, groups) if labels else ()
    return Noise(tuple(seeds), labels, groups, best, tuple(rankings), tuple(found), differ)


Table = tuple[list[str], list[list[str]]]


def _setting(g: Group) -> str:
    """The chosen setting of a group: its learning rate, and its weight decay if it set one."""
    text = "lr " + "/".join(number(x) for x in g.lrs)
    return text + (
        ", wd " + "/".join(number(x) for x in g.weight_decays) if g.weight_decays else ""
    )


def tables(noise: Noise) -> tuple[str, Table, Table]:
    """A sentence on the best optimizer, each optimizer's choice and result per search, and each
    pairwise ranking per search with its verdict."""
    seeds = [f"tuning seed {s}" for s in noise.seeds]
    metric = next(iter(noise.groups[0].values())).main_metric if noise.labels else "metric"
    head = ["optimizer"] + [f"{s}: {h}" for s in seeds for h in ("setting", f"test {metric}")]
    rows = []
    for label in noise.labels:
        cells = [label]
        for g in noise.groups:
            m = stats(g[label].final("test", metric))
            cells += [_setting(g[label]), median_iqr(m.median, m.q1, m.q3)]
        rows.append(cells)
    pairs = (
        ["pair"] + [f"{s}: better (gap of medians)" for s in seeds] + ["verdict"],
        [
            [f"{r.first} vs {r.second}"]
            + [f"{w or 'neither'} ({number(abs(gap))})" for w, gap in zip(r.winners, r.gaps)]
            + [r.verdict]
            for r in noise.rankings
        ],
    )
    best = ", ".join(f"{b or '–'} ({s})" for b, s in zip(noise.best, seeds))
    held = sum(r.holds for r in noise.rankings)
    noisy = sum(r.noisy and not r.unresolved for r in noise.rankings)
    unresolved = sum(r.noisy and bool(r.unresolved) for r in noise.rankings)
    verdict = _HOLDS if noise.best_holds else _UNRESOLVED if noise.best_unresolved else _NOISE
    sentence = (
        f"Best median test {metric}: {best}: {verdict}. "
        f"Of {len(noise.rankings)} pairwise rankings, {held} hold in every search and {noisy} are"
        " within tuning noise: one search shows them, another does not (Sivaprasad et al. 2020)."
    )
    if unresolved:
        sentence += (
            f" {unresolved} more differ between searches where {_UNRESOLVED} (a best at the"
            f" edge of its range or without a searched neighbour within a factor 3): not a"
            " verdict on the optimizers."
        )
    return sentence, (head, rows), pairs


Repeats = Mapping[int, Mapping[str, Mapping[str, Group]]]
"""The repeated searches of one experiment: ``{tuning seed: {problem: {label: Group}}}``."""


def load_repeats(store: Store, name: str, spec: StoredExperiment) -> Repeats:
    """The final groups of every repeated search of experiment ``name`` (``final@<seed>``)."""
    seeds = spec.tuning.seeds or ()
    return {s: load_groups(store, role=f"final@{s}").get(name, {}) for s in seeds[1:]}


def problem_noise(
    problem: str,
    groups: Mapping[str, Group],
    repeats: Repeats,
    spec: StoredExperiment,
    resolutions: Resolutions | None = None,
) -> Noise | None:
    """A problem's searches compared, if its search was repeated with other seeds."""
    seeds = spec.tuning.seeds or ()
    others = [s for s in seeds[1:] if problem in repeats.get(s, {})]
    if not others:
        return None
    searches = [groups, *(repeats[s][problem] for s in others)]
    return tuning_noise([seeds[0], *others], searches, resolutions)
