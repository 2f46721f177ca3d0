"""descentlab's Triton kernels (optim/kernels/triton), run on CPU tensors under the interpreter.

Every kernel steps in lock-step with the optimizer's readable path (``impl="forloop"``), fed the
scalars that path uses at each step count; the tables are checked for launches that do not grow
with the number of tensors; the operators are traced by torch.compile without graph breaks or
recompiles. Interpreted Triton costs about 10-30 ms per program, so the sizes are small and the
chunk and block are shrunk (``configure``) so that the same sizes straddle their boundaries.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

if os.environ.get("DESCENTLAB_TRITON_COMPILE") != "1":  # (set by the compile check's subprocess)
    os.environ["TRITON_INTERPRET"] = "1"  # read when the kernels are defined (imported) below

import pytest
import torch

triton = pytest.importorskip("triton")

import descentlab  # noqa: E402
from descentlab.optim import AdaBound, NAdam, RAdam, RMSprop  # noqa: E402
from descentlab.optim.kernels import rules  # noqa: E402
from descentlab.optim.kernels import triton as tk  # noqa: E402
from descentlab.optim.kernels.triton import _table  # noqa: E402

from ._harness import assert_close  # noqa: E402

SMALL = dict(chunk=64, block=32)  # the shrunk configuration of most tests
# (5, 13) = chunk + 1: two work items, the first of two blocks; 33 = block + 1: two blocks
SHAPES = [[(5, 13)], [(33,)]]
F64 = torch.float64


@pytest.fixture(autouse=True)
def small_tables():
    assert triton.knobs.runtime.interpret, "the kernels were imported before TRITON_INTERPRET=1"
    old, grad = _table.configure(**SMALL), torch.is_grad_enabled()
    yield
    _table.configure(chunk=old[0], block=old[1])
    torch.set_grad_enabled(grad)


def vec(values, device="cpu") -> torch.Tensor:
    return torch.tensor(values, dtype=F64, device=device)


# ------------------------------------------------------------------ drivers: the fast path
# Each feeds a kernel what the readable path uses at step t (per-tensor scalars from t).
def call(kernel, **kw):
    """Every driver's call of a kernel (swapped by the tests that record the call)."""
    return kernel(**kw)


def drive_rule(cls):
    """The driver of a rule optimizer (:mod:`descentlab.optim.elementwise`): its generated
    Triton kernels, fed the vectors and hyperparameters its ``_fused`` gives them."""
    rule = cls._rule

    def drive(group, ps, gs, states, ts, **amp):
        present = rule.present(group)
        lists = {n: [s[n] for s in states] if n in present else [] for n in rule.state}
        vectors = rule.step_vectors(group, vec(ts), states, amp.get("found_inf"))
        kw = {**lists, **vectors, **rule.hypers(group)}
        kw.update(rule.flag_values(group))
        call(_rule_kernel(rule), params=ps, grads=gs, **kw, **amp)

    return drive


def _rule_kernel(rule):
    """The rule's Triton kernels; under torch.compile, its operator (one for CPU and CUDA)."""
    kernel = rules.compiled(rule, "cuda")
    rules.compiled(rule, "cpu")  # the operator's CPU implementation, for aot_eager
    lists = rule.signature.lists[2:]

    def run(params, grads, **kw):
        if not torch.compiler.is_compiling():
            return kernel.run(params, grads, **kw)
        kernel.op(params, grads, *(kw.pop(n) for n in lists), **kw)

    return run


def _decay(group):
    lr, wd = group["lr"], group["weight_decay"]
    return (0.0, 1 - lr * wd) if group["decoupled_weight_decay"] else (wd, 1.0)


def drive_sgd(group, ps, gs, states, ts, **amp):
    l2, decay = _decay(group)
    call(
        tk.momentum_sgd,
        params=ps,
        grads=gs,
        momentum_buffer=[s["momentum_buffer"] for s in states] if group["momentum"] else [],
        lr=vec([group["lr"]] * len(ps)),
        first=torch.tensor([t == 1 for t in ts]),
        momentum=group["momentum"],
        dampening=group["dampening"],
        nesterov=group["nesterov"],
        l2_weight_decay=l2,
        decay=decay,
        maximize=group["maximize"],
        **amp,
    )


SWITCH_STATE = ("switch_step", "lam", "sgd_lr", "switch_lr")


