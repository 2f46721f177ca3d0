"""The numerical checks: against the reference, fast paths against the readable one, resume."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable

import torch
from torch.optim.lr_scheduler import LRScheduler

from ._compare import Where, compare_identical, compare_states, identical
from ._data import Groups, clone_groups, indexed, set_grads
from ._optimizers import build_reference, name_of, refusal
from ._spec import Spec, run, short

__all__ = ["check_paths", "check_reference", "check_state_dict", "lockstep"]


def lockstep(
    where: Where,
    spec: Spec,
    opt: torch.optim.Optimizer,
    groups: Groups,
    steps: range,
    schedule: Callable[[torch.optim.Optimizer], LRScheduler] | None = None,
) -> None:
    """Step ``opt`` and the reference side by side; compare parameters and the reference's state.

    Also checks that the step leaves ``p.grad`` as it was (torch works on a copy: gradient
    logging, clipping and GradScaler rely on it) and keeps every parameter's dtype. With
    ``schedule``, a scheduler drives both (a function reference reads the tested groups' lr).
    """
    twin = clone_groups(groups)
    theirs = build_reference(spec.reference, twin, spec.hparams, opt)
    schedulers = []
    if schedule is not None:
        schedulers = [schedule(o) for o in (opt, theirs) if isinstance(o, torch.optim.Optimizer)]
    rtol, atol = spec.tol(groups[0][0].dtype)
    for t in steps:
        w = where.at(step=t)
        set_grads(groups, t)
        set_grads(twin, t)
        grads = [p.grad.clone() for g in groups for p in g]
        with w.running("the optimizer's step"):
            opt.step()
        with w.running("the reference's step"):
            theirs.step()
        for (gi, pi, p), before in zip(indexed(groups), grads):
            if identical(p.grad, before):
                raise w.fail("the step changed p.grad in place", group=gi, param=pi)
            if p.dtype != before.dtype:
                raise w.fail(f"the parameter became {p.dtype}", group=gi, param=pi)
        compare_states(w, opt, theirs, groups, twin, rtol, atol, spec.aliases)
        for scheduler in schedulers:
            scheduler.step()


def check_reference(spec: Spec) -> str | None:
    """Lock-step with the reference, every dtype, on the readable path."""
    if spec.reference is None:
        return "no reference given"
    path = next(iter(spec.paths))
    for dtype in spec.dtypes:
        label = f"{short(dtype)}, {path} vs {name_of(spec.reference)}"
        where = Where("reference", label)
        groups = spec.groups(dtype)
        with where.running("building the optimizer"):
            opt = spec.build(groups, spec.readable)
        lockstep(where, spec, opt, groups, range(1, spec.steps + 1))
    return None


def check_paths(spec: Spec) -> str | None:
    """Every fast path equals the readable one: parameters and every state entry, each step."""
    names = list(spec.paths)
    if len(names) < 2:
        return "the class has one path only (no impl=, foreach= or fused=)"
    readable = names[0]
    for dtype in spec.dtypes:
        rtol, atol = spec.tol(dtype)
        fast = []
        for name in names[1:]:  # torch's fused=True refuses complex parameters, for one
            why = refusal(spec.factory, dtype, **spec.paths[name])
            if why:
                spec.skipped[f"paths: {name}, {short(dtype)}"] = why
            else:
                fast.append(name)
        runs = {}
        for name in [readable, *fast]:
            groups = spec.groups(dtype)
            where = Where("paths", f"{name}, {short(dtype)}")
            with where.running("building the optimizer"):
                runs[name] = (spec.build(groups, spec.paths[name]), groups)
        slow, slow_groups = runs[readable]
        for t in range(1, spec.steps + 1):
            for name, (opt, groups) in runs.items():
                run(Where("paths", f"{name}, {short(dtype)}"), opt, groups, range(t, t + 1))
            for name in fast:
                opt, groups = runs[name]
                w = Where("paths", f"{name} vs {readable}, {short(dtype)}", t)
                _same_keys(w, slow, opt, slow_groups, groups)
                compare_states(w, opt, slow, groups, slow_groups, rtol, atol)
    return None


def _same_keys(where: Where, a, b, ga: Groups, gb: Groups) -> None:
    for (gi, pi, p), q in zip(indexed(ga), (q for g in gb for q in g)):
        extra = sorted(set(b.state.get(q, {})) - set(a.state.get(p, {})), key=str)
        if extra:
            raise where.fail("kept by the fast path only", group=gi, param=pi, key=extra[0])


def check_state_dict(spec: Spec) -> str | None:
    """Save model and optimizer to a file, load both into fresh ones, continue bit for bit."""
    where = Where("state_dict", "resumed vs uninterrupted")
    split = max(1, spec.steps // 2)
    groups = spec.groups()
    opt = spec.build(groups)
    run(where, opt, groups, range(1, split + 1))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "checkpoint.pt")
        with where.at(step=split).running("saving"):
            params = [p.detach().clone() for g in groups for p in g]
            torch.save({"model": params, "optimizer": opt.state_dict()}, path)
        with where.at(step=split).running("torch.load(weights_only=True)"):
            saved = torch.load(path, weights_only=True)
    fresh = spec.groups()
    with torch.no_grad():
        for p, value in zip((p for g in fresh for p in g), saved["model"]):
            p.copy_(value)
    resumed = spec.build(fresh)
    with where.at(step=split).running("load_state_dict"):
        resumed.load_state_dict(saved["optimizer"])
    names = ("the uninterrupted run", "the resumed run")
    compare_identical(where.at(step=split), opt, resumed, groups, fresh, names)
    for t in range(split + 1, spec.steps + 1):
        run(where, opt, groups, range(t, t + 1))
        run(where, resumed, fresh, range(t, t + 1))
        compare_identical(where.at(step=t), opt, resumed, groups, fresh, names)
    return None
