"""One trial: build the problem's task and the optimizers, train, record the curves.

A trial is a plain configuration (see :func:`descentlab.lab.tuning.plan_initial`)::

    {"problem": "digits-mlp", "options": {}, "seed": 0, "epochs": 15, "batch_size": 32,
     "optimizer": "adam", "hparams": {"lr": 0.001}, "schedule": None, "schedule_args": {}}

:func:`run_trial` never raises for a training failure: a NaN or infinite training loss (or a
:class:`~descentlab.optim.NonFiniteGradientError`) marks the trial ``diverged`` and ends it; any
other exception marks it ``failed`` with the message, so one bad trial never crashes a sweep.
Training runs on one torch thread, so a trial gives the same numbers in the main process, in a
pool worker or on a Ray worker.
"""

from __future__ import annotations

import math
import random
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from ..optim import NonFiniteGradientError
from ..problems import SPLITS, train
from . import tricks as tr
from ._build import build_optimizer, build_schedule, load_problem
from .axes import AXES

__all__ = ["failed", "run_trial"]


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


def _optimizers(task: Any, config: Mapping[str, Any]) -> dict[str, torch.optim.Optimizer]:
    tricks, seed = config.get("tricks", {}), config["seed"]
    return {
        group: tr.wrap(
            build_optimizer(config["optimizer"], params, dict(config["hparams"])), tricks, seed
        )
        for group, params in task.param_groups().items()
    }


def _schedulers(
    task: Any,
    optimizers: Mapping[str, torch.optim.Optimizer],
    config: Mapping[str, Any],
    epochs: int,
) -> list[Any]:
    name, args = config.get("schedule"), config.get("schedule_args", {})
    if not name and "warmup" not in config.get("tricks", {}):
        return []
    total = _total_steps(task, epochs)
    name, args = tr.warmup_schedule(config.get("tricks", {}), name, args, total)
    return [build_schedule(name, o, total_steps=total, args=args) for o in optimizers.values()]


def _build(
    config: Mapping[str, Any], problem: Any, options: Mapping[str, Any], data_dir: str | None
) -> Any:
    """Build the task, then re-initialise it and set its data order as the trial's axes say."""
    seed, tricks = config["seed"], config.get("tricks", {})
    task = problem.build(seed, data_dir=data_dir, batch_size=config["batch_size"], **options)
    tr.initialize_model(task, tricks, seed, problem.name)
    tr.apply_order(task, tricks, seed, problem.name)
    return task


def _fit(task: Any, config: Mapping[str, Any], epochs: int, **kwargs: Any) -> Iterator[Any]:
    """Train with fresh optimizers and schedules; yields per-epoch histories (see ``train``)."""
    torch.manual_seed(config["seed"])  # optimizer noise, dropout: part of the seed too
    optimizers = _optimizers(task, config)
    schedulers = _schedulers(task, optimizers, config, epochs)

    def after_step(step: int, loss: float) -> None:
        for s in schedulers:
            s.step()

    for _ in range(epochs):
        yield train(task, optimizers, 1, after_step, eval_splits=(), **kwargs)


def _pretrain(task: Any, config: Mapping[str, Any], data_dir: str | None) -> dict[str, Any]:
    """Fine-tuning: train the same architecture on ``tricks.finetune``'s problem, load its weights."""
    ft = config["tricks"]["finetune"]
    source = load_problem(ft["problem"])
    shared = {
        k: v
        for k, v in config["options"].items()
        if k in source.axes and k in AXES and AXES[k].where == "option"
    }
    pre = _build(config, source, {**shared, **ft["options"]}, data_dir)
    start = time.perf_counter()
    for h in _fit(pre, config, ft["epochs"], final_splits=()):
        if h.diverged:
            raise ValueError(f"finetune: pre-training on {ft['problem']!r} diverged")
    tr.pretrained_from(task, pre, config["problem"], ft["problem"])
    return {
        "problem": ft["problem"],
        "epochs": ft["epochs"],
        "seconds": time.perf_counter() - start,
    }