def drive_swats(group, ps, gs, states, ts, **amp):
    lr, (b1, b2) = group["lr"], group["betas"]
    for s in states:  # the device path keeps the switch state as 0-d float64 tensors
        for key in SWITCH_STATE:
            if not torch.is_tensor(s[key]):
                s[key] = torch.tensor(float(s[key]), dtype=F64)
    call(
        tk.swats,
        params=ps,
        grads=gs,
        exp_avg=[s["exp_avg"] for s in states],
        exp_avg_sq=[s["exp_avg_sq"] for s in states],
        momentum_buffer=[s["momentum_buffer"] for s in states],
        **{key: [s[key] for s in states] for key in SWITCH_STATE},
        coef=vec([-lr * math.sqrt(1 - b2**t) / (1 - b1**t) for t in ts]),
        bc2=vec([1 - b2**t for t in ts]),
        steps=vec(ts),
        lr=lr,
        beta1=b1,
        beta2=b2,
        eps=group["eps"],
        l2_weight_decay=group["weight_decay"],
        switch_tol=group["switch_tol"],
        maximize=group["maximize"],
        **amp,
    )


# name -> (driver, hyperparameters of the two groups)
CASES = {
    "rmsprop": (
        drive_rule(RMSprop),
        [dict(lr=1e-2, momentum=0.9, centered=True), dict(weight_decay=0.1, maximize=True)],
    ),
    "nadam": (
        drive_rule(NAdam),
        [dict(weight_decay=0.1),
         dict(weight_decay=0.2, decoupled_weight_decay=True, maximize=True)],
    ),
    "radam": (
        drive_rule(RAdam),
        [dict(betas=(0.9, 0.9), weight_decay=0.1), dict(decoupled_weight_decay=True,
                                                        weight_decay=0.2, maximize=True)],
    ),
    "adabound": (
        drive_rule(AdaBound),
        [dict(amsbound=True, weight_decay=0.1), dict(final_lr=0.05, gamma=0.1, maximize=True)],
    ),
    "sgd": (
        drive_sgd,
        [dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1),
         dict(lr=0.05, momentum=0.5, dampening=0.3, weight_decay=0.2,
              decoupled_weight_decay=True, maximize=True)],
    ),
    "swats": (
        drive_swats,
        [dict(switch_tol=1e-4, weight_decay=0.01), dict(lr=3e-3, switch_tol=1e-5, maximize=True)],
    ),
}  # fmt: skip


def make_params(dtype, shapes=SHAPES, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [
        [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=F64).to(dtype)) for s in group]
        for group in shapes
    ]


def set_grads(ours, theirs, t):
    """The same gradient on both sides: a quadratic's at the reference's point, plus noise."""
    gen = torch.Generator().manual_seed(t)
    for p, q in zip(ours, theirs):
        noise = torch.randn(q.shape, generator=gen, dtype=F64)
        g = (0.3 * q.detach().double() + noise * math.cos(t)).to(q.dtype)
        q.grad, p.grad = g, g.clone()


def fast_step(opt, drive, **amp):
    """One step of ``opt``'s groups through the Triton kernel (the state lives in ``opt``)."""
    for group in opt.param_groups:
        ps = [p for p in group["params"] if p.grad is not None]
        states = []
        for p in ps:
            state = opt.state[p]
            if not state:
                state["step"] = torch.tensor(0.0)
                opt._init_state(group, p, state)
            state["step"] += 1
            states.append(state)
        drive(group, ps, [p.grad for p in ps], states, [int(s["step"]) for s in states], **amp)


def compare(ours, theirs, rtol, atol, t):
    for i, (p, q) in enumerate(zip(flat(ours), flat(theirs))):
        assert_close(p.detach(), q.detach(), rtol, atol, f"step {t}: param {i}")
        for key, value in theirs.state[q].items():
            if not torch.is_tensor(value):  # assert_close would make a float32 tensor of it
                value = torch.tensor(float(value), dtype=F64)
            assert_close(ours.state[p][key], value, rtol, atol, f"step {t}: param {i}: {key}")


def flat(opt):
    return [p for g in opt.param_groups for p in g["params"]]


def build(name, dtype, shapes=SHAPES, hparams=None):
    """The optimizer ``name`` (readable path) on fresh parameters of ``shapes``, one group each."""
    hparams = hparams or CASES[name][1]
    groups = [dict(params=g, **h) for g, h in zip(make_params(dtype, shapes), hparams)]
    return descentlab.create(name, groups, impl="forloop")


