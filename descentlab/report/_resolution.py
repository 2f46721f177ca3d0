"""Did a search resolve each optimizer's best? Flags per optimizer, problem and tuning seed.

A search that leaves its best setting at the edge of its range, or with no searched neighbour
within a factor of 3, has not located the optimum: its "best" reflects where the points fell
(the Deep Learning Tuning Playbook, Godbole et al. 2023: check that the best trials are not at
the boundary, and that the space is sampled densely enough near them). Two searches whose
chosen settings give results further apart than their seeds' spread disagree beyond run-to-run
noise. The flags are read from the store alone: the search runs (tags ``tune``, ``tune@<seed>``)
and the reruns of each search's choice (``final``, ``final@<seed>``).

* **widen it**: the chosen learning rate (or the chosen weight decay, where it was searched) is
  the smallest or the largest searched;
* **under-resolved**: the nearest learning rate searched below or above the chosen one is more
  than a factor :data:`RESOLUTION` away;
* **searches differ**: the medians of two searches' reruns differ by more than the larger of
  their interquartile ranges (:class:`Disagreement`).

A search with neither of the first two is *resolved*; the tuning-noise verdicts give "within
tuning noise" only where every search involved is resolved (:mod:`descentlab.report._noise`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..store import Store, StoredExperiment
from ._data import Group, stats
from ._protocol import tuning_seeds
from .rounding import number

__all__ = [
    "RESOLUTION",
    "Disagreement",
    "Resolution",
    "disagreements",
    "load_resolutions",
    "resolution",
    "table",
]

RESOLUTION = 3.0
"""The largest factor between the chosen learning rate and its nearest searched neighbours
(issue 26: six random draws over three decades left gaps of a decade)."""
_ROUNDING = 1e-3  # settings are stored to 4 significant digits: a ratio is off by up to 1e-3


@dataclass(frozen=True)
class Resolution:
    """How one search (tuning seed ``seed``) resolved ``label``'s best on ``problem``.

    ``lrs``: the learning rates it searched, sorted; ``lr``: the one it chose; ``below`` and
    ``above``: the factors to the nearest searched below and above (``None``: none searched
    there); ``edges``: each hyperparameter whose chosen value is the smallest or the largest
    searched, with which (``("lr", "largest")``, ``("weight decay", "smallest")``; a single
    value searched is ``"only"``).
    """

    problem: str
    label: str
    seed: int
    lr: float
    lrs: tuple[float, ...]
    below: float | None
    above: float | None
    edges: tuple[tuple[str, str], ...] = ()

    @property
    def under_resolved(self) -> bool:
        """A nearest searched neighbour is more than a factor :data:`RESOLUTION` away."""
        limit = RESOLUTION * (1 + _ROUNDING)
        return any(f is not None and f > limit for f in (self.below, self.above))

    @property
    def resolved(self) -> bool:
        """Neither at an edge nor under-resolved."""
        return not self.edges and not self.under_resolved

    @property
    def flags(self) -> tuple[str, ...]:
        """The flags in words (none for a resolved search)."""
        out = []
        for name, side in self.edges:
            out.append(f"widen it: the best {name} is the {side} searched")
        if self.under_resolved:
            gaps = [
                f"{sign}{number(f)} {side}"
                for sign, side, f in (("÷", "below", self.below), ("×", "above", self.above))
                if f is not None and f > RESOLUTION * (1 + _ROUNDING)
            ]
            out.append(f"under-resolved: the nearest lr searched is {' and '.join(gaps)}")
        return tuple(out)

    @property
    def text(self) -> str:
        """``"resolved"``, or the flags."""
        return "; ".join(self.flags) or "resolved"

    @property
    def where(self) -> str:
        """``"adam (tuning seed 0: widen it)"``: which search, and how it is unresolved."""
        how = ", ".join(f.split(":")[0] for f in self.flags) or "resolved"
        return f"{self.label} (tuning seed {self.seed}: {how})"


@dataclass(frozen=True)
class Disagreement:
    """Two searches of ``label`` on ``problem`` whose chosen settings' test medians differ by
    more than ``iqr``, the larger of the two reruns' interquartile ranges over seeds."""

    problem: str
    label: str
    seeds: tuple[int, int]
    medians: tuple[float, float]
    iqr: float

    @property
    def text(self) -> str:
        """The flag in words."""
        a, b = self.medians
        return (
            f"searches differ: tuning seed {self.seeds[0]} {number(a)} vs {self.seeds[1]}"
            f" {number(b)}, more than the IQR {number(self.iqr)}"
        )


def _side(x: float, searched: Sequence[float]) -> str:
    lo, hi = min(searched), max(searched)
    return "only" if lo == hi else "smallest" if x == lo else "largest"


