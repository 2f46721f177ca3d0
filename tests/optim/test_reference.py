"""Step by step against the independent references: complex parameters, and the cases' details.

The float64 and float32 lock-step of every case runs through ``descentlab.testing`` in
test_conformance.py.
"""

from __future__ import annotations

import pytest
import torch

import descentlab

from ._harness import clone_groups, compare_states, flat, make_groups, set_grads, with_hparams
from .cases import CASES


def _run_lockstep(case, dtype, steps, impl="forloop", rtol=1e-10, atol=1e-12):
    groups = make_groups(dtype)
    twin = clone_groups(groups)
    ours = descentlab.create(case.name, with_hparams(groups, case.groups), impl=impl)
    theirs = case.reference(with_hparams(twin, case.groups))
    for t in range(1, steps + 1):
        set_grads(groups, t)
        set_grads(twin, t)
        ours.step()
        theirs.step()
        compare_states(ours, theirs, flat(groups), flat(twin), rtol, atol, t)
    return ours


@pytest.mark.parametrize("case", [c for c in CASES if c.complex_ok], ids=str)
def test_matches_reference_complex(case):
    _run_lockstep(case, torch.complex128, 30)


def test_swats_case_switches():
    """The SWATS case must exercise both phases, or the comparison above proves little."""
    ours = _run_lockstep(next(c for c in CASES if c.name == "swats"), torch.float64, 150)
    switch_steps = [s["switch_step"] for s in ours.state.values()]
    assert 0 in switch_steps and any(k > 1 for k in switch_steps), switch_steps
    assert all(s["sgd_lr"] > 0 for s in ours.state.values() if s["switch_step"])


def test_adabound_bounds_close_in():
    group = {"lr": 1e-3, "base_lr": 1e-3, "betas": (0.9, 0.999), "final_lr": 0.1, "gamma": 1e-3}
    _, lo1, hi1 = descentlab.optim.AdaBound.bounds(group, 1)
    _, lo2, hi2 = descentlab.optim.AdaBound.bounds(group, 100000)
    assert lo1 < lo2 < 0.1 < hi2 < hi1
    assert abs(lo2 - 0.1) < 2e-3 and abs(hi2 - 0.1) < 2e-3


def test_adabound_group_added_later_is_updated():
    """The authors' package skips groups added after construction (base_lrs captured once)."""
    a, b = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(3))
    opt = descentlab.optim.AdaBound([a], lr=0.01)
    opt.add_param_group({"params": [b], "lr": 0.02})
    assert opt.param_groups[1]["base_lr"] == 0.02
    a.grad, b.grad = torch.ones(3), torch.ones(3)
    opt.step()
    assert (b < 1).all()


def test_radam_first_rectified_step_is_6():
    r = descentlab.optim.RAdam.rectification
    assert r(0.999, 5) is None and r(0.999, 6) is not None