def lockstep(
    name, dtype, steps, rtol, atol, shapes=SHAPES, schedule=None, hparams=None, resync=False
):
    """Step the readable path and the kernel side by side; ``schedule(t)`` sets a tensor lr;
    ``resync``: start each step of the readable path from the kernel's parameters and state
    (so that the rounding of low-precision state compares one step at a time)."""
    ours, theirs = build(name, dtype, shapes, hparams), build(name, dtype, shapes, hparams)
    if schedule:
        for group in ours.param_groups:
            group["lr"] = torch.tensor(group["lr"], dtype=F64)
    for t in range(1, steps + 1):
        if schedule:
            for g_ours, g_theirs in zip(ours.param_groups, theirs.param_groups):
                g_theirs["lr"] = schedule(t) * CASES[name][1][0].get("lr", 1e-3)
                g_ours["lr"].fill_(g_theirs["lr"])  # in place, as a scheduler on a tensor lr
        set_grads(flat(ours), flat(theirs), t)
        if resync and t > 1:
            _resync(ours, theirs)
        theirs.step()
        fast_step(ours, CASES[name][0])
        compare(ours, theirs, rtol, atol, t)
    return theirs


def _resync(ours, theirs):
    with torch.no_grad():
        for p, q in zip(flat(ours), flat(theirs)):
            q.copy_(p)
            for key, value in ours.state[p].items():
                if torch.is_tensor(theirs.state[q][key]):
                    theirs.state[q][key].copy_(value)


TOLERANCES = {torch.float64: (1e-11, 1e-12), torch.float32: (2e-5, 2e-6)}
DEFAULT = (_table.CHUNK, _table.BLOCK)  # the GPU configuration


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("name", list(CASES))
def test_equals_readable_path(name, dtype):
    """50 steps in lock-step with the readable path, two groups of non-default settings."""
    theirs = lockstep(name, dtype, 50, *TOLERANCES[dtype])
    if name == "swats":  # both phases were exercised
        phases = {bool(theirs.state[p]["switch_step"]) for p in flat(theirs)}
        assert phases == {True, False}, phases


@pytest.mark.parametrize("name", list(CASES))
def test_bfloat16_parameters_with_float32_math(name):
    """bfloat16 parameters and state, float32 math: each step matches the readable path's
    (which rounds every intermediate to bfloat16) to bfloat16 precision, from the same start.
    SWATS stays in its Adam phase: its switch test on bfloat16 dot products is not comparable."""
    hparams = [{**h, "switch_tol": 0.0} for h in CASES[name][1]] if name == "swats" else None
    lockstep(name, torch.bfloat16, 10, 2e-2, 2e-2, hparams=hparams, resync=True)


@pytest.mark.parametrize("name", list(CASES))
def test_gpu_configuration_sizes(name):
    """The default chunk and block: sizes 1, 7, block - 1 and chunk + 1 (two steps: slow when
    interpreted)."""
    _table.configure(chunk=DEFAULT[0], block=DEFAULT[1])
    shapes = [[(), (DEFAULT[1] - 1,)], [(7,), (DEFAULT[0] + 1,)]]
    lockstep(name, torch.float32, 2, *TOLERANCES[torch.float32], shapes=shapes)


@pytest.mark.parametrize("name", ["rmsprop", "radam"])
def test_tensor_lr_changed_in_place(name):
    lockstep(name, torch.float64, 12, *TOLERANCES[torch.float64], schedule=lambda t: 0.9**t)


CALLERS = ("step", "mu_product")  # advanced by the caller (the driver), not by a kernel


def _snapshot(opt):
    return [
        {k: v.clone() if torch.is_tensor(v) else v for k, v in opt.state[p].items()
         if k not in CALLERS}
        for p in flat(opt)
    ] + [p.detach().clone() for p in flat(opt)]  # fmt: skip


def _assert_same(a, b):
    for x, y in zip(a, b):
        if isinstance(x, dict):
            _assert_same(list(x.values()), list(y.values()))
        else:
            assert torch.equal(torch.as_tensor(x), torch.as_tensor(y))


