"""One trial: build the problem's task and the optimizers, train, record the curves.

A trial is a :class:`~descentlab.store.Trial` (see :func:`descentlab.lab.tuning.plan_initial`),
its outcome a :class:`~descentlab.store.TrialResult`. :func:`run_trial` never raises for a training failure: a NaN or infinite training loss (or a
:class:`~descentlab.optim.NonFiniteGradientError`) marks the trial ``diverged`` and ends it; any
other exception marks it ``failed`` with the message, so one bad trial never crashes a sweep.
Training runs on one torch thread, so a trial gives the same numbers in the main process, in a
pool worker or on a Ray worker.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..optim import NonFiniteGradientError
from ..problems import SPLITS, Amp, train
from ..store import Curve, Placement, Summary, Target, Trial, TrialResult
from . import tricks as tr
from ._build import build_optimizer, build_schedule, load_problem
from .axes import axis_options, hooks

__all__ = ["run_trial"]


@contextmanager
def _deterministic(on: bool) -> Iterator[None]:
    """torch's deterministic algorithms (and cuDNN's) while ``on``, restored after.

    cuBLAS needs ``CUBLAS_WORKSPACE_CONFIG`` before its first call in the process; a worker that
    has not used CUDA yet gets ``:4096:8`` (the setting torch's documentation gives).
    """
    if not on:
        yield
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[1:]


@contextmanager
def _single_thread_seeded(seed: int) -> Iterator[None]:
    """One torch thread (same numbers in any process) and Python/NumPy seeded, restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    random.seed(seed)
    np.random.seed(seed)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _total_steps(task: Any, epochs: int) -> int:
    try:
        return epochs * len(task.train_loader)
    except TypeError as e:
        raise ValueError(
            "a schedule needs the number of steps, but train_loader has no len()"
        ) from e


def _run_hooks(ctx: tr.Context, phase: str) -> None:
    for hook in hooks(ctx.trial.tricks, phase):
        hook(ctx)


@dataclass
class _Runner:
    """Builds and trains the tasks of one trial, running its axes' hooks phase by phase."""

    trial: Trial
    data_dir: str | None
    device: torch.device

    def build(self, problem: Any, options: Mapping[str, Any]) -> tr.Context:
        """Build the task, run the model and data hooks on it, move it to the trial's device and
        give it the trial's precision."""
        t = self.trial
        task = problem.build(t.seed, data_dir=self.data_dir, batch_size=t.batch_size, **options)
        options = axis_options(t.options)  # what a pre-training problem may take too
        ctx = tr.Context(t, problem, task, pretrain=self.pretrain, axis_options=options)
        for phase in ("model", "data"):
            _run_hooks(ctx, phase)
        if self.device.type != "cpu":
            if not hasattr(task, "to"):
                raise ValueError(
                    f"problem {problem.name!r}: its task has no to(device); it runs on the CPU only"
                )
            ctx.task = task.to(self.device)
        if t.precision != "float32":
            if not hasattr(task, "amp"):
                raise ValueError(
                    f"precision {t.precision}: the task of problem {problem.name!r} has no amp "
                    "attribute for mixed precision"
                )
            ctx.task.amp = Amp(self.device.type, t.precision)
        return ctx

    def pretrain(self, problem: Any, options: dict[str, Any], epochs: int) -> Any:
        """A task of ``problem`` (model and data hooks run) trained for ``epochs`` (fine-tuning)."""
        ctx = self.build(problem, options)
        for h in self.fit(ctx, epochs, final_splits=()):
            if h.diverged:
                raise ValueError(f"finetune: pre-training on {problem.name!r} diverged")
        return ctx.task

    def optimizers(self, ctx: tr.Context) -> dict[str, torch.optim.Optimizer]:
        """One optimizer per param group, through the wrap and optimizer hooks."""
        out = {}
        for group, params in ctx.task.param_groups().items():
            ctx.optimizer = build_optimizer(self.trial.optimizer, params, dict(self.trial.hparams))
            for phase in ("wrap", "optimizer"):
                _run_hooks(ctx, phase)
            out[group] = ctx.optimizer
        return out

    def schedulers(
        self, ctx: tr.Context, optimizers: Mapping[str, torch.optim.Optimizer], epochs: int
    ) -> list[Any]:
        """The trial's schedule on every optimizer, through the schedule hooks (none: [])."""
        t = self.trial
        if not t.schedule and not hooks(t.tricks, "schedule"):
            return []
        ctx.total_steps = _total_steps(ctx.task, epochs)
        ctx.schedule, ctx.schedule_args = t.schedule, dict(t.schedule_args)
        _run_hooks(ctx, "schedule")
        return [
            build_schedule(ctx.schedule, o, total_steps=ctx.total_steps, args=ctx.schedule_args)
            for o in optimizers.values()
        ]

    def fit(self, ctx: tr.Context, epochs: int, **kwargs: Any) -> Iterator[Any]:
        """Train with fresh optimizers and schedules; yields per-epoch histories (``train``)."""
        torch.manual_seed(self.trial.seed)  # optimizer noise, dropout: part of the seed too
        optimizers = self.optimizers(ctx)
        schedulers = self.schedulers(ctx, optimizers, epochs)

        def after_step(step: int, loss: float) -> None:
            for s in schedulers:
                s.step()

        for _ in range(epochs):
            yield train(ctx.task, optimizers, 1, after_step, eval_splits=(), **kwargs)


def _train(trial: Trial, data_dir: str | None, device: torch.device) -> TrialResult:
    problem = load_problem(trial.problem)  # a trial is a plain configuration: loaded where it runs
    runner = _Runner(trial, data_dir, device)
    ctx = runner.build(problem, trial.options)
    _run_hooks(ctx, "weights")
    task = ctx.task
    steps: list[float] = []
    epoch_evals = [{s: task.evaluate(s) for s in SPLITS}]
    seconds = [0.0]
    diverged = False
    try:
        for h in runner.fit(ctx, trial.epochs, final_splits=SPLITS):
            steps += h.train_loss
            seconds.append(seconds[-1] + h.train_time)
            epoch_evals.append(h.final)
            losses = [split["loss"] for split in h.final.values()]
            if h.diverged or not all(math.isfinite(v) for v in losses):
                diverged = True
                break
    except NonFiniteGradientError:
        diverged = True
    curves, summary = _record(problem, steps, epoch_evals, seconds)
    summary = dataclasses.replace(
        summary,
        steps_per_epoch=len(task.train_loader),
        examples_per_epoch=_examples(task, trial),
        pretrained=ctx.pretrained,
    )
    if trial.sharpness and not diverged:  # a task without a sharpness records null
        nulls = summary.nulls | {"sharpness"}
        summary = dataclasses.replace(summary, sharpness=_sharpness(task), nulls=nulls)
    return TrialResult("finished", diverged, summary=summary, curves=curves)


def _examples(task: Any, trial: Trial) -> int:
    """Training examples seen per epoch: the training split, or the batches drawn (GAN, RL)."""
    n = getattr(task, "examples_per_epoch", None)
    return n if n is not None else len(task.train_loader) * int(trial.batch_size)


def _sharpness(task: Any, examples: int = 512) -> dict[str, float] | None:
    """The sharpness of the final point on the first training examples (supervised tasks)."""
    splits, criterion = getattr(task, "splits", None), getattr(task, "criterion", None)
    if splits is None or criterion is None:
        return None
    from ..diagnostics import sharpness

    x, y = splits["train"]
    batches = [(x[i : i + 256], y[i : i + 256]) for i in range(0, min(len(x), examples), 256)]
    s = sharpness(task.model, criterion, batches)
    return {"top_eigenvalue": s.top_eigenvalue, "epsilon_sharpness": s.epsilon_sharpness}


def _record(
    problem: Any,
    steps: list[float],
    evals: list[dict[str, dict[str, float]]],
    seconds: list[float],
) -> tuple[tuple[Curve, ...], Summary]:
    curves = [Curve("train", "step_loss", "step", steps)]
    curves.append(Curve("time", "train_seconds", "epoch", seconds))
    for split in SPLITS:
        for metric in evals[0][split]:
            curves.append(Curve(split, metric, "epoch", [e[split][metric] for e in evals]))
    target = problem.target
    target_split = getattr(target, "split", "val")
    hit = next(
        (e for e in range(1, len(evals)) if target.reached(evals[e][target_split][target.metric])),
        None,
    )
    summary = Summary(
        main_metric=problem.main_metric,
        higher_is_better=problem.higher_is_better,
        target=Target(target.metric, target.value, target.higher_is_better, target_split),
        epochs_done=len(evals) - 1,
        steps=len(steps),
        final=evals[-1],
        train_seconds=seconds[-1],
        epochs_to_target=hit,
        seconds_to_target=None if hit is None else seconds[hit],
    )
    return tuple(curves), summary


def run_trial(
    trial: Trial | Mapping[str, Any],
    *,
    data_dir: str | None = None,
    device: torch.device | str | None = None,
) -> TrialResult:
    """Run one trial (a :class:`~descentlab.store.Trial` or its plain configuration).

    Args:
        trial: what to run.
        data_dir: where problems that need files find them.
        device: the device to run on, of the trial's device type (default: that type's current
            device, ``"cuda"`` for a CUDA trial): a backend's GPU slot.

    Returns:
        Its :class:`~descentlab.store.TrialResult`: status ``"finished"`` (``diverged`` if the
        loss became NaN or infinite) or ``"failed"`` (with the error), wall time, summary, curves
        (the training loss of every step, ``train/step_loss``; ``loss`` and each metric on
        train/val/test after every epoch, epoch 0 before training; the cumulative training
        seconds) and where it ran.
    """
    if not isinstance(trial, Trial):
        trial = Trial.from_config(trial)
    start = time.perf_counter()
    where = torch.device(device if device is not None else trial.device)
    placement = Placement(where.type, precision=trial.precision)
    with _single_thread_seeded(trial.seed), _deterministic(trial.deterministic):
        try:
            if where.type != trial.device:
                raise ValueError(f"device {where}: the trial is a {trial.device} trial")
            placement = Placement.here(where, trial.precision)
            result = _train(trial, data_dir, where)
        except Exception as e:  # a broken trial must never crash the sweep
            error = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}"
            result = TrialResult.failure(error)
    return dataclasses.replace(result, wall_time=time.perf_counter() - start, placement=placement)
