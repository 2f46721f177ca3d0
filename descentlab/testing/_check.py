"""``check_optimizer``: every check, in order, on any ``torch.optim.Optimizer``."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ._device import WARMUP, check_compile, check_meta
from ._dropin import (
    check_copies,
    check_float64,
    check_hooks,
    check_no_grad,
    check_scheduler,
    check_zero_grad,
)
from ._numeric import check_paths, check_reference, check_state_dict
from ._optimizers import Factory, ReferenceFn, default_paths, name_of
from ._spec import Spec

CHECKS: dict[str, Callable[[Spec], str | None]] = {
    "reference": check_reference,
    "paths": check_paths,
    "state_dict": check_state_dict,
    "copies": check_copies,
    "hooks": check_hooks,
    "scheduler": check_scheduler,
    "float64": check_float64,
    "zero_grad": check_zero_grad,
    "no_grad": check_no_grad,
    "meta": check_meta,
    "compile": check_compile,
}


@dataclass
class Report:
    """What ``check_optimizer`` checked: the checks that passed, and those skipped with why."""

    optimizer: str
    passed: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"{self.optimizer}: passed {', '.join(self.passed) or 'nothing'}"]
        lines += [f"  paths compared: {', '.join(self.paths)}"] if self.paths else []
        lines += [f"  skipped {name}: {why}" for name, why in self.skipped.items()]
        return "\n".join(lines)


def check_optimizer(
    optimizer: Factory,
    reference: Factory | ReferenceFn | None = None,
    hyperparameters: Sequence[Mapping[str, Any]] = ({"lr": 1e-2}, {"lr": 3e-3}),
    *,
    steps: int = 50,
    dtypes: Sequence[torch.dtype] = (torch.float64, torch.float32),
    tolerances: Mapping[torch.dtype, tuple[float, float]] | None = None,
    paths: Mapping[str, Mapping[str, Any]] | None = None,
    state_aliases: Mapping[str, str] | None = None,
    compile: bool = False,
    compile_backend: str = "aot_eager",
    compile_steps: int = 8,
    skip: Collection[str] = (),
    seed: int = 0,
) -> Report:
    """Check that an optimizer class computes what its reference does and behaves as torch.optim's.

    Runs on any ``torch.optim.Optimizer`` subclass. Each parameter group gets two tensors of
    the kinds a step must handle (a scalar, a matrix, a non-contiguous view, a vector) and
    deterministic gradients. The checks, in order (names for ``skip``):

    - ``reference``: lock-step with ``reference`` over ``steps`` steps in every dtype, on the
      readable path: parameters and every state entry the reference keeps; ``p.grad`` untouched.
    - ``paths``: every fast path (``paths``) equals the readable one (the first), parameters and
      every state entry, step by step, in every dtype.
    - ``state_dict``: model and optimizer saved to a file mid-run (``torch.save``,
      ``torch.load(weights_only=True)``), loaded into fresh ones: the rest of the run equals the
      uninterrupted one bit for bit.
    - ``copies``: ``deepcopy``, ``pickle`` and ``torch.save`` of the optimizer continue exactly.
    - ``hooks``: step pre/post hooks and the four state-dict hooks run, once each, in order.
    - ``scheduler``: ``StepLR`` drives it (and the reference, in lock-step).
    - ``float64``: float64 parameters and their state stay float64; under a float64 default
      dtype float32 parameters and their state stay float32.
    - ``zero_grad``: ``zero_grad(set_to_none=True)`` leaves no gradient; a step then changes
      nothing. ``no_grad``: a parameter without a gradient and its state are left alone.
    - ``meta``: steps on ``meta`` parameters, so no step reads a device value on the host.
    - ``compile`` (only with ``compile=True``, it takes seconds): ``torch.compile(opt.step)``
      equals the eager step, with no recompile after 3 steps while ``LambdaLR`` changes a tensor
      ``lr`` (a float lr, constant, where the class refuses a tensor).

    Args:
        optimizer: the class, or any callable ``f(param_groups, **options)``, such as
            ``functools.partial(SGD, momentum=0.9)``.
        reference: another optimizer class (or a ``functools.partial`` of one), built on the same
            groups; or a function ``reference(param, grad, state, step, **group_hparams)`` that
            updates one tensor in place (or returns it) and keeps its entries in ``state``
            (a dict per tensor; ``step`` counts from 1; only the hyperparameters it names are
            passed, all of them if it takes ``**kwargs``). None skips ``reference``.
        hyperparameters: one dict per parameter group (at least two make a better test).
        steps: the steps of the lock-step checks.
        dtypes: the parameters' dtypes; the checks that run once take the first.
        tolerances: ``{dtype: (rtol, atol)}`` over ``TOLERANCES`` (float64 1e-10, float32 1e-4).
        paths: ``{name: constructor keywords}``, the readable path first. By default
            descentlab's ``impl=`` values, else torch's ``foreach=``/``fused=``, where accepted.
        state_aliases: ``{reference's state key: the optimizer's}`` where they differ.
        compile: run the ``compile`` check; ``compile_backend`` and ``compile_steps`` set it.
        skip: the names of checks not to run.
        seed: the seed of the parameters' values.

    Returns:
        a :class:`Report` of the checks passed and skipped (with the reason).

    Raises:
        ConformanceError: an ``AssertionError`` naming the check, the run, the step, the group
            and parameter index and the state key that failed (also its attributes).

    Example:
        >>> import torch
        >>> from descentlab.testing import check_optimizer
        >>> def sgd(param, grad, state, step, lr):
        ...     param.add_(grad, alpha=-lr)
        >>> report = check_optimizer(torch.optim.SGD, sgd, steps=5)
        >>> report.paths, report.skipped
        (['foreach=False', 'foreach=True', 'fused=True'], {'compile': 'compile=False'})
    """
    unknown = sorted(set(skip) - set(CHECKS))
    if unknown:
        raise ValueError(f"skip: unknown checks {unknown}; valid: {', '.join(CHECKS)}")
    if not hyperparameters or steps < 2 or compile_steps <= WARMUP:
        raise ValueError(
            "hyperparameters needs at least one group, steps at least 2 and compile_steps at "
            f"least {WARMUP + 1}"
        )
    refused: dict[str, str] = {}
    if paths is None:
        paths, refused = default_paths(optimizer)
    all_paths = {k: dict(v) for k, v in paths.items()}
    if not all_paths:
        raise ValueError(f"{name_of(optimizer)} refuses every path: {refused}")
    spec = Spec(
        factory=optimizer,
        name=name_of(optimizer),
        reference=reference,
        hparams=tuple(dict(h) for h in hyperparameters),
        steps=steps,
        dtypes=tuple(dtypes),
        tolerances=dict(tolerances or {}),
        paths=all_paths,
        aliases=dict(state_aliases or {}),
        seed=seed,
        compile_backend=compile_backend,
        compile_steps=compile_steps,
    )
    report = Report(spec.name, paths=list(all_paths))
    report.skipped.update({f"paths: {k}": why for k, why in refused.items()})
    for name, check in CHECKS.items():
        if name in skip or (name == "compile" and not compile):
            report.skipped[name] = "asked" if name in skip else "compile=False"
            continue
        try:
            why = check(spec)
        except AssertionError as e:
            e.args = (f"check_optimizer({spec.name}): {e}",)
            raise
        if why:
            report.skipped[name] = why
        else:
            report.passed.append(name)
    report.skipped.update(spec.skipped)
    return report