@pytest.mark.parametrize("name", list(CASES))
def test_grad_scale_and_found_inf(name):
    """Scaled gradients with ``grad_scale`` step exactly as unscaled ones; ``found_inf`` nonzero
    changes no parameter and no state (SWATS's switch state included)."""
    plain, scaled = build(name, torch.float32), build(name, torch.float32)
    for t in (1, 2):
        set_grads(flat(scaled), flat(plain), t)
        for p in flat(scaled):
            p.grad = p.grad * 1024  # a power of two: exact, as is the division back
        fast_step(plain, CASES[name][0])
        fast_step(scaled, CASES[name][0], grad_scale=torch.tensor(1024.0))
        _assert_same(_snapshot(scaled), _snapshot(plain))
    before = _snapshot(plain)
    fast_step(plain, CASES[name][0], found_inf=torch.tensor(1.0))
    _assert_same(_snapshot(plain), before)
    fast_step(plain, CASES[name][0], found_inf=torch.tensor(0.0))
    with pytest.raises(AssertionError):
        _assert_same(_snapshot(plain), before)


# ------------------------------------------------------------------ tables and launches
def _recorded(name, opt):
    """The kernel function and keywords that the driver of ``name`` calls for ``opt``."""
    global call
    calls, real = [], call
    call = lambda kernel, **kw: calls.append((kernel, kw))  # noqa: E731
    try:
        fast_step(opt, CASES[name][0])
    finally:
        call = real
    return calls[0]


def _calls(name, n):
    """(Triton launches, aten ops) of one call on ``n`` tensors once its tables are cached."""
    shapes = [[(i % 3 + 1 + 64 * (i % 2),) for i in range(n)]]  # tails, and whole blocks
    opt = build(name, torch.float32, shapes, CASES[name][1][:1])
    set_grads(flat(opt), flat(build(name, torch.float32, shapes, CASES[name][1][:1])), 1)
    fn, keywords = _recorded(name, opt)
    fn(**keywords)  # builds the tables
    launched, real = [], _table.launch
    _table.launch = lambda kernel, *args, **kwargs: launched.append(kernel)  # host side only
    try:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            fn(**keywords)
    finally:
        _table.launch = real
    return len(launched), [e.name for e in prof.events() if e.name.startswith("aten::")]


@pytest.mark.parametrize("name", list(CASES))
def test_launches_do_not_grow_with_tensors(name):
    launches, ops = zip(*(_calls(name, n) for n in (2, 12)))
    # whole blocks and tails (SWATS: and its switch test), whatever the number of tensors
    assert launches[0] == launches[1] == (3 if name == "swats" else 2)
    assert ops[0] == ops[1], ops  # no per-tensor torch op on the host side either
    # SWATS: its two buffers; a rule's kernels: the per-tensor scalars stacked into one matrix
    assert len(ops[0]) <= {"swats": 2, "rule": 3}.get(_kind(name), 0), ops[0]


def _kind(name):
    return "rule" if CASES[name][0].__qualname__.startswith("drive_rule") else name


def test_300_tensors_in_one_call():
    shapes = [[(i % 7 + 1,) for i in range(320)]]
    hparams = [dict(lr=0.05, momentum=0.9, weight_decay=0.1)]
    ours, theirs = (build("sgd", torch.float32, shapes, hparams) for _ in range(2))
    for t in (1,):
        set_grads(flat(ours), flat(theirs), t)
        theirs.step()
        before = _table.LAUNCHES["_momentum_sgd_kernel"]
        fast_step(ours, drive_sgd)
        assert _table.LAUNCHES["_momentum_sgd_kernel"] == before + 1
        compare(ours, theirs, *TOLERANCES[torch.float32], t)