def resolution(
    problem: str,
    label: str,
    seed: int,
    chosen: Mapping[str, float],
    searched: Sequence[Mapping[str, Any]],
) -> Resolution:
    """The :class:`Resolution` of a search that tried the settings ``searched`` (hyperparameter
    dicts) and chose ``chosen``. The weight decay counts where the search varied it."""
    lr = chosen["lr"]
    lrs = tuple(sorted({float(s["lr"]) for s in searched}))
    lower = [x for x in lrs if x < lr]
    upper = [x for x in lrs if x > lr]
    edges = [("lr", _side(lr, lrs))] if not lower or not upper else []
    wds = [s["weight_decay"] for s in searched if s.get("weight_decay") is not None]
    wd = chosen.get("weight_decay")
    if len(set(wds)) > 1 and wd is not None and wd in (min(wds), max(wds)):
        edges.append(("weight decay", _side(wd, wds)))
    return Resolution(
        problem=problem,
        label=label,
        seed=seed,
        lr=lr,
        lrs=lrs,
        below=lr / lower[-1] if lower else None,
        above=upper[0] / lr if upper else None,
        edges=tuple(edges),
    )


def disagreements(
    problem: str, seeds: Sequence[int], searches: Sequence[Mapping[str, Group]]
) -> tuple[Disagreement, ...]:
    """Every pair of searches (tuning seeds ``seeds``) of one problem whose reruns of a label
    differ by more than their interquartile range (the larger of the two)."""
    out = []
    labels = [k for k in searches[0] if all(k in s for s in searches)]
    for label in labels:
        for (s1, g1), (s2, g2) in itertools.combinations(zip(seeds, searches), 2):
            a, b = (stats(g[label].final("test", g[label].main_metric)) for g in (g1, g2))
            iqr = max(a.q3 - a.q1, b.q3 - b.q1)
            if math.isfinite(iqr) and abs(a.median - b.median) > iqr:
                out.append(Disagreement(problem, label, (s1, s2), (a.median, b.median), iqr))
    return tuple(out)


Resolutions = Mapping[tuple[str, str, int], Resolution]
"""``{(problem, label, tuning seed): Resolution}`` of one experiment."""


def load_resolutions(
    store: Store,
    name: str,
    spec: StoredExperiment,
    finals: Mapping[int, Mapping[str, Mapping[str, Group]]],
) -> Resolutions:
    """The resolution of every search of experiment ``name``: ``finals[s]`` are the reruns of
    tuning seed ``s``'s choices (``{problem: {label: Group}}``). A row without search runs
    (untuned) or with more than one rerun setting has none."""
    out: dict[tuple[str, str, int], Resolution] = {}
    for i, seed in enumerate(tuning_seeds(spec)):
        searched: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
        role = "tune" if i == 0 else f"tune@{seed}"
        for t in store.records(experiment=name, role=role):
            searched.setdefault((t.tag.problem, t.tag.label), []).append(t.trial.hparams)
        for problem, groups in finals.get(seed, {}).items():
            for label, g in groups.items():
                runs = searched.get((problem, label))
                settings = {
                    (r.trial.hparams.get("lr"), r.trial.hparams.get("weight_decay")) for r in g.runs
                }
                if not runs or len(settings) != 1:
                    continue
                lr, wd = next(iter(settings))
                chosen = {"lr": lr, "weight_decay": wd}
                out[problem, label, seed] = resolution(problem, label, seed, chosen, runs)
    return out


def table(
    groups: Mapping[str, Group],
    resolutions: Resolutions,
    seeds: Sequence[int],
    differ: Sequence[Disagreement] = (),
) -> tuple[list[str], list[list[str]]] | None:
    """The search-resolution table of one problem's rows ``groups``: per tuning seed the chosen
    learning rate (of how many searched), the factors to its nearest searched neighbours and
    the flags; with several tuning seeds, whether their results differ (``differ``). ``None``
    if no row was searched."""
    problem = next(iter(groups.values())).problem if groups else ""
    found = {(label, s): resolutions.get((problem, label, s)) for label in groups for s in seeds}
    if not any(found.values()):
        return None
    head = ["optimizer"]
    for s in seeds:
        head += [f"tuning seed {s}: {h}" for h in ("best lr (of n)", "nearest", "search")]
    if len(seeds) > 1:
        head.append("searches")
    rows = []
    for label in groups:
        cells = [label]
        for s in seeds:
            r = found[label, s]
            if r is None:
                cells += ["-", "-", "not searched"]
                continue
            near = ", ".join(
                f"{sign}{number(f)}"
                for sign, f in (("÷", r.below), ("×", r.above))
                if f is not None
            )
            cells += [f"{number(r.lr)} (of {len(r.lrs)})", near or "-", r.text]
        if len(seeds) > 1:
            cells.append("; ".join(d.text for d in differ if d.label == label) or "agree")
        rows.append(cells)
    return head, rows
