"""Every schedule against its reference, resumed from a file, on any optimizer; the errors."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import descentlab
from descentlab import schedules
from descentlab.optim import Lookahead

from .cases import CASES, ERRORS, Case

LR = 0.1
TORCH_TWIN = {
    "sgdm": lambda g: torch.optim.SGD(g, lr=LR, momentum=0.9),
    "adam": lambda g: torch.optim.Adam(g, lr=LR),
}
OPTIMIZERS = {
    "descentlab": lambda case, g: descentlab.create(case.optimizer, g, lr=LR),
    "torch": lambda case, g: TORCH_TWIN[case.optimizer](g),
    "lookahead": lambda case, g: Lookahead(descentlab.create(case.optimizer, g, lr=LR), k=3),
}
X = torch.linspace(-1, 1, 12).reshape(4, 3)


def build(case: Case, *, seed: int = 0, kind: str = "descentlab") -> tuple[Any, ...]:
    """A two-group model (weights at LR, bias at LR/2), its optimizer and the optimizer's twin
    for the reference (or ``None``)."""
    torch.manual_seed(seed)
    model = nn.Linear(3, 2)
    groups = [
        {"params": [model.weight], **case.groups[0]},
        {"params": [model.bias], "lr": LR / 2, **case.groups[1]},
    ]
    return model, OPTIMIZERS[kind](case, groups)


def momentum(group: dict[str, Any]) -> float | None:
    return group["betas"][0] if "betas" in group else group.get("momentum")


def train(model, opt, sched, steps: int) -> list[tuple[list[float], list[Any]]]:
    """Real steps; before each, the LRs and momenta it uses."""
    seen = []
    for _ in range(steps):
        seen.append(([g["lr"] for g in opt.param_groups], [momentum(g) for g in opt.param_groups]))
        opt.zero_grad()
        model(X).pow(2).mean().backward()
        opt.step()
        sched.step()
    return seen


def run(case: Case, steps: int | None = None, **kw: Any) -> list[tuple[list[float], list[Any]]]:
    model, opt = build(case, **kw)
    sched = schedules.create(case.name, opt, total_steps=case.steps, **case.options)
    return train(model, opt, sched, case.steps if steps is None else steps)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_against_reference(case: Case) -> None:
    seen = run(case)
    model, opt = build(case)
    initial = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    if case.torch_ref is not None:
        expected = train(model, opt, case.torch_ref(opt), case.steps)
        for (lrs, moms), (ref_lrs, ref_moms) in zip(seen, expected):
            assert lrs == pytest.approx(ref_lrs, rel=1e-12, abs=1e-15)
            assert moms == pytest.approx(ref_moms, rel=1e-12)
    else:
        for e, (lrs, _) in enumerate(seen):
            want = [case.formula(e, g) for g in initial]
            assert lrs == pytest.approx(want, rel=1e-12, abs=1e-15), f"step {e}"
    if case.momentum is not None:
        for e, (_, moms) in enumerate(seen):
            assert moms == pytest.approx([case.momentum(e, g) for g in initial], rel=1e-12)
    assert len({tuple(lrs) for lrs, _ in seen}) > 1 or case.name == "constant"


def test_table_covers_every_schedule() -> None:
    assert {c.name for c in CASES} == set(schedules.names())
    assert all((c.torch_ref is None) != (c.formula is None) for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("kind", ["descentlab", "lookahead"])
@pytest.mark.parametrize("split", [0.3, 0.5])
def test_resume_from_file(case: Case, kind: str, split: float, tmp_path) -> None:
    k = int(case.steps * split)
    model, opt = build(case, kind=kind)
    sched = schedules.create(case.name, opt, total_steps=case.steps, **case.options)
    straight = train(model, opt, sched, case.steps)
    final = model.weight.detach().clone()

    model, opt = build(case, kind=kind)
    sched = schedules.create(case.name, opt, total_steps=case.steps, **case.options)
    first = train(model, opt, sched, k)
    path = tmp_path / "ckpt.pt"
    torch.save(
        {"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict()}, path
    )

    model, opt = build(case, seed=1, kind=kind)  # fresh objects, another init
    sched = schedules.create(case.name, opt, total_steps=case.steps, **case.options)
    ckpt = torch.load(path)  # weights_only: the state dicts hold plain data
    model.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["opt"])
    sched.load_state_dict(ckpt["sched"])
    second = train(model, opt, sched, case.steps - k)
    assert first + second == straight  # LRs and momenta, exactly
    assert torch.equal(model.weight, final)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("kind", ["torch", "lookahead"])
def test_any_optimizer(case: Case, kind: str) -> None:
    assert run(case, kind=kind) == run(case)


@pytest.mark.parametrize(("name", "options", "total", "optimizer", "message"), ERRORS)
def test_bad_arguments(name, options, total, optimizer, message) -> None:
    opt = descentlab.create(optimizer, [nn.Parameter(torch.zeros(2))], lr=LR)
    with pytest.raises(ValueError) as err:
        schedules.create(name, opt, total_steps=total, **options)
    assert message in str(err.value)


def test_not_an_optimizer() -> None:
    with pytest.raises(ValueError, match="Invalid optimizer: list"):
        schedules.create("cosine", [], total_steps=10)


def test_onecycle_raises_past_total_steps_like_torch() -> None:
    opt = descentlab.create("sgdm", [nn.Parameter(torch.zeros(2))], lr=LR)
    sched = schedules.create("onecycle", opt, total_steps=10)
    schedules.trace(sched, 10)
    with pytest.raises(ValueError, match="total steps is 10"):
        schedules.trace(sched, 11)


def test_untuned_reaches_full_lr_after_two_over_one_minus_beta2() -> None:
    opt = descentlab.create("adam", [nn.Parameter(torch.zeros(2))], lr=1.0)  # beta2 = 0.999
    lrs = [
        row[0]
        for row in schedules.trace(
            schedules.create("warmup-untuned", opt, total_steps=2500), 2500
        ).lrs
    ]
    assert lrs[0] == pytest.approx(5e-4)
    assert lrs[1998] < 1.0 and lrs[1999] == 1.0 == lrs[-1]


def test_sgdr_cycle_boundaries_are_whole_steps() -> None:
    opt = descentlab.create("sgdm", [nn.Parameter(torch.zeros(2))], lr=1.0)
    sched = schedules.SGDR(opt, 10, T_mult=1.5)
    starts = [e for e in range(300) if sched.cycle(e)[1] == 0]
    assert starts == [0, 10, 25, 48, 81, 132, 208]  # round(10 (1.5^i - 1) / 0.5)
    assert all(
        math.isclose(row[0], 1.0)
        for i, row in enumerate(schedules.trace(sched, 300).lrs)
        if i in starts
    )


def test_plot_a_name_draws_lr_and_moving_momentum() -> None:
    import matplotlib

    matplotlib.use("Agg")
    ax = schedules.plot("onecycle", 100, lr=0.5)
    (line,) = ax.get_lines()
    assert max(line.get_ydata()) == pytest.approx(0.5)
    twins = [a for a in ax.figure.axes if a is not ax]
    assert len(twins) == 1 and min(twins[0].get_lines()[0].get_ydata()) == pytest.approx(0.85)
    ax = schedules.plot("cosine", 100)
    assert len(ax.figure.axes) == 1  # momentum does not move: no second axis


def test_plot_a_live_scheduler_leaves_it_as_it_was() -> None:
    import matplotlib

    matplotlib.use("Agg")
    case = next(c for c in CASES if c.id == "cyclic-momentum-adam")
    model, opt = build(case)
    sched = schedules.create(case.name, opt, total_steps=case.steps, **case.options)
    first = train(model, opt, sched, 10)
    before = [dict(g) for g in opt.param_groups]
    ax = schedules.plot(sched, 30)
    assert len(ax.get_lines()) == 2  # one curve per parameter group
    assert [dict(g) for g in opt.param_groups] == before
    assert first + train(model, opt, sched, case.steps - 10) == run(case)


@settings(deadline=None, derandomize=True, max_examples=300)
@given(
    T_0=st.integers(1, 50),
    T_mult=st.floats(1.0, 4.0),
    e=st.integers(0, 10**6),
)
def test_sgdr_cycle_inverts_the_boundaries(T_0: int, T_mult: float, e: int) -> None:
    opt = descentlab.create("sgd", [nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = schedules.SGDR(opt, T_0, T_mult=T_mult)
    i, t, length = sched.cycle(e)
    start = e - t
    assert 0 <= t < length and length >= max(1, T_0 - 1)  # rounding moves a boundary <= 1/2
    assert sched.cycle(start) == (i, 0, length)
    if start > 0:  # the step before a cycle's start is the last of the previous cycle
        prev_i, prev_t, prev_len = sched.cycle(start - 1)
        assert prev_i == i - 1 and prev_t == prev_len - 1