def test_tables_are_cached_by_address_and_size():
    ps = [torch.zeros(5), torch.zeros(70)]
    table = _table.pointers([ps])
    assert _table.pointers([ps]) is table and _table.work(ps) is _table.work(ps)
    assert table.addresses.tolist() == [[ps[0].data_ptr()], [ps[1].data_ptr()]]
    assert table.aligned == all(p.data_ptr() % 16 == 0 for p in ps)
    assert not _table.pointers([[torch.zeros(8)[1:]]]).aligned  # 4 bytes past an allocation
    w = _table.work(ps)  # block 32, chunk 64: a tail of 5; a whole block of 64 and a tail of 6
    items = lambda x: list(zip(x.tensor.tolist(), x.start.tolist(), x.end.tolist(),  # noqa: E731
                               x.slot.tolist()))  # fmt: skip
    assert items(w.every) == [(0, 0, 5, 0), (1, 0, 64, 1), (1, 64, 70, 2)]
    assert items(w.full) == [(1, 0, 64, 1)] and items(w.tail) == [(0, 0, 5, 0), (1, 64, 70, 2)]
    assert (w.items, w.first.tolist(), w.offset.tolist()) == (3, [0, 1, 3], [0, 5])
    assert _table.pointers([[torch.zeros(5), ps[1]]]) is not table
    with pytest.raises(ValueError, match="contiguous"):
        _table.pointers([[torch.zeros(3, 4).t()]])
    with pytest.raises(ValueError, match="sized like"):
        _table.pointers([ps, [torch.zeros(5), torch.zeros(7)]])


