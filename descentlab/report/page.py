"""Write the report: ``index.html``, its PNG figures and every run as JSON, from the store alone.

The page is static HTML with relative links and inline CSS: it opens from the file system in any
browser, with no server and no network.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..store import Store, StoredExperiment
from ._data import Group, best_label, load_groups, load_searches, stats
from ._noise import Noise, Repeats, load_repeats, problem_noise
from ._noise import tables as noise_tables
from ._protocol import describe, searched_weight_decay, tuning_seeds
from ._resolution import Resolutions, load_resolutions
from ._resolution import table as resolution_table
from ._runs import export_runs
from .figures import (
    colors,
    cost_figure,
    gap_figure,
    learning_curves,
    noise_figure,
    profile_figure,
    search_figure,
    target_figure,
)
from .rounding import mean_std, median_iqr, number, rounded

__all__ = ["write_report"]

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
tr.best { font-weight: bold; background: #eef7ee; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
.note { color: #555; font-size: 0.9em; }
"""


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "x"


_SHARPNESS = ("top_eigenvalue", "epsilon_sharpness")
_MIXED = (
    " The rows ran on different devices (ran on): wall times compare only between rows of one"
    " device."
)


def _final_metrics(
    groups: Mapping[str, Group], *, weight_decay: bool = False
) -> tuple[list[str], list[tuple[bool, list[str]]]]:
    """The final-metrics table: its header and, per optimizer, (is best, cells); with
    ``weight_decay`` (the experiment searched it) the weight decay each row ran with."""
    metric = next(iter(groups.values())).main_metric
    best = best_label(groups)
    head = [
        "optimizer",
        "lr",
        *(["weight decay"] if weight_decay else []),
        "runs",
        "diverged",
        "failed",
        f"test {metric} mean ± std",
        f"test {metric} median [IQR]",
        *(["test loss median [IQR]"] if metric != "loss" else []),  # not the same column twice
        f"gap: train − test {metric} (median)",
        "epochs to target: median (misses)",
        "ran on",
        "wall time s (mean)",
    ]
    sharp = any(math.isfinite(x) for g in groups.values() for x in g.sharpness(_SHARPNESS[0]))
    if sharp:  # Adam vs SGDM: do flatter minima go with better test metrics?
        head += ["top Hessian eigenvalue (median)", "ε-sharpness (median)"]
    rows = []
    for label, g in groups.items():
        m = stats(g.final("test", metric))
        loss = stats(g.final("test", "loss"))
        gap = stats([a - b for a, b in zip(g.final("train", metric), g.final("test", metric))])
        misses = sum(map(math.isinf, g.epochs_to_target()))
        wall = stats(g.wall_times())
        cells = [
            label + (" ★" if label == best else ""),
            ", ".join(number(x) for x in g.lrs),
            *([", ".join(number(x) for x in g.weight_decays) or "-"] if weight_decay else []),
            str(len(g.runs)),
            str(sum(1 for i in g.finished if g.runs[i].result.diverged)),
            str(len(g.runs) - len(g.finished)),
            mean_std(m.mean, m.std),
            median_iqr(m.median, m.q1, m.q3),
            *([median_iqr(loss.median, loss.q1, loss.q3)] if metric != "loss" else []),
            rounded(gap.median, gap.q3 - gap.q1),
            f"{number(g.median_epochs_to_target())} ({misses})",
            ", ".join(g.devices) or "-",
            # a mean over several devices compares nothing
            rounded(wall.mean, wall.std) if len(g.devices) == 1 else "-",
        ]
        if sharp:
            cells += [
                rounded(s.median, s.q3 - s.q1) for s in (stats(g.sharpness(k)) for k in _SHARPNESS)
            ]
        rows.append((label == best, cells))
    return head, rows


def _html(head: list[str], rows: list[tuple[bool, list[str]]], cls: str) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        f"<tr{' class=best' if best else ''}>"
        + "".join(f"<td>{html.escape(c)}</td>" for c in cells)
        + "</tr>"
        for best, cells in rows
    )
    return f"<table class={cls}><tr>{th}</tr>{body}</table>"


