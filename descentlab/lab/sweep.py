"""Run an experiment: plan its trials, skip the finished ones, run the rest, store every result.

The sweep runs in two phases, or three with ``tuning.refine``. First the search runs (of every
tuning seed) and every untuned run; with a refinement, then the second stage of each search whose
first stage is complete, planned from the stored results; then, for each problem, optimizer and
tuning seed whose search is complete, the best setting on every seed
(:mod:`descentlab.lab.tuning`); a rerun that several searches chose runs once. Only this process writes the store, one transaction per trial,
so killing it loses only the trials in flight; running the experiment again skips every finished
trial (same configuration, same key version: same key) and reruns the others. An experiment's
tags are rebuilt from its current plan on every run, so an edited experiment file (fewer problems,
other optimizers) reports only what it now contains; trials it no longer uses stay in the store.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ..store import Row, Store, Trial
from ._backends import Backend, open_backend
from .axes import Variant
from .devices import check_name
from .spec import Experiment, OptimizerSpec, ProblemSpec
from .tuning import Planned, Score, plan_final, plan_initial, plan_refine, row_label

__all__ = ["SweepSummary", "document", "run_experiment"]


@dataclass
class SweepSummary:
    """What a sweep did: distinct trials planned, skipped (finished before) and run, and outcomes."""

    db: Path
    planned: int = 0
    skipped: int = 0
    finished: int = 0
    diverged: int = 0
    failed: int = 0
    capped: int = 0  # trials left for later by max_trials

    @property
    def ran(self) -> int:
        """Trials run by this sweep."""
        return self.finished + self.failed


def _tag(store: Store, experiment: str, plan: Iterable[Planned]) -> None:
    groups: dict[tuple[str, str, str], list[str]] = {}
    for p in plan:
        groups.setdefault((p.tag, p.problem, p.label), []).append(p.trial.key())
    for (role, problem, label), keys in groups.items():
        store.set_tags(experiment, role, problem, label, keys)


@dataclass
class _Runner:
    """Runs plans on a backend, one phase after another, writing each result as it comes."""

    store: Store
    backend: Backend
    progress: Progress
    summary: SweepSummary
    max_trials: int | None
    seen: set[str] = field(default_factory=set)  # keys already handled by an earlier phase

    def run(self, plan: list[Planned], phase: str) -> None:
        trials: dict[str, Trial] = {}
        for p in plan:
            key = p.trial.key()
            if key not in self.seen:  # a search run is often also a reported run: once is enough
                trials.setdefault(key, p.trial)
        self.seen.update(trials)
        statuses = self.store.statuses(trials)
        todo = [k for k in trials if statuses.get(k) != "finished"]
        self.summary.planned += len(trials)
        self.summary.skipped += len(trials) - len(todo)
        if self.max_trials is not None:
            budget = max(0, self.max_trials - self.summary.ran)
            self.summary.capped += max(0, len(todo) - budget)
            todo = todo[:budget]
        task = self.progress.add_task(phase, total=len(todo), running=0)
        todo.reverse()
        running = 0
        while todo or running:
            while todo and running < self.backend.slots:
                key = todo.pop()
                self.store.mark_running(key, trials[key])
                self.backend.submit(key, trials[key])
                running += 1
            self.progress.update(task, running=running)
            key, result = self.backend.wait()
            running -= 1
            self.store.save_result(key, trials[key], result)
            self.summary.finished += result.status == "finished"
            self.summary.failed += result.status == "failed"
            self.summary.diverged += result.diverged
            self.progress.update(task, advance=1, running=running)


def _rows(exp: Experiment) -> list[Row]:
    """The report's rows in order (each optimizer, then its variants) and the axes each changes."""
    rows: dict[str, Row] = {}
    for problem in exp.problems:
        variants = exp.variants_for(problem)
        base = variants[0].settings
        for o in exp.optimizers:
            for v in variants:
                changed = tuple(k for k, x in v.settings.items() if x != base[k])
                rows.setdefault(row_label(o, v), Row(row_label(o, v), o.label, v.label, changed))
    return list(rows.values())


def _variant(v: Variant) -> dict[str, Any]:
    return {"settings": dict(v.settings), "label": v.label}


def _problem(p: ProblemSpec) -> dict[str, Any]:
    own = None if p.variants is None else [_variant(v) for v in p.variants]
    return {"name": p.name, "options": dict(p.options), "variants": own, "epochs": p.epochs}


