"""What torch.optim users rely on: copies, hooks, schedulers, dtypes, missing gradients."""

from __future__ import annotations

import copy
import io
import pickle
from collections.abc import Callable
from typing import Any

import torch

from ._compare import Where, close, compare_identical, identical
from ._data import Groups, indexed, set_grads
from ._numeric import lockstep
from ._optimizers import name_of
from ._spec import Spec, run, snapshot

__all__ = [
    "COPIES",
    "check_copies",
    "check_float64",
    "check_hooks",
    "check_no_grad",
    "check_scheduler",
    "check_zero_grad",
    "torch_round_trip",
]


def torch_round_trip(obj: Any, *, weights_only: bool = False) -> Any:
    """``obj`` through ``torch.save`` and ``torch.load`` (in memory)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=weights_only)


# The three ways users copy an optimizer (with its parameters, to keep them tied)
COPIES: dict[str, Callable[[Any], Any]] = {
    "deepcopy": copy.deepcopy,
    "pickle": lambda obj: pickle.loads(pickle.dumps(obj)),
    "torch.save": torch_round_trip,
}


def check_copies(spec: Spec) -> str | None:
    """A copy of (parameters, optimizer) taken mid-run continues exactly as the original."""
    for how, copier in COPIES.items():
        where = Where("copies", how)
        groups = spec.groups()
        opt = spec.build(groups)
        run(where, opt, groups, range(1, 5))
        with where.at(step=4).running(f"{how} of the optimizer"):
            groups2, opt2 = copier((groups, opt))
        run(where, opt, groups, range(5, 11))
        run(where, opt2, groups2, range(5, 11))
        compare_identical(where.at(step=10), opt, opt2, groups, groups2, ("original", "copy"))
    return None


def check_hooks(spec: Spec) -> str | None:
    """Step pre/post hooks once per step; the four state-dict hooks, in order, and a key added
    by the state-dict post hook reaches the load pre hook (it runs before any check)."""
    where = Where("hooks", "step hooks")
    groups = spec.groups()
    opt = spec.build(groups)
    calls: list[str] = []
    handles = [
        opt.register_step_pre_hook(lambda o, args, kwargs: calls.append("pre")),
        opt.register_step_post_hook(lambda o, args, kwargs: calls.append("post")),
    ]
    run(where, opt, groups, range(1, 3))
    if calls != ["pre", "post"] * 2:
        raise where.at(step=2).fail(f"two steps called the hooks as {calls}")
    for handle in handles:
        handle.remove()
    run(where, opt, groups, range(3, 4))
    if len(calls) != 4:
        raise where.at(step=3).fail(f"a removed hook still ran: {calls}")

    where, calls = Where("hooks", "state-dict hooks", 3), []

    def post(o: Any, sd: dict[str, Any]) -> None:
        calls.append("post")
        sd["added_by_a_hook"] = 1

    def load_pre(o: Any, sd: dict[str, Any]) -> None:
        calls.append("load_pre" if sd.pop("added_by_a_hook", None) == 1 else "load_pre (no key)")

    opt.register_state_dict_pre_hook(lambda o: calls.append("pre"))
    opt.register_state_dict_post_hook(post)
    opt.register_load_state_dict_pre_hook(load_pre)
    opt.register_load_state_dict_post_hook(lambda o: calls.append("load_post"))
    with where.running("state_dict() and load_state_dict() with hooks"):
        opt.load_state_dict(opt.state_dict())
    if calls != ["pre", "post", "load_pre", "load_post"]:
        raise where.fail(f"the hooks ran as {calls}")
    return None


def check_scheduler(spec: Spec) -> str | None:
    """StepLR drives the optimizer: its lr is the schedule's, and (with a reference) the run stays
    in lock-step with the reference under the same schedule."""
    where = Where("scheduler", "StepLR(step_size=3, gamma=0.5)")
    groups = spec.groups()
    opt = spec.build(groups, spec.readable)
    initial = [g["lr"] for g in opt.param_groups]

    def schedule(o: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
        return torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5)

    steps = range(1, 13)
    if spec.reference is not None:
        where = where.at(label=f"{where.label} vs {name_of(spec.reference)}")
        lockstep(where, spec, opt, groups, steps, schedule)
    else:
        scheduler = schedule(opt)
        for t in steps:
            run(where, opt, groups, range(t, t + 1))
            scheduler.step()
    for i, (group, lr) in enumerate(zip(opt.param_groups, initial)):
        want = float(lr) * 0.5 ** (len(steps) // 3)
        if close(float(group["lr"]), want, 1e-12, 0.0):
            raise where.at(step=len(steps)).fail(f"group {i}: lr {group['lr']}, not {want}")
    return None


def _kept(where: Where, opt: Any, groups: Groups, dtype: torch.dtype) -> None:
    for gi, pi, p in indexed(groups):
        if p.dtype != dtype:
            raise where.fail(f"the parameter became {p.dtype}", group=gi, param=pi)
        if not torch.isfinite(p).all():
            raise where.fail("the parameter is not finite", group=gi, param=pi)
        for key, value in opt.state.get(p, {}).items():  # tensors shaped like p (not counters)
            shaped = torch.is_tensor(value) and p.dim() > 0 and value.shape == p.shape
            if shaped and value.dtype != dtype:
                raise where.fail(f"{value.dtype}, not {dtype}", group=gi, param=pi, key=key)


def check_float64(spec: Spec) -> str | None:
    """float64 parameters stay float64 (and their state), and a float64 default dtype
    (``torch.set_default_dtype``) leaves float32 parameters and their state float32."""
    where = Where("float64", "float64 parameters")
    groups = spec.groups(torch.float64)
    opt = spec.build(groups)
    run(where, opt, groups, range(1, 4))
    _kept(where.at(step=3), opt, groups, torch.float64)
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        where = Where("float64", "float32 parameters, float64 default dtype")
        groups = spec.groups(torch.float32)
        with where.running("building the optimizer"):
            opt = spec.build(groups)
        run(where, opt, groups, range(1, 4))
        _kept(where.at(step=3), opt, groups, torch.float32)
    finally:
        torch.set_default_dtype(before)
    return None


def _after_two_steps(spec: Spec, where: Where) -> tuple[Groups, torch.optim.Optimizer]:
    groups = spec.groups()
    opt = spec.build(groups)
    run(where, opt, groups, range(1, 3))
    return groups, opt


def check_zero_grad(spec: Spec) -> str | None:
    """``zero_grad(set_to_none=True)`` leaves no gradient, and a step then changes nothing."""
    where = Where("zero_grad", "set_to_none=True", 3)
    groups, opt = _after_two_steps(spec, where)
    opt.zero_grad(set_to_none=True)
    for gi, pi, p in indexed(groups):
        if p.grad is not None:
            raise where.fail("a gradient is left", group=gi, param=pi)
    _unchanged(where, opt, groups)
    return None


def check_no_grad(spec: Spec) -> str | None:
    """A parameter whose ``grad`` is None is skipped: it and its state do not change."""
    where = Where("no_grad", "one parameter without a gradient", 3)
    groups, opt = _after_two_steps(spec, where)
    set_grads(groups, 3)
    groups[0][-1].grad = None
    _unchanged(where, opt, groups)
    return None


def _unchanged(where: Where, opt: Any, groups: Groups) -> None:
    """A step leaves every parameter without a gradient, and its state, as they were."""
    before = snapshot(opt, groups)
    skipped = [p.grad is None for g in groups for p in g]
    with where.running():
        opt.step()
    for (gi, pi, p), (value, state), check in zip(indexed(groups), before, skipped):
        if not check:
            continue
        why = identical(p.detach(), value)
        if why:
            raise where.fail(f"the parameter changed: {why}", group=gi, param=pi)
        why = identical(opt.state.get(p, {}), state)
        if why:
            raise where.fail(f"its state changed: {why}", group=gi, param=pi)