def _md(head: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return lines + ["| " + " | ".join(cells) + " |" for cells in rows]


def _table(groups: Mapping[str, Group], spec: StoredExperiment) -> str:
    head, rows = _final_metrics(groups, weight_decay=searched_weight_decay(spec))
    return _html(head, rows, "final-metrics")


def _sections(
    problem: str, groups: Mapping[str, Group], spec: StoredExperiment
) -> list[tuple[str, dict[str, Group], bool]]:
    """A problem's tables: ``(title, groups, show the cost figure)``.

    An experiment that varies its axes one at a time gets one table per axis: the baseline rows
    and the rows that change that axis. The cost figure (loss against steps, examples and
    seconds) is shown where the batch size varies.
    """
    steps = {g.steps_per_epoch for g in groups.values()}
    costly = len({x for x in steps if math.isfinite(x)}) > 1
    if spec.design != "one-at-a-time" or not any(spec.changed(k) for k in groups):
        return [(problem, dict(groups), costly)]
    axes = list(dict.fromkeys(a for k in groups for a in spec.changed(k)))
    sections = []
    for axis in axes:
        sub = {k: g for k, g in groups.items() if spec.changed(k) in ((), (axis,))}
        sections.append((f"{problem}: {axis}", sub, axis == "batch_size"))
    return sections


@dataclass(frozen=True)
class _Searches:
    """An experiment's repeated searches (their reruns) and every search's resolution."""

    repeats: Repeats
    resolutions: Resolutions

    def noise(
        self, problem: str, groups: Mapping[str, Group], spec: StoredExperiment
    ) -> Noise | None:
        """The problem's searches compared (:func:`problem_noise`)."""
        return problem_noise(problem, groups, self.repeats, spec, self.resolutions)

    def table(
        self,
        problem: str,
        groups: Mapping[str, Group],
        rows: Mapping[str, Group],
        spec: StoredExperiment,
    ) -> tuple[list[str], list[list[str]]] | None:
        """The search-resolution table of the rows ``rows`` of the problem's ``groups``."""
        noise = self.noise(problem, groups, spec)
        differ = noise.disagreements if noise is not None else ()
        return resolution_table(rows, self.resolutions, tuning_seeds(spec), differ)


def _searches_of(
    store: Store, name: str, spec: StoredExperiment, groups: Mapping, repeats: Repeats
) -> _Searches:
    """Every search of experiment ``name`` and its resolution, from the store."""
    seeds = tuning_seeds(spec)
    finals = {**({seeds[0]: groups} if seeds else {}), **repeats}
    return _Searches(repeats, load_resolutions(store, name, spec, finals))


_RESOLUTION = (
    "Search: widen it = the best setting is the smallest or largest searched; under-resolved ="
    " the nearest learning rate searched below or above the best is more than a factor 3 away"
    " (nearest: the factors to them); searches differ = two tuning seeds' choices give test"
    " medians further apart than their IQR."
)


def _markdown(
    name: str,
    problems: Mapping[str, Mapping[str, Group]],
    searches: _Searches,
    spec: StoredExperiment,
) -> str:
    """The experiment's final-metrics, search-resolution and tuning-noise tables in Markdown
    (for a README)."""
    parts = [f"## {name}\n\n{describe(spec)}\n"]
    for problem, all_groups in problems.items():
        for title, groups, _ in _sections(problem, all_groups, spec):
            head, rows = _final_metrics(groups, weight_decay=searched_weight_decay(spec))
            parts.append(f"### {title}\n\n{_target(groups)}\n")
            parts += [*_md(head, [cells for _, cells in rows]), ""]
            resolved = searches.table(problem, all_groups, groups, spec)
            if resolved is not None:
                parts += [*_md(*resolved), "", _RESOLUTION, ""]
        noise = searches.noise(problem, all_groups, spec)
        if noise is not None:
            sentence, choices, pairs = noise_tables(noise)
            parts.append(f"#### {problem}: tuning noise\n\n{sentence}\n")
            parts += [*_md(*choices), "", *_md(*pairs), ""]
    return "\n".join(parts)


def _target(groups: Mapping[str, Group]) -> str:
    """The problem's target, from its runs."""
    t = next((g.target for g in groups.values() if g.target is not None), None)
    if t is None:
        return "No finished runs."
    sign = ">=" if t.higher_is_better else "<="
    return f"Target for time-to-target: {t.split} {t.metric} {sign} {t.value:g}."


def _img(path: Path, out: Path, alt: str) -> str:
    return f'<img src="{path.relative_to(out).as_posix()}" alt="{html.escape(alt)}">'


_JOINT = (
    "Where the weight decay was searched with the learning rate, each point is one (learning"
    " rate, weight decay) pair, drawn against its learning rate; the table shows the chosen pair."
)


def _noise_section(
    problems: Mapping[str, Mapping[str, Group]],
    searches: _Searches,
    spec: StoredExperiment,
    palette: dict,
    figure: Path,
) -> list[str]:
    """Per problem, each search's choices and results and which conclusions hold in all; one
    figure of every search's medians and IQRs."""
    parts, noises = [], {}
    for problem, groups in problems.items():
        noise = searches.noise(problem, groups, spec)
        if noise is None:
            continue
        noises[problem] = noise
        sentence, (head, rows), (pair_head, pair_rows) = noise_tables(noise)
        parts.append(f"<h4>{html.escape(problem)}</h4><p class=note>{html.escape(sentence)}</p>")
        parts.append(_html(head, [(False, r) for r in rows], "tuning-choices"))
        parts.append(_html(pair_head, [(False, r) for r in pair_rows], "tuning-noise"))
    if noises:
        fig = noise_figure(noises, palette, figure)
        parts[:0] = [
            "<h3>Tuning noise: one search per tuning seed</h3>",
            _img(fig, figure.parent.parent, "each search's medians and IQRs, per problem"),
        ]
    return parts


def _experiment(
    name: str,
    problems: Mapping[str, Mapping[str, Group]],
    tuning: _Searches,
    searches: Mapping[str, Mapping[str, list[tuple[float, float]]]],
    spec: StoredExperiment,
    out: Path,
) -> str:
    figs = out / "figures"
    slug = _slug(name)
    labels = list(dict.fromkeys(label for groups in problems.values() for label in groups))
    palette = colors(labels)
    parts = [f"<h2 id='{slug}'>Experiment {html.escape(name)}</h2>"]
    if spec.description:
        parts.append(f"<p>{html.escape(spec.description)}</p>")
    parts.append(f"<p class=note>{html.escape(describe(spec))}</p>")
    sections = [(p, *s) for p, g in problems.items() for s in _sections(p, g, spec)]
    for problem, title, groups, costly in sections:
        p = _slug(title)
        parts.append(f"<h3>{html.escape(title)}</h3>")
        parts.append(f"<p class=note>{html.escape(_target(groups))}</p>")
        parts.append(_table(groups, spec))
        devices = {d for g in groups.values() for d in g.devices}
        parts.append(
            "<p class=note>★ best median test metric. Statistics are over the finished runs; "
            "diverged runs count as NaN (and as misses for time-to-target)."
            + (_MIXED if len(devices) > 1 else "")
            + "</p>"
        )
        resolved = tuning.table(problem, problems[problem], groups, spec)
        if resolved is not None:
            parts.append(_html(resolved[0], [(False, r) for r in resolved[1]], "search-resolution"))
            parts.append(f"<p class=note>{html.escape(_RESOLUTION)}</p>")
        # One colour per row of this table (a table of an axis has few rows; the experiment many).
        shades = palette if len(sections) == len(problems) else colors(list(groups))
        curves = learning_curves(groups, shades, figs / f"{slug}-{p}-curves.png")
        gap = gap_figure(groups, shades, figs / f"{slug}-{p}-gap.png")
        parts.append(_img(curves, out, f"learning curves on {title}"))
        parts.append(_img(gap, out, f"generalization gap on {title}"))
        if costly and len(devices) > 1:
            parts.append(f"<p class=note>No cost figure (loss against seconds):{_MIXED}</p>")
        elif costly:
            cost = cost_figure(groups, shades, figs / f"{slug}-{p}-cost.png")
            parts.append(_img(cost, out, f"loss against steps, examples and seconds on {title}"))
        search = {k: v for k, v in searches.get(problem, {}).items() if k in groups}
        if search:
            metric = next(iter(groups.values())).main_metric
            fig = search_figure(search, metric, shades, figs / f"{slug}-{p}-search.png")
            parts.append(_img(fig, out, f"learning-rate search on {title}"))
            if searched_weight_decay(spec):
                parts.append(f"<p class=note>{_JOINT}</p>")
    parts += _noise_section(problems, tuning, spec, palette, figs / f"{slug}-tuning-noise.png")
    parts.append("<h3>Time to target</h3>")
    target = target_figure(problems, palette, figs / f"{slug}-time-to-target.png")
    parts.append(_img(target, out, "time to target"))
    costs = {
        problem: {label: g.median_epochs_to_target() for label, g in groups.items()}
        for problem, groups in problems.items()
    }
    parts.append("<h3>Performance profile (Dolan &amp; Moré 2002)</h3>")
    profile = profile_figure(costs, palette, figs / f"{slug}-profile.png")
    parts.append(_img(profile, out, "performance profile"))
    parts.append(
        "<p class=note>Cost: median epochs to reach each problem's target; a miss is infinite. "
        "A curve at height y for tau means: within a factor tau of the fastest optimizer on a "
        "fraction y of the problems.</p>"
    )
    return "\n".join(parts)


def write_report(
    db: str | Path, out: str | Path, *, experiments: Sequence[str] | None = None
) -> Path:
    """Write ``out/index.html``, figures under ``out/figures``, runs under ``out/runs`` (JSON) and
    the final-metrics tables as Markdown in ``out/tables.md``.

    Args:
        db: the results store (``runs.db``).
        out: the report's directory, created if missing.
        experiments: only these experiments (default: every one in the store).

    Returns:
        The path of ``index.html``.
    """
    db, out = Path(db), Path(out)
    if not db.exists():
        raise FileNotFoundError(f"no results store at {db}")
    (out / "figures").mkdir(parents=True, exist_ok=True)
    with Store(db) as store:
        specs = store.experiments()
        unknown = sorted(set(experiments or ()) - set(specs))
        if unknown:
            known = ", ".join(specs) or "none"
            raise ValueError(f"experiments not in {db}: {', '.join(unknown)}; stored: {known}")
        chosen = list(experiments or specs)
        groups = {n: g for n, g in load_groups(store).items() if n in chosen}
        repeats = {n: load_repeats(store, n, specs[n]) for n in groups}
        tuned = {n: _searches_of(store, n, specs[n], groups[n], repeats[n]) for n in groups}
        searches = load_searches(store)
        keys = export_runs(store, out, chosen)
    body = [f"<h1>descentlab report</h1><p class=note>Store: {html.escape(str(db))}.</p>"]
    if not groups:
        body.append("<p>No finished final runs in the store yet.</p>")
    body += [
        _experiment(n, problems, tuned[n], searches.get(n, {}), specs[n], out)
        for n, problems in groups.items()
    ]
    links = "".join(f'<li><a href="runs/{k}.json">{k}</a></li>' for k in keys)
    body.append(
        f"<h2>Every run as JSON</h2><details><summary>{len(keys)} runs</summary>"
        f"<ul>{links}</ul></details>"
    )
    page = (
        "<!doctype html><html><head><meta charset=utf-8><title>descentlab report</title>"
        f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>"
    )
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    markdown = [_markdown(n, problems, tuned[n], specs[n]) for n, problems in groups.items()]
    (out / "tables.md").write_text("\n".join(markdown), encoding="utf-8")
    return index
