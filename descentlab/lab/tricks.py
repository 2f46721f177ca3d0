"""What each axis of :mod:`descentlab.lab.axes` does to a trial (its hooks), and what it clashes
with (its rules).

A hook takes the trial's :class:`Context` and changes what its phase builds (see
:data:`descentlab.lab.axes.PHASES`); the trial runner calls the hooks of the axes a trial uses,
phase by phase, without knowing any of them.

* ``init``: :func:`descentlab.problems.init.initialize` on the task's model, from the trial's seed.
* ``shuffle`` and ``curriculum``: the order of the training examples
  (:meth:`descentlab.problems.SupervisedTask.set_order`); a curriculum's difficulty is the loss of
  a small reference model (:func:`descentlab.problems.ordering.reference_difficulty`) or the
  problem's own score (``task.difficulty``).
* ``finetune``: pre-train the same architecture on another problem (or a subset of classes) with
  the same optimizer and learning rate, then start from those weights.
* ``gradient_noise``: the :class:`descentlab.optim.GradientNoise` wrapper (Neelakantan et al. 2015),
  seeded by the trial's seed.
* ``weight_decay``: a step pre-hook on any ``torch.optim.Optimizer``. ``"l2"`` adds
  :math:`\\lambda\\theta` to the gradient before the step (weight decay coupled with the adaptive
  scaling, as ``weight_decay`` of torch's Adam); ``"decoupled"`` scales
  :math:`\\theta \\leftarrow (1 - \\eta_t\\lambda)\\theta` before the step, with the group's current
  learning rate (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization", torch's AdamW
  convention).
* ``warmup``: the ``"warmup"`` schedule of :mod:`descentlab.schedules` before the optimizer's own
  schedule (or a constant learning rate).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ..optim import GradientNoise
from ..store import Pretrained, Trial
from ._build import load_problem
from ._errors import SpecError

__all__ = [
    "Context",
    "decay",
    "decay_hook",
    "finetune",
    "finetune_fits",
    "full_batch_fits",
    "hparam_clash",
    "initialize",
    "noise",
    "order",
    "schedule_clash",
    "warmup",
    "wrapper_clash",
]


@dataclass
class Context:
    """What a trial's hooks see and change.

    ``problem`` and ``task`` are the ones being built (for fine-tuning, first the pre-training
    problem's); ``optimizer`` is set in the optimizer phases, ``schedule`` and ``schedule_args``
    in the schedule phase. ``pretrain(problem, options, epochs)`` builds a task of ``problem``
    with the trial's model and data hooks and trains it with the trial's optimizer; the
    ``finetune`` hook records it in ``pretrained`` (the trial's summary keeps it).
    ``axis_options`` are the trial's options that its axes set (``normalization``, ``dropout``).
    """

    trial: Trial
    problem: Any
    task: Any = None
    optimizer: torch.optim.Optimizer | None = None
    schedule: str | None = None
    schedule_args: dict[str, Any] = field(default_factory=dict)
    total_steps: int = 0
    pretrained: Pretrained | None = None
    pretrain: Callable[[Any, dict[str, Any], int], Any] | None = None
    axis_options: Mapping[str, Any] = field(default_factory=dict)

    def value(self, axis: str, default: Any = None) -> Any:
        """The trial's value of ``axis`` (``default`` when it is off)."""
        return self.trial.tricks.get(axis, default)


# --- hooks --------------------------------------------------------------------------------------


def initialize(ctx: Context) -> None:
    """``init``: re-initialise the model's layers, from the trial's seed."""
    from ..problems.init import initialize as init_layers

    init = ctx.value("init")
    torch.manual_seed(ctx.trial.seed)
    options = {k: v for k, v in init.items() if k != "scheme"}
    try:
        init_layers(ctx.task.model, init["scheme"], **options)
    except ValueError as e:
        raise ValueError(f"init: problem {ctx.problem.name!r}: {e}") from e


def order(ctx: Context) -> None:
    """``shuffle`` and ``curriculum`` (one hook of both): the order of the training examples."""
    from ..problems.ordering import Curriculum, reference_difficulty

    shuffle, curriculum = ctx.value("shuffle", "epoch"), ctx.value("curriculum")
    plan = None
    if curriculum is not None:
        if curriculum["score"] == "problem":
            scores = getattr(ctx.task, "difficulty", None)
            if scores is None:
                raise ValueError(
                    f"curriculum: problem {ctx.problem.name!r} provides no difficulty score; "
                    "use score = 'reference' (the loss of a small reference model)"
                )
        else:
            x, y = ctx.task.splits["train"]
            scores = reference_difficulty(x, y, seed=ctx.trial.seed)
        options = {k: v for k, v in curriculum.items() if k != "score"}
        plan = Curriculum(scores, **options)
    ctx.task.set_order(shuffle=shuffle, curriculum=plan)


def finetune(ctx: Context) -> None:
    """``finetune``: pre-train on the source problem (with the axes' options it has a place
    for), then load its weights into the task."""
    ft = ctx.value("finetune")
    source = load_problem(ft["problem"])  # the trial names it: it is loaded where the trial runs
    shared = {k: v for k, v in ctx.axis_options.items() if k in source.axes}
    start = time.perf_counter()
    pre = ctx.pretrain(source, {**shared, **ft["options"]}, ft["epochs"])
    try:
        ctx.task.model.load_state_dict(pre.model.state_dict())
    except RuntimeError as e:
        raise ValueError(
            f"finetune: the model of {ft['problem']!r} does not fit the model of "
            f"{ctx.trial.problem!r}: {str(e).splitlines()[0]}"
        ) from e
    ctx.pretrained = Pretrained(ft["problem"], ft["epochs"], time.perf_counter() - start)


def noise(ctx: Context) -> None:
    """``gradient_noise``: wrap the optimizer in GradientNoise, seeded by the trial's seed."""
    v = ctx.value("gradient_noise")
    ctx.optimizer = GradientNoise(
        ctx.optimizer, eta=v["eta"], gamma=v["gamma"], generator=ctx.trial.seed
    )


def decay_hook(value: float, coupling: str) -> Callable[..., None]:
    """A ``register_step_pre_hook`` hook applying weight decay ``value``, ``"l2"`` or ``"decoupled"``."""

    @torch.no_grad()
    def hook(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        for group in optimizer.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            if coupling == "l2":
                torch._foreach_add_([p.grad for p in params], params, alpha=value)
            else:
                torch._foreach_mul_(params, 1.0 - float(group["lr"]) * value)

    return hook


def decay(ctx: Context) -> None:
    """``weight_decay``: a step pre-hook on the (wrapped) optimizer."""
    v = ctx.value("weight_decay")
    ctx.optimizer.register_step_pre_hook(decay_hook(v["value"], v["coupling"]))


def warmup(ctx: Context) -> None:
    """``warmup``: the warm-up schedule in front of the optimizer's own (or a constant lr)."""
    warm, total = ctx.value("warmup"), ctx.total_steps
    steps = warm.get("steps") or max(1, round(warm["fraction"] * total))
    if steps >= total:
        raise ValueError(f"warmup: {steps} steps, but the run has only {total}")
    after = ctx.schedule or "constant"
    ctx.schedule = "warmup"
    ctx.schedule_args = {"warmup_steps": steps, "after": after, **ctx.schedule_args}


# --- rules: a SpecError when an axis does not fit a problem or an optimizer ---------------------


def full_batch_fits(problem: Any, values: list[Any], where: str) -> None:
    """``batch_size = "full"`` needs a fixed training set."""
    if "full" in values and problem.kind != "supervised":
        raise SpecError(
            f"batch_size: problem {problem.name!r} (kind {problem.kind}) cannot take the axis "
            f"batch_size = full: only supervised problems have a fixed training set ({where})"
        )


def finetune_fits(problem: Any, values: list[Any], where: str) -> None:
    """The pre-training problem exists and takes the options given."""
    for v in values:
        if isinstance(v, dict):
            try:
                source = load_problem(v["problem"])
            except (ValueError, ImportError, AttributeError) as e:
                raise SpecError(f"finetune.problem: {e}") from e
            try:
                source.check_options(v["options"])
            except ValueError as e:
                raise SpecError(f"finetune.options.{e}") from e


def hparam_clash(hparam: str, why: str) -> Callable[[Any, str], None]:
    """A rule: the optimizer must not set ``hparam`` itself."""

    def clash(opt: Any, key: str) -> None:
        if hparam in opt.hparams:
            raise SpecError(f"{hparam}: also set in {key}.hparams; {why}: set it in one place")

    return clash


def schedule_clash(axis: str) -> Callable[[Any, str], None]:
    """A rule: the optimizer's schedule must not already be ``axis`` (``warmup...``)."""

    def clash(opt: Any, key: str) -> None:
        if (opt.schedule or "").startswith(axis):
            raise SpecError(f"{axis}: {key} already has the schedule {opt.schedule!r}")

    return clash


def wrapper_clash(axis: str, wrapper: str, does: str) -> Callable[[Any, str], None]:
    """A rule: the optimizer must not already be the ``wrapper(...)`` doing the same."""

    def clash(opt: Any, key: str) -> None:
        if opt.name.startswith(f"{wrapper}("):
            raise SpecError(f"{axis}: {key} already {does} ({opt.name!r})")

    return clash
