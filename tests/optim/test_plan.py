"""The cached step plan (descentlab/optim/_plan.py) follows every change that matters.

Each test runs the fast path (``impl="auto"``, its plan cached) against the readable path
(``impl="forloop"``) planned afresh before every step, changes something between two steps in
both (a gradient appears or disappears, a group is added, a parameter's dtype or layout changes,
a state dict is loaded), and checks that parameters and every state tensor still agree: a stale
plan would skip or update the wrong tensors, or feed the kernels tensors they cannot take.
"""

from __future__ import annotations

import copy
import weakref

import pytest
import torch

import descentlab

from ._harness import assert_close, clone_groups, flat, make_groups, set_grads, with_hparams
from .cases import BY_NAME

NAMES = descentlab.names()
STEPS = 12
CHANGE = 5  # the change happens after this many steps
# the two paths differ by rounding only (float32 after a dtype change: a few ulps per step)
TOL = {torch.float64: (1e-11, 1e-13), torch.float32: (1e-5, 1e-6)}


def _pair(name, groups, twin, *, later=False):
    """The readable optimizer, planned afresh every step, and the fast one; with ``later`` only
    group 0 at first."""
    hparams = BY_NAME[name].groups
    if later:
        groups, twin, hparams = groups[:1], twin[:1], hparams[:1]
    slow = descentlab.create(name, with_hparams(groups, hparams), impl="forloop")
    slow.register_step_pre_hook(lambda opt, args, kwargs: opt._plans.clear())
    fast = descentlab.create(name, with_hparams(twin, hparams), impl="auto")
    return slow, fast


def _agree(slow, fast, groups, twin, t):
    for i, (p, q) in enumerate(zip(flat(groups), flat(twin))):
        tol = TOL[p.dtype]
        assert_close(p.detach(), q.detach(), *tol, f"step {t}: param {i}")
        a, b = slow.state.get(p, {}), fast.state.get(q, {})
        assert a.keys() == b.keys(), f"step {t}: param {i} state keys"
        for key in a:
            assert_close(a[key], b[key], *tol, f"step {t}: param {i} state {key}")


def _run(name, change, *, before=None, later=False):
    """Step both paths; ``before(t, groups)`` edits the gradients, ``change(opt, groups)`` acts
    once after CHANGE steps."""
    groups = make_groups(torch.float64)
    twin = clone_groups(groups)
    slow, fast = _pair(name, groups, twin, later=later)
    for t in range(1, STEPS + 1):
        if t == CHANGE + 1:
            for opt, gs in ((slow, groups), (fast, twin)):
                change(opt, gs)
        for opt, gs in ((slow, groups), (fast, twin)):
            set_grads(gs, t)
            if before is not None:
                before(t, gs)
            opt.step()
        _agree(slow, fast, groups, twin, t)


@pytest.mark.parametrize("name", NAMES)
def test_a_gradient_that_appears_then_disappears(name):
    def before(t, groups):
        if t <= CHANGE or t > CHANGE + 3:
            groups[0][1].grad = None  # the matrix: no gradient, then one for three steps

    _run(name, lambda opt, gs: None, before=before)


@pytest.mark.parametrize("name", NAMES)
def test_a_group_added_after_some_steps(name):
    def change(opt, groups):
        opt.add_param_group({"params": groups[1], **BY_NAME[name].groups[1]})

    groups = make_groups(torch.float64)
    twin = clone_groups(groups)
    slow, fast = _pair(name, groups, twin, later=True)
    for t in range(1, STEPS + 1):
        if t == CHANGE + 1:
            change(slow, groups)
            change(fast, twin)
        for opt, gs in ((slow, groups), (fast, twin)):
            set_grads(gs, t)
            for p in gs[1]:
                if t <= CHANGE:
                    p.grad = None  # not in the optimizer yet
            opt.step()
        _agree(slow, fast, groups, twin, t)


@pytest.mark.parametrize("name", NAMES)
def test_a_parameter_whose_dtype_changes_through_data(name):
    """``p.data = p.data.float()`` (what ``module.float()`` does), its state cast alike."""

    def change(opt, groups):
        for p in (groups[0][1], groups[1][1]):
            p.data = p.data.to(torch.float32)
            for key, value in opt.state[p].items():
                if torch.is_tensor(value) and value.dim():
                    opt.state[p][key] = value.to(torch.float32)

    _run(name, change)


@pytest.mark.parametrize("name", NAMES)
def test_parameters_whose_layout_changes_through_data(name):
    """The contiguous matrix becomes a transposed view and the view becomes contiguous."""

    def change(opt, groups):
        matrix, view = groups[0][1], groups[1][0]
        matrix.data = matrix.data.t().contiguous().t()
        view.data = view.data.contiguous()
        assert not matrix.is_contiguous() and view.is_contiguous()

    def before(t, groups):
        for p in flat(groups):  # only the parameters' layout tells the plan
            p.grad = p.grad.contiguous()

    _run(name, change, before=before)


