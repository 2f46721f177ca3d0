"""Apply a trial's axes (``config["tricks"]``, see :mod:`descentlab.lab.axes`) to its task and optimizers.

* ``init``: :func:`descentlab.problems.init.initialize` on the task's model, from the trial's seed.
* ``shuffle`` and ``curriculum``: the order of the training examples
  (:meth:`descentlab.problems.SupervisedTask.set_order`); a curriculum's difficulty is the loss of
  a small reference model (:func:`descentlab.problems.ordering.reference_difficulty`) or the
  problem's own score (``task.difficulty``).
* ``weight_decay``: a step pre-hook on any ``torch.optim.Optimizer``. ``"l2"`` adds
  :math:`\\lambda\\theta` to the gradient before the step (weight decay coupled with the adaptive
  scaling, as ``weight_decay`` of torch's Adam); ``"decoupled"`` scales
  :math:`\\theta \\leftarrow (1 - \\eta_t\\lambda)\\theta` before the step, with the group's current
  learning rate (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization", torch's AdamW
  convention).
* ``gradient_noise``: the :class:`descentlab.optim.GradientNoise` wrapper (Neelakantan et al. 2015),
  seeded by the trial's seed.
* ``warmup``: the ``"warmup"`` schedule of :mod:`descentlab.schedules` before the optimizer's own
  schedule (or a constant learning rate).
* ``finetune``: pre-train the same architecture on another problem (or a subset of classes) with
  the same optimizer and learning rate, then start from those weights.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from ..optim import GradientNoise

__all__ = [
    "apply_order",
    "decay_hook",
    "initialize_model",
    "pretrained_from",
    "warmup_schedule",
    "wrap",
]


def initialize_model(task: Any, tricks: Mapping[str, Any], seed: int, problem: str) -> None:
    """Re-initialise the model's layers per ``tricks["init"]``, from ``seed``."""
    init = tricks.get("init")
    if init is None:
        return
    from ..problems.init import initialize

    torch.manual_seed(seed)
    options = {k: v for k, v in init.items() if k != "scheme"}
    try:
        initialize(task.model, init["scheme"], **options)
    except ValueError as e:
        raise ValueError(f"init: problem {problem!r}: {e}") from e


def apply_order(task: Any, tricks: Mapping[str, Any], seed: int, problem: str) -> None:
    """Set the order of the training examples (``shuffle``, ``curriculum``) on a supervised task."""
    shuffle, curriculum = tricks.get("shuffle", "epoch"), tricks.get("curriculum")
    if shuffle == "epoch" and curriculum is None:
        return
    from ..problems.ordering import Curriculum, reference_difficulty

    plan = None
    if curriculum is not None:
        if curriculum["score"] == "problem":
            scores = getattr(task, "difficulty", None)
            if scores is None:
                raise ValueError(
                    f"curriculum: problem {problem!r} provides no difficulty score; "
                    "use score = 'reference' (the loss of a small reference model)"
                )
        else:
            x, y = task.splits["train"]
            scores = reference_difficulty(x, y, seed=seed)
        options = {k: v for k, v in curriculum.items() if k != "score"}
        plan = Curriculum(scores, **options)
    task.set_order(shuffle=shuffle, curriculum=plan)


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


def wrap(
    optimizer: torch.optim.Optimizer, tricks: Mapping[str, Any], seed: int
) -> torch.optim.Optimizer:
    """The optimizer with the trial's gradient noise and weight decay."""
    noise = tricks.get("gradient_noise")
    if noise is not None:
        optimizer = GradientNoise(optimizer, eta=noise["eta"], gamma=noise["gamma"], generator=seed)
    decay = tricks.get("weight_decay")
    if decay is not None:
        optimizer.register_step_pre_hook(decay_hook(decay["value"], decay["coupling"]))
    return optimizer


def warmup_schedule(
    tricks: Mapping[str, Any], schedule: str | None, args: Mapping[str, Any], total_steps: int
) -> tuple[str | None, dict[str, Any]]:
    """The schedule name and arguments with the trial's warm-up put in front, if it has one."""
    warm = tricks.get("warmup")
    if warm is None:
        return schedule, dict(args)
    steps = warm.get("steps") or max(1, round(warm["fraction"] * total_steps))
    if steps >= total_steps:
        raise ValueError(f"warmup: {steps} steps, but the run has only {total_steps}")
    return "warmup", {"warmup_steps": steps, "after": schedule or "constant", **args}


def pretrained_from(task: Any, pretrained: Any, problem: str, source: str) -> None:
    """Load the weights of the pre-trained task's model into ``task``'s model."""
    try:
        task.model.load_state_dict(pretrained.model.state_dict())
    except RuntimeError as e:
        raise ValueError(
            f"finetune: the model of {source!r} does not fit the model of {problem!r}: "
            f"{str(e).splitlines()[0]}"
        ) from e