def _train(config: Mapping[str, Any], data_dir: str | None) -> dict[str, Any]:
    problem = load_problem(config["problem"])
    epochs = config["epochs"]
    task = _build(config, problem, config.get("options", {}), data_dir)
    pretrained = None
    if "finetune" in config.get("tricks", {}):
        pretrained = _pretrain(task, config, data_dir)
    steps: list[float] = []
    epoch_evals = [{s: task.evaluate(s) for s in SPLITS}]
    seconds = [0.0]
    diverged = False
    try:
        for h in _fit(task, config, epochs, final_splits=SPLITS):
            steps += h.train_loss
            seconds.append(seconds[-1] + h.train_time)
            epoch_evals.append(h.final)
            losses = [split["loss"] for split in h.final.values()]
            if h.diverged or not all(math.isfinite(v) for v in losses):
                diverged = True
                break
    except NonFiniteGradientError:
        diverged = True
    out = _record(problem, steps, epoch_evals, seconds, diverged)
    out["summary"]["steps_per_epoch"] = len(task.train_loader)
    out["summary"]["examples_per_epoch"] = _examples(task, config)
    if pretrained is not None:
        out["summary"]["pretrained"] = pretrained
    if config.get("sharpness") and not diverged:
        out["summary"]["sharpness"] = _sharpness(task)
    return out


def _examples(task: Any, config: Mapping[str, Any]) -> int:
    """Training examples seen per epoch: the training split, or the batches drawn (GAN, RL)."""
    n = getattr(task, "examples_per_epoch", None)
    return n if n is not None else len(task.train_loader) * int(config["batch_size"])


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
    diverged: bool,
) -> dict[str, Any]:
    curves = [{"split": "train", "metric": "step_loss", "unit": "step", "values": steps}]
    curves.append({"split": "time", "metric": "train_seconds", "unit": "epoch", "values": seconds})
    for split in SPLITS:
        for metric in evals[0][split]:
            values = [e[split][metric] for e in evals]
            curves.append({"split": split, "metric": metric, "unit": "epoch", "values": values})
    target = problem.target
    target_split = getattr(target, "split", "val")
    hit = next(
        (e for e in range(1, len(evals)) if target.reached(evals[e][target_split][target.metric])),
        None,
    )
    summary = {
        "main_metric": problem.main_metric,
        "higher_is_better": problem.higher_is_better,
        "target": {
            "metric": target.metric,
            "value": target.value,
            "higher_is_better": target.higher_is_better,
            "split": target_split,
        },
        "epochs_done": len(evals) - 1,
        "steps": len(steps),
        "final": evals[-1],
        "train_seconds": seconds[-1],
        "epochs_to_target": hit,
        "seconds_to_target": None if hit is None else seconds[hit],
    }
    return {"diverged": diverged, "summary": summary, "curves": curves}


def run_trial(config: Mapping[str, Any], *, data_dir: str | None = None) -> dict[str, Any]:
    """Run one trial and return its outcome.

    Returns:
        ``{"status": "finished" | "failed", "diverged": bool, "wall_time": seconds,
        "error": message or None, "summary": final metrics and time-to-target,
        "curves": [{"split", "metric", "unit", "values"}, ...]}``. Curves: the training loss
        of every step (``train/step_loss``), ``loss`` and each metric on train/val/test after
        every epoch (epoch 0 is before training) and the cumulative training seconds.
    """
    start = time.perf_counter()
    with _single_thread_seeded(config["seed"]):
        try:
            out = _train(config, data_dir)
            out.update(status="finished", error=None)
        except Exception as e:  # a broken trial must never crash the sweep
            out = failed(f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}")
    out["wall_time"] = time.perf_counter() - start
    return out


def failed(error: str) -> dict[str, Any]:
    """The outcome of a trial that could not run (an exception, or its worker died)."""
    return {
        "status": "failed",
        "diverged": False,
        "wall_time": 0.0,
        "error": error,
        "summary": {},
        "curves": [],
    }