# ------------------------------------------------------------------ SWATS, Lookahead, noise
def test_swats_adam_returns_the_dot_products():
    """The C++ kernel's contract: the Adam phase, and p_k.g_k, p_k.p_k per tensor (float64,
    summed in a fixed order: the same bits on every call)."""
    gen = torch.Generator().manual_seed(0)
    ps = [torch.randn(n, generator=gen, dtype=F64) for n in (1, 65, 200)]
    gs = [torch.randn(p.shape, generator=gen, dtype=F64) for p in ps]
    coef = vec([-1e-3 * math.sqrt(1 - 0.999) / (1 - 0.9)] * 3)
    runs = []
    for _ in range(2):
        params, m, v = [p.clone() for p in ps], [torch.zeros_like(p) for p in ps], None
        v = [torch.zeros_like(p) for p in ps]
        dots = tk.swats_adam(params=params, grads=gs, exp_avg=m, exp_avg_sq=v, coef=coef,
                             beta1=0.9, beta2=0.999, eps=1e-9, l2_weight_decay=0.0,
                             maximize=False)  # fmt: skip
        runs.append(dots)
        steps = [q - p for p, q in zip(ps, params)]
        want = [[torch.dot(s, g).item(), torch.dot(s, s).item()] for s, g in zip(steps, gs)]
        torch.testing.assert_close(dots, torch.tensor(want, dtype=F64), rtol=1e-12, atol=0)
    assert torch.equal(runs[0], runs[1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
def test_lookahead_sync_equals_the_foreach_path(dtype):
    gen = torch.Generator().manual_seed(0)
    slow = [torch.randn(n, generator=gen).to(dtype) for n in (1, 65, 33)]
    fast = [torch.randn(s.shape, generator=gen).to(dtype) for s in slow]
    want_slow = [s.clone() for s in slow]
    torch._foreach_lerp_(want_slow, fast, 0.5)  # Lookahead._synchronise without kernels
    for alpha in (0.5, torch.tensor(0.5)):
        s, f = [x.clone() for x in slow], [x.clone() for x in fast]
        tk.lookahead_sync(slow=s, fast=f, alpha=alpha)
        for a, b, c in zip(s, f, want_slow):  # bfloat16: torch's lerp may round once more
            assert torch.equal(a, b)
            torch.testing.assert_close(
                a, c, **({} if dtype is torch.bfloat16 else dict(rtol=0, atol=0))
            )
    s = [x.clone() for x in slow]
    tk.lookahead_sync(slow=s, fast=fast, alpha=0.5, found_inf=torch.tensor(1.0))
    assert all(map(torch.equal, s, slow))


def _flat_noise(grads, seed, std):
    """The device path's definition: one draw over all values, cut in order, times std, + g."""
    z = torch.randn(sum(g.numel() for g in grads), generator=torch.Generator().manual_seed(seed),
                    dtype=grads[0].dtype)  # fmt: skip
    return z, [(c.view(g.shape) * std).add_(g) for c, g in zip(z.clone().split(
        [g.numel() for g in grads]), grads)]  # fmt: skip


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_noise_add_equals_its_definition(dtype):
    gen = torch.Generator().manual_seed(1)
    grads = [torch.randn(s, generator=gen).to(dtype) for s in [(), (7,), (5, 13), (33,)]]
    z, want = _flat_noise(grads, 3, 0.25)
    tk.noise_add(noise=z, grads=grads, std=0.25)
    for got, w, g in zip(tk.noise_views(z, grads), want, grads):
        assert got.shape == g.shape and torch.equal(got, w)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
def test_noise_matches_gradient_noise_on_sizes_of_16(dtype):
    """On CPU one flat draw is the per-tensor stream when every size is a multiple of 16: the
    device path then adds exactly the noise of GradientNoise's readable path."""
    params = [torch.nn.Parameter(torch.randn(s).to(dtype)) for s in [(16,), (4, 12), (32,)]]
    grads = [torch.randn(p.shape).to(dtype) for p in params]
    noisy = descentlab.create("noisy(sgd)", params, lr=1.0, eta=0.3, impl="forloop", generator=7)
    seen = []
    noisy.base_optimizer.step = lambda: seen.extend(p.grad.clone() for p in params)
    for p, g in zip(params, grads):
        p.grad = g
    noisy.step()
    z, _ = _flat_noise(grads, 7, 0.0)
    tk.noise_add(noise=z, grads=grads, std=noisy.std(1))
    assert all(map(torch.equal, tk.noise_views(z, grads), seen))


def test_noise_is_gaussian_with_the_annealed_std():
    grads = [torch.full((4096,), 2.0), torch.full((1000,), -1.0)]
    z, _ = _flat_noise(grads, 0, 0.0)
    tk.noise_add(noise=z, grads=grads, std=0.5)
    for noisy, g in zip(tk.noise_views(z, grads), grads):
        e = (noisy - g) / 0.5
        assert abs(e.mean().item()) < 0.1 and abs(e.std().item() - 1) < 0.06


# ------------------------------------------------------------------ torch.compile
def _compiled_case(name):
    """A step closure on fresh tensors with a 0-d tensor lr, and a clone of its tensors."""
    opt = build(name, torch.float32, hparams=CASES[name][1][:1], shapes=SHAPES[:1])
    set_grads(flat(opt), flat(build(name, torch.float32, SHAPES[:1], CASES[name][1][:1])), 1)
    fn, keywords = _recorded(name, opt)
    lr = keywords["lr"]  # a rule kernel's lr: one value per tensor
    keywords["lr"] = torch.full_like(lr, 1e-3) if torch.is_tensor(lr) else torch.tensor(1e-3)
    return fn, keywords


def _clone(x):
    if torch.is_tensor(x):
        return x.clone()
    return [_clone(y) for y in x] if isinstance(x, list) else x


@pytest.mark.parametrize("name", ["rmsprop", "radam", "swats"])
def test_compiles_into_one_graph_without_recompiles(name):
    from torch._dynamo.utils import counters

    fn, keywords = _compiled_case(name)
    eager = {k: _clone(v) for k, v in keywords.items()}
    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(lambda kw: fn(**kw), fullgraph=True, backend="aot_eager")
    torch.set_grad_enabled(False)  # as in an optimizer's step (the fixture restores it)
    for _ in range(3):
        out = compiled(keywords)
        want = fn(**eager)
        keywords["lr"].mul_(0.5)  # a scheduler on a tensor lr
        eager["lr"].mul_(0.5)
        if name == "swats":
            assert torch.equal(out, want)
    for k, v in keywords.items():
        for a, b in zip(*(x if isinstance(x, list) else [x] for x in (v, eager[k]))):
            if torch.is_tensor(a):
                assert torch.equal(a, b), k
    assert counters["stats"]["unique_graphs"] == 1
    assert not counters["graph_break"]


# ------------------------------------------------------------------ the GPU script
@pytest.mark.slow
def test_gpu_benchmark_runs_end_to_end_on_cpu():
    """benchmarks/gpu.py at toy sizes under the interpreter: every parity row (all optimizers)
    ok, and every table for a few algorithms (``--device cpu --toy`` races them all: ~35 s)."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    run = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "gpu.py"), "--device", "cpu", "--toy",
         "--rounds", "2", "--only", "rmsprop,adam,swats,lookahead(adam)"],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    assert "| NO |" not in out, out
    for heading in ("## Parity", "## (a)", "## (b)", "CUDA graph replay", "# done"):
        assert heading in out
    direct = len(_gpu_script().DIRECT)  # every optimizer with Triton kernels of descentlab's
    triton_rows = [line for line in out.splitlines() if line.startswith("| triton |")]
    assert len(triton_rows) == direct and all(r.endswith("| yes |") for r in triton_rows), out
    replays = [line for line in out.splitlines() if line.startswith("| cuda graph |")]
    every = len(descentlab.optim.REGISTRY) + 2  # and lookahead(adam), noisy(adam)
    assert len(replays) == every and all(r.endswith("| yes |") for r in replays), out


def _gpu_script():
    """benchmarks/gpu.py as a module (its names; nothing runs on import)."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu.py"
    sys.path.insert(0, str(path.parent))
    try:
        spec = importlib.util.spec_from_file_location("descentlab_gpu_script", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module


def _compile_all() -> None:
    """Compile every kernel variant to PTX and cubin for an H200 (sm_90) without a GPU."""
    import importlib

    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    kt = "descentlab.optim.kernels.triton."
    types = {torch.float32: "fp32", torch.float64: "fp64", torch.bfloat16: "bf16"}
    f64s = lambda *names: dict.fromkeys(names, "*fp64")  # noqa: E731
    cases = [  # module, kernel, extra arguments, flags, dtypes
        ("momentum_sgd", {"LR": "*fp64", "FIRST": "*i1"},
         dict(L=3, L2=True, MOMENTUM=True, NESTEROV=True, MAXIMIZE=False), [torch.float32]),
        ("swats", {**f64s("COEF", "STEPS", "PARTIAL")}, dict(L=9, L2=True, PHASED=True,
                                                             MAXIMIZE=False), types),
        ("lookahead", {}, dict(L=2), [torch.bfloat16]),
        ("noise", {"NOISE": "*fp32", "OFFSET": "*i64"}, dict(L=1), [torch.float32]),
    ]  # fmt: skip
    compiled = 0
    for module, extra, flags, dtypes in cases:
        fn = getattr(importlib.import_module(kt + module), f"_{module}_kernel")
        for dtype, full in [(d, True) for d in dtypes] + [(next(iter(dtypes)), False)]:
            cx = dict(flags, HAS_SCALE=True, HAS_INF=True, DT=_table.element_type(dtype),
                      CT=_table.compute_type(dtype), FULL=full, BLOCK=DEFAULT[1])  # fmt: skip
            sig = {"H": "*fp64", "GRAD_SCALE": "*fp32", "FOUND_INF": "*fp32", **extra}
            sig = {n: "constexpr" if n in cx else sig.get(n, "*i64") for n in fn.arg_names}
            if module == "noise":
                sig["NOISE"] = f"*{types[dtype]}"
            consts = {(fn.arg_names.index(n),): v for n, v in cx.items()}
            kernel = triton.compile(ASTSource(fn, sig, constexprs=consts),
                                    target=GPUTarget("cuda", 90, 32))  # fmt: skip
            ptx = kernel.asm["ptx"]
            assert "div.approx" not in ptx and kernel.asm["cubin"]
            # whole blocks: 128-bit loads and stores of the table's tensors (noise stores into
            # its flat buffer, whose tensors' offsets have no alignment)
            vector = "ld.global.v" in ptx and ("st.global.v" in ptx or module == "noise")
            assert vector == full, (module, dtype, full)
            compiled += 1
    fn = importlib.import_module(kt + "swats")._swats_switch_kernel
    for phased in (True, False):
        cx = dict(PHASED=phased, L=9, HAS_INF=True, RBLOCK=256)
        sig = {n: "constexpr" if n in cx else "*fp64" for n in fn.arg_names}
        sig.update(TABLE="*i64", FIRST="*i64", FOUND_INF="*fp32")
        consts = {(fn.arg_names.index(n),): v for n, v in cx.items()}
        triton.compile(ASTSource(fn, sig, constexprs=consts), target=GPUTarget("cuda", 90, 32))
        compiled += 1
    print(f"compiled {compiled} kernels")


@pytest.mark.slow
def test_kernels_compile_for_the_gpu_without_one():
    """Triton's real compiler (not the interpreter) takes every kernel: the first GPU run
    cannot fail on a construct the interpreter accepts and the compiler does not."""
    if "nvidia" not in triton.backends.backends:
        pytest.skip("Triton's NVIDIA backend is not installed")
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "DESCENTLAB_TRITON_COMPILE": "1",
           "TRITON_INTERPRET": "0"}  # fmt: skip
    code = "import tests.optim.test_triton as t; t._compile_all()"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=root, timeout=600, check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert "compiled 12 kernels" in run.stdout