@pytest.mark.parametrize("name", NAMES)
def test_a_non_contiguous_gradient_on_a_contiguous_parameter(name):
    def before(t, groups):
        if t > CHANGE:
            g = groups[0][1].grad
            groups[0][1].grad = torch.empty(g.shape[::-1], dtype=g.dtype).t().copy_(g)
            assert not groups[0][1].grad.is_contiguous()

    _run(name, lambda opt, gs: None, before=before)


@pytest.mark.parametrize("name", NAMES)
def test_a_state_dict_loaded_between_steps(name):
    """Both rewind their state to the one saved after step 2 (new state tensors)."""
    saved = {}
    groups = make_groups(torch.float64)
    twin = clone_groups(groups)
    slow, fast = _pair(name, groups, twin)
    for t in range(1, STEPS + 1):
        if t == CHANGE + 1:
            slow.load_state_dict(saved["slow"])
            fast.load_state_dict(saved["fast"])
        for opt, gs in ((slow, groups), (fast, twin)):
            set_grads(gs, t)
            opt.step()
        if t == 2:
            saved = {
                "slow": copy.deepcopy(slow.state_dict()),
                "fast": copy.deepcopy(fast.state_dict()),
            }
        _agree(slow, fast, groups, twin, t)


@pytest.mark.parametrize("name", ["sgd", "adam", "rmsprop"])
def test_a_sparse_gradient_after_dense_ones_is_refused(name):
    groups = make_groups(torch.float64)
    opt = descentlab.create(name, with_hparams(groups, BY_NAME[name].groups))
    for t in (1, 2):
        set_grads(groups, t)
        opt.step()
    before = [p.detach().clone() for p in flat(groups)]
    set_grads(groups, 3)
    groups[1][1].grad = groups[1][1].grad.to_sparse()
    with pytest.raises(RuntimeError, match="sparse gradients"):
        opt.step()
    for p, b in zip(flat(groups), before):
        assert torch.equal(p.detach(), b)  # refused before anything was updated


@pytest.mark.parametrize("set_to_none", [True, False])
def test_the_plan_is_kept_while_nothing_changes(set_to_none):
    """Planned once, reused with new gradient tensors each step or with the same ones."""
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    opt = descentlab.create("adam", model.parameters(), lr=0.01)
    x = torch.randn(8, 4)
    plans = []
    for _ in range(4):
        opt.zero_grad(set_to_none=set_to_none)
        model(x).square().mean().backward()
        opt.step()
        plans.append(opt._plans[id(opt.param_groups[0])])
    assert all(p is plans[0] for p in plans)
    assert plans[0].buckets and not plans[0].slow  # every tensor on the fast path


def test_a_plan_holds_no_gradient():
    """zero_grad(set_to_none=True) frees the gradients, as with torch.optim."""
    p = torch.nn.Parameter(torch.randn(3))
    opt = descentlab.create("adam", [p], lr=0.01)
    p.grad = torch.randn(3)
    opt.step()
    grad = weakref.ref(p.grad)
    opt.zero_grad(set_to_none=True)
    assert grad() is None


def _fits_cases():
    """(what changed, params, grads) for one float32 CPU bucket of two tensors."""
    p, q = torch.randn(4, 3), torch.randn(5)
    g, h = torch.randn(4, 3), torch.randn(5)
    return [
        ("nothing", [p, q], [g, h]),
        ("a float64 parameter", [p, q.double()], [g, h]),
        ("a parameter on meta", [p, q.to("meta")], [g, h]),
        ("a transposed parameter", [p.t(), q], [g, h]),
        ("a transposed gradient", [p, q], [g.t(), h]),
        ("a sparse gradient", [p, q], [g, h.to_sparse()]),
    ]


@pytest.mark.parametrize("case", range(len(_fits_cases())))
def test_the_compiled_plan_check_answers_as_the_python_one(case):
    """``Bucket.fits`` in one C++ call (where the CPU kernels are built) and in Python."""
    from descentlab.optim._plan import Bucket
    from descentlab.optim.kernels import cpu

    what, params, grads = _fits_cases()[case]
    native = cpu.ready() or pytest.skip("the CPU kernels are not built here")
    cpu_bucket = Bucket(None, params, [{}, {}], torch.device("cpu"), torch.float32, None)
    expected = what == "nothing"
    assert cpu_bucket.fits(grads) is expected, what
    cpu_bucket.native = native
    assert cpu_bucket.fits(grads) is expected, what
