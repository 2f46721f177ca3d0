"""The compiled CPU kernels as torch operators (descentlab/optim/kernels/ops.py).

Every operator passes ``torch.library.opcheck`` (schema, fake implementation, AOT dispatch),
equals the foreach function of the same name on tensors at different steps whose sizes straddle
the kernels' 64K-element chunks, follows torch's AMP semantics (``found_inf``: nothing changes;
``grad_scale``: the gradients are divided in place first), and compiles into one graph that a new
step or an ``lr`` changed in place does not recompile.
"""

from __future__ import annotations

import pytest
import torch

from descentlab.optim import RAdam, swats
from descentlab.optim.kernels import _scalars as S
from descentlab.optim.kernels import cpu, foreach, rules

SIZES = [(), (1,), (7,), (65537,), (3, 5)]  # 65537: one element past a chunk
STEPS = [1.0, 2.0, 6.0, 7.0, 40.0]  # RAdam: SGD steps, then rectified ones


@pytest.fixture(scope="module")
def ops():
    reason = cpu.unavailable_reason()
    if reason is not None:
        pytest.skip(f"compiled kernels unavailable here: {reason}")
    from descentlab.optim.kernels import ops

    return ops


def _lists(dtype, count, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [
        [torch.randn(s, generator=gen, dtype=torch.float64).to(dtype) for s in SIZES]
        for _ in range(count)
    ]


def _squares(lists):
    return [[x.abs() for x in xs] for xs in lists]


def _case(name, dtype, lr):
    """The tensor lists and keyword arguments of one call of kernel ``name``."""
    t = torch.tensor(STEPS, dtype=torch.float64)
    group = {"lr": lr, "betas": (0.8, 0.99), "final_lr": 0.05, "base_lr": 0.01, "gamma": 1e-2}
    group.update(momentum_decay=4e-3)
    p, g, m = _lists(dtype, 3)
    (v,) = _squares(_lists(dtype, 1, seed=1))
    common = dict(beta1=0.8, beta2=0.99, eps=1e-8, maximize=True)
    if name == "momentum_sgd":
        kw = dict(lr=torch.zeros_like(t) + lr, first=(t == 1).to(t.dtype), momentum=0.9)
        kw.update(dampening=0.1, nesterov=False, l2_weight_decay=0.0, decay=1 - lr * 0.1)
        return [p, g, m], {**kw, "maximize": False}
    if name == "swats_adam":
        kw = dict(coef=swats.adam_coefficient(group, t), l2_weight_decay=0.01)
        return [p, g, m, v], {**common, **kw}
    assert name == "lookahead_sync"
    return [p, m], dict(alpha=0.3)


NAMES = ["momentum_sgd", "swats_adam", "lookahead_sync"]


def _copy(lists):
    return [[x.clone() for x in xs] for xs in lists]


def _assert_lists_close(a, b, dtype):
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-14)
    for xs, ys in zip(a, b):
        for x, y in zip(xs, ys):
            torch.testing.assert_close(x, y, **tol)


@pytest.mark.parametrize("lr", ["float", "tensor"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("name", NAMES)
def test_operator_equals_the_foreach_function(ops, name, dtype, lr):
    lists, kw = _case(name, dtype, 0.01 if lr == "float" else torch.tensor(0.01))
    twin = _copy(lists)
    out = getattr(ops, name)(*lists, **kw)
    expected = getattr(foreach, name)(*twin, **kw)
    _assert_lists_close(lists, twin, dtype)
    if name == "swats_adam":
        torch.testing.assert_close(
            out, expected, rtol=1e-9 if dtype == torch.float64 else 1e-4, atol=1e-12
        )


@pytest.mark.parametrize("name", NAMES)
def test_opcheck(ops, name):
    lists, kw = _case(name, torch.float64, torch.tensor(0.01, dtype=torch.float64))
    for key in ("lr", "decay"):
        if key in kw and not torch.is_tensor(kw[key]):
            kw[key] = torch.tensor(kw[key], dtype=torch.float64)
    op = getattr(torch.ops.descentlab, name).default
    torch.library.opcheck(op, tuple(lists), kw)


@pytest.mark.parametrize("name", [n for n in NAMES if n != "lookahead_sync"])
def test_found_inf_changes_nothing_and_grad_scale_unscales_in_place(ops, name):
    lists, kw = _case(name, torch.float64, 0.01)
    before = _copy(lists)
    getattr(ops, name)(*lists, **kw, found_inf=torch.tensor(1.0))
    for xs, ys in zip(lists, before):
        assert all(torch.equal(x, y) for x, y in zip(xs, ys))
    scale = torch.tensor(1024.0)
    scaled = _copy(before)
    scaled[1] = [g * scale for g in scaled[1]]
    getattr(ops, name)(*scaled, **kw, grad_scale=scale, found_inf=torch.tensor(0.0))
    getattr(ops, name)(*before, **kw)
    _assert_lists_close(scaled, before, torch.float64)  # the gradients too: unscaled in place


def test_a_compiled_step_is_one_graph_that_steps_and_lr_do_not_recompile(ops):
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    p, g, m = _lists(torch.float32, 3)
    lists = [p, g, m, _squares(_lists(torch.float32, 1, seed=1))[0]]
    twin = _copy(lists)
    lr = torch.tensor(0.01)
    states = [{"step": torch.tensor(0.0)} for _ in SIZES]
    twin_states = [{"step": torch.tensor(0.0)} for _ in SIZES]

    rule = RAdam._rule  # a rule's operator (descentlab::rule_radam_<digest>)
    kernel = rules.compiled(rule)

    def step(lists, states):
        group = {**rule.defaults, "lr": lr, "betas": (0.8, 0.99)}
        vectors = rule.vectors(group, S.advance(states))
        flags = rule.flag_values(group)
        kernel.op(*lists, **vectors, **rule.hypers(group), **flags)

    compiled = torch.compile(step, backend="aot_eager", fullgraph=True)
    for i in range(8):  # steps 1-5 are SGD steps, 6-8 rectified
        lr.fill_(0.01 / (i + 1))
        compiled(lists, states)
        step(twin, twin_states)
    _assert_lists_close(lists, twin, torch.float32)
    assert counters["stats"]["unique_graphs"] == 1
    assert not counters["graph_break"]