def _optimizer(o: OptimizerSpec) -> dict[str, Any]:
    return {
        "name": o.name,
        "label": o.label,
        "hparams": dict(o.hparams),
        "schedule": o.schedule,
        "schedule_args": dict(o.schedule_args),
        "tune": o.tune,
    }  # lr0 and decoupled are resolved from these


def document(exp: Experiment) -> dict[str, Any]:
    """The experiment as the store keeps it (JSON; :class:`~descentlab.store.StoredExperiment`
    reads it back): what the file says, once resolved, with the problems' labels and the
    report's rows in the report's order. The names it resolved to objects stay names."""
    return {
        "name": exp.name,
        "problems": [_problem(p) for p in exp.problems],
        "optimizers": [_optimizer(o) for o in exp.optimizers],
        "seeds": list(exp.seeds),
        "tuning": dataclasses.asdict(exp.tuning),
        "epochs": exp.epochs,
        "description": exp.description,
        "sharpness": exp.sharpness,
        "variants": [_variant(v) for v in exp.variants],
        "design": exp.design,
        "device": exp.device,
        "deterministic": exp.deterministic,
        "problem_labels": [p.label for p in exp.problems],  # report order
        "rows": [dataclasses.asdict(r) for r in _rows(exp)],
    }


def _score(store: Store, trial: Trial) -> tuple[bool, Score | None]:
    stored = store.record(trial.key(), curves=False)
    if stored is None or stored.result is None:
        return False, None
    r = stored.result
    if not r.ok:
        return True, None
    return True, (r.final("val", r.summary.main_metric), r.final("val", "loss"))


def run_experiment(
    experiment: Experiment,
    *,
    db: str | Path = "runs.db",
    workers: int | None = 1,
    backend: str = "pool",
    address: str | None = None,
    max_trials: int | None = None,
    data_dir: str | None = None,
    progress: bool = True,
    device: str | None = None,
    trials_per_gpu: int = 1,
) -> SweepSummary:
    """Run every unfinished trial of ``experiment`` and store the results in ``db``.

    Args:
        experiment: a parsed experiment (:func:`descentlab.lab.spec.load`).
        db: the SQLite store; created if missing, resumed if present.
        workers: trials at once: 1 runs them in this process; more use a process pool of that
            size (or, with Ray, that many CPUs; ``None``: all the cluster's).
        backend: ``"pool"`` (local) or ``"ray"`` (``ray.init(address=address)``).
        address: the Ray cluster's address; ``None`` starts a local instance.
        max_trials: run at most this many trials now (a smoke run); the rest run next time.
        data_dir: where problems that need files (torchvision datasets) find them.
        progress: show a progress bar (trials done, running, time left) on stderr.
        device: where the trials run, instead of the experiment's ``device`` (``"auto"``,
            ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``); checked before anything is written.
        trials_per_gpu: trials that share each GPU at once (pool workers per GPU, Ray's
            fractional ``num_gpus``).

    Returns:
        A :class:`SweepSummary`.

    Raises:
        DeviceError: the device is not on this machine (nothing is written).
    """
    if max_trials is not None and max_trials < 0:
        raise ValueError(f"max_trials: {max_trials}; expected an integer >= 0")
    if device is not None:
        experiment = dataclasses.replace(experiment, device=check_name(device))
    where = experiment.where  # resolved once: the trials' device type, the backend's slots
    summary = SweepSummary(Path(db))
    executor = open_backend(
        backend,
        workers=workers,
        address=address,
        data_dir=data_dir,
        device=where,
        trials_per_gpu=trials_per_gpu,
    )
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("done, {task.fields[running]} running"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not progress,
    )
    try:
        with Store(db) as store, bar:
            store.save_experiment(experiment.name, document(experiment))
            store.clear_tags(experiment.name)  # its trials are those of its current plan
            initial = plan_initial(experiment)
            _tag(store, experiment.name, initial)
            runner = _Runner(store, executor, bar, summary, max_trials)
            runner.run(initial, "search + untuned")
            score = functools.partial(_score, store)
            refined = plan_refine(experiment, initial, score)
            if refined:  # a search's tags are its two stages together
                _tag(store, experiment.name, initial + refined)
                runner.run(refined, "refinement")
            final = plan_final(experiment, initial + refined, score)
            _tag(store, experiment.name, final)
            runner.run(final, "best setting x seeds")
    finally:
        executor.close()
    return summary
