"""descentlab as a drop-in torch.optim: copies, checkpoints torch accepts, hooks, dtypes (issue 13).

Each test names the item of issue 13 that it covers.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch.optim.optimizer import (
    register_optimizer_step_post_hook,
    register_optimizer_step_pre_hook,
)

import descentlab
from descentlab.optim import SWATS, AdaBound, GradientNoise, HyperparameterError, Lookahead, NAdam
from descentlab.optim.kernels import cpu as _kernels
from descentlab.testing import COPIES

from ._harness import flat, make_groups, set_grads

BASES = descentlab.names()
STACKS = ["lookahead(adam)", "noisy(adam)", "lookahead(noisy(adam))", "noisy(lookahead(sgdm))"]
ALL = [*BASES, *STACKS]
# Hyperparameters that make every algorithm move (and SWATS switch) within a few steps.
HPARAMS = {"lr": 0.01}
SWITCH = {"switch_tol": 1e-1}


def _build(name, groups, **extra):
    hp = {**HPARAMS, **(SWITCH if "swats" in name else {}), **extra}
    return descentlab.create(name, [{"params": g} for g in groups], **hp)


def _run(opt, groups, start, steps):
    for t in range(start, start + steps):
        set_grads(groups, t)
        opt.step()


def _states(opt) -> list[dict]:
    """Every layer's per-parameter state, in parameter order (for comparisons)."""
    out = []
    while True:
        params = [p for g in opt.param_groups for p in g["params"]]
        out.append([dict(opt.state[p]) for p in params])
        if not hasattr(opt, "base_optimizer"):
            return out
        opt = opt.base_optimizer


def _assert_same(a, b, what):
    if torch.is_tensor(a):
        assert torch.is_tensor(b) and a.dtype == b.dtype and torch.equal(a, b), what
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), what
        for k in a:
            _assert_same(a[k], b[k], f"{what}[{k!r}]")
    elif isinstance(a, list):
        assert len(a) == len(b), what
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{what}[{i}]")
    else:
        assert a == b, f"{what}: {a!r} != {b!r}"


# ----------------------------------------------------------------- 1. copies
@pytest.mark.parametrize("how", sorted(COPIES))
@pytest.mark.parametrize("name", ALL)
def test_a_copy_continues_exactly_as_the_original(name, how):
    groups = make_groups(torch.float32)
    opt = _build(name, groups)
    _run(opt, groups, 1, 4)
    groups2, opt2 = COPIES[how]((groups, opt))
    assert all(p is not q for p, q in zip(flat(groups), flat(groups2)))
    layer, layer2 = opt, opt2
    while hasattr(layer, "base_optimizer"):  # wrappers: the groups stay shared, as built
        assert layer2.param_groups is layer2.base_optimizer.param_groups
        layer, layer2 = layer.base_optimizer, layer2.base_optimizer
    params2 = flat(groups2)
    assert all(a is b for a, b in zip(params2, (p for g in opt2.param_groups for p in g["params"])))
    _run(opt, groups, 5, 30)
    _run(opt2, groups2, 5, 30)
    _assert_same([p.detach() for p in flat(groups)], [p.detach() for p in params2], "params")
    _assert_same(_states(opt), _states(opt2), "state")
    assert opt2.skipped_steps == opt.skipped_steps


def test_a_copy_keeps_the_options_and_counters():
    p = torch.nn.Parameter(torch.ones(3))
    opt = GradientNoise(
        Lookahead(descentlab.optim.Adam([p], impl="forloop", nonfinite="skip"), k=3, alpha=0.3),
        eta=0.1,
        generator=5,
    )
    p.grad = torch.ones(3)
    opt.step()
    twin = copy.deepcopy(opt)
    inner = twin.base_optimizer
    assert (twin.eta, twin.noise_steps, inner.k, inner.alpha, inner.inner_steps) == (
        0.1,
        1,
        3,
        0.3,
        1,
    )
    assert (inner.base_optimizer.impl, inner.base_optimizer.nonfinite) == ("forloop", "skip")
    assert torch.equal(twin.generator.get_state(), opt.generator.get_state())
    assert "differentiable" not in twin.defaults  # torch's __setstate__ adds it; we do not


# ----------------------------------------------------------------- 2. a float64 default
@pytest.fixture
def float64_default():
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


@pytest.mark.parametrize("impl", ["auto", "forloop"])
@pytest.mark.parametrize("name", ALL)
def test_every_optimizer_steps_under_a_float64_default(name, impl, float64_default):
    groups = make_groups(torch.float64)
    opt = _build(name, groups, impl=impl)
    _run(opt, groups, 1, 3)
    assert all(torch.isfinite(p).all() for p in flat(groups))


def test_a_torch_checkpoint_saved_under_a_float64_default_loads(float64_default):
    p, q = (torch.nn.Parameter(torch.ones(3)) for _ in range(2))
    theirs = torch.optim.Adam([p], lr=0.1)
    p.grad = torch.ones(3)
    theirs.step()
    assert theirs.state[p]["step"].dtype == torch.float64
    ours = descentlab.optim.Adam([q], lr=0.1)
    ours.load_state_dict(theirs.state_dict())
    assert ours.state[q]["step"].dtype == torch.float32
    q.grad = torch.ones(3)
    ours.step()
    assert ours.state[q]["step"].item() == 2.0


# ----------------------------------------------------------------- 3. what torch.optim loads
def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))


def _train(model, opt, steps=3):
    for t in range(steps):
        opt.zero_grad()
        model(torch.full((4, 3), 0.1 * (t + 1))).pow(2).sum().backward()
        opt.step()


@pytest.mark.parametrize("saved_named", [True, False])
def test_named_and_unnamed_state_dicts_load_into_each_other(saved_named):
    a, b = _model(), _model()
    src = descentlab.optim.Adam(a.named_parameters() if saved_named else a.parameters(), lr=0.1)
    dst = descentlab.optim.Adam(b.parameters() if saved_named else b.named_parameters(), lr=0.1)
    _train(a, src)
    b.load_state_dict(a.state_dict())
    dst.load_state_dict(src.state_dict())
    _train(a, src, 1)
    _train(b, dst, 1)
    for x, y in zip(a.parameters(), b.parameters()):
        assert torch.equal(x, y)


def test_torch_sgd_with_momentum_loads_and_continues_like_torch():
    a, b = _model(), _model()
    theirs = torch.optim.SGD(a.parameters(), lr=0.1, momentum=0.9)
    _train(a, theirs)
    b.load_state_dict(a.state_dict())
    ours = descentlab.optim.SGD(b.parameters(), lr=0.1, momentum=0.9, impl="forloop")
    ours.load_state_dict(theirs.state_dict())
    _train(a, theirs, 2)
    _train(b, ours, 2)
    for x, y in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "nadam", "radam", "sgdw"])
@pytest.mark.parametrize("key", ["maximize", "decoupled_weight_decay"])
def test_a_group_saved_before_a_key_existed_gets_the_default(name, key):
    groups = make_groups(torch.float32)
    opt = _build(name, groups)
    _run(opt, groups, 1, 2)
    sd = opt.state_dict()
    want = [g[key] for g in opt.param_groups]
    for g in sd["param_groups"]:
        g.pop(key)
    fresh = _build(name, groups)
    fresh.load_state_dict(sd)
    assert [g[key] for g in fresh.param_groups] == want


def test_torch_adamw_without_the_decoupled_key_stays_decoupled():
    p, q = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    sd = torch.optim.AdamW([p]).state_dict()
    del sd["param_groups"][0]["decoupled_weight_decay"]
    ours = descentlab.optim.AdamW([q])
    ours.load_state_dict(sd)
    assert ours.param_groups[0]["decoupled_weight_decay"] is True


def test_a_step_saved_as_a_number_loads_as_a_tensor():
    a, b = _model(), _model()
    theirs = torch.optim.Adam(a.parameters(), lr=0.1)
    _train(a, theirs)
    sd = copy.deepcopy(theirs.state_dict())
    for entry in sd["state"].values():
        entry["step"] = int(entry["step"].item())  # what older torch releases saved
    b.load_state_dict(a.state_dict())
    ours = descentlab.optim.Adam(b.parameters(), lr=0.1)
    ours.load_state_dict(sd)
    assert all(s["step"].dtype == torch.float32 for s in ours.state.values())
    _train(a, theirs, 2)
    _train(b, ours, 2)
    for x, y in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-7)


def test_another_algorithms_torch_state_dict_is_still_refused():
    a = _model()
    theirs = torch.optim.Adam(a.parameters())
    _train(a, theirs)
    with pytest.raises(ValueError, match="lacks"):
        descentlab.optim.SGD(a.parameters(), momentum=0.9).load_state_dict(theirs.state_dict())


# ----------------------------------------------------------------- 4. state-dict hooks
@pytest.mark.parametrize("name", ["adam", *STACKS])
def test_a_load_pre_hook_runs_before_the_checks(name):
    groups = make_groups(torch.float32)
    opt = _build(name, groups)
    _run(opt, groups, 1, 2)

    def add(optimizer, sd):
        sd["added_by_a_hook"] = 1

    def strip(optimizer, sd):
        sd.pop("added_by_a_hook")

    opt.register_state_dict_post_hook(add)
    sd = opt.state_dict()
    assert sd["added_by_a_hook"] == 1
    fresh = _build(name, groups)
    fresh.register_load_state_dict_pre_hook(strip)
    fresh.load_state_dict(sd)


@pytest.mark.parametrize("name", STACKS)
def test_the_four_state_dict_hooks_run_on_wrappers(name):
    groups = make_groups(torch.float32)
    opt = _build(name, groups)
    calls = []
    opt.register_state_dict_pre_hook(lambda o: calls.append("pre"))
    opt.register_state_dict_post_hook(lambda o, sd: calls.append("post"))
    opt.register_load_state_dict_pre_hook(lambda o, sd: calls.append("load_pre"))
    opt.register_load_state_dict_post_hook(lambda o: calls.append("load_post"))
    opt.load_state_dict(opt.state_dict())
    assert calls == ["pre", "post", "load_pre", "load_post"]


def test_lookahead_slow_weights_survive_torch_distributed_checkpoint():
    from torch.distributed.checkpoint.state_dict import (
        get_optimizer_state_dict,
        set_optimizer_state_dict,
    )

    a, b = _model(), _model()
    src = Lookahead(descentlab.optim.Adam(a.parameters(), lr=0.1), k=2)
    _train(a, src, 3)  # one synchronisation and one step past it: slow != fast
    osd = get_optimizer_state_dict(a, src)
    assert set(osd) == {"state", "param_groups"}
    b.load_state_dict(a.state_dict())
    dst = Lookahead(descentlab.optim.Adam(b.parameters(), lr=0.1), k=2)
    set_optimizer_state_dict(b, dst, osd)
    for p, q in zip(a.parameters(), b.parameters()):
        assert not torch.equal(src.state[p]["slow"], p)
        assert torch.equal(src.state[p]["slow"], dst.state[q]["slow"])
        _assert_same(src.base_optimizer.state[p], dst.base_optimizer.state[q], "inner state")


def test_lookahead_loads_release_0_1_0_state_dicts():
    a, b = _model(), _model()
    src = Lookahead(descentlab.optim.Adam(a.parameters(), lr=0.1), k=2)
    _train(a, src, 3)
    params = list(a.parameters())
    old = src.base_optimizer.state_dict()  # 0.1.0: the slow weights under "lookahead"
    old["lookahead"] = {
        "state": {i: {"slow": src.state[p]["slow"]} for i, p in enumerate(params)},
        "k": 2,
        "alpha": 0.5,
        "inner_steps": 3,
    }
    b.load_state_dict(a.state_dict())
    dst = Lookahead(descentlab.optim.Adam(b.parameters(), lr=0.1), k=2)
    dst.load_state_dict(old)
    assert dst.inner_steps == 3
    for p, q in zip(params, b.parameters()):
        assert torch.equal(src.state[p]["slow"], dst.state[q]["slow"])
    _train(a, src, 3)
    _train(b, dst, 3)
    for p, q in zip(params, b.parameters()):
        assert torch.equal(p, q)


# ----------------------------------------------------------------- 5. step hooks
def test_step_hooks_fire_once_per_wrapper_step():
    p = torch.nn.Parameter(torch.ones(2))
    inner = descentlab.optim.Adam([p])
    opt = Lookahead(GradientNoise(inner), k=2)
    counts = {"global_pre": 0, "global_post": 0, "wrapper": 0, "inner": 0}

    def counter(key):
        def hook(*args):
            counts[key] += 1

        return hook

    handles = [
        register_optimizer_step_pre_hook(counter("global_pre")),
        register_optimizer_step_post_hook(counter("global_post")),
    ]
    try:
        opt.register_step_pre_hook(counter("wrapper"))
        inner.register_step_post_hook(counter("inner"))
        for _ in range(3):
            p.grad = torch.ones(2)
            opt.step()
    finally:
        for h in handles:
            h.remove()
    assert counts == {"global_pre": 3, "global_post": 3, "wrapper": 3, "inner": 3}


def test_an_inner_pre_hook_may_replace_the_arguments():
    p = torch.nn.Parameter(torch.ones(2))
    inner = descentlab.optim.SGD([p], lr=0.1)
    losses = []
    inner.register_step_pre_hook(lambda o, args, kwargs: ((o, lambda: losses.append(1)), {}))
    p.grad = torch.ones(2)
    Lookahead(inner).step()
    assert losses == [1]


# ----------------------------------------------------------------- 6. SWATS with a tensor lr
def test_swats_with_a_tensor_lr_equals_a_float_lr_under_a_schedule():
    runs = []
    for lr in (0.01, torch.tensor(0.01, dtype=torch.float64)):
        groups = make_groups(torch.float64)
        opt = SWATS([{"params": g} for g in groups], lr=lr, switch_tol=1e-1, impl="forloop")
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.5)
        for t in range(1, 41):
            set_grads(groups, t)
            opt.step()
            sched.step()
        assert any(s["switch_step"] for s in opt.state.values())
        lr_tensors = [g["lr"] for g in opt.param_groups if torch.is_tensor(g["lr"])]
        assert all(s["switch_lr"] is not t for s in opt.state.values() for t in lr_tensors)
        saved = opt.state_dict()["state"].values()
        assert all(isinstance(e["switch_lr"], float) for e in saved)  # numbers when saved
        runs.append((groups, opt))
    (ga, _), (gb, b) = runs
    for p, q in zip(flat(ga), flat(gb)):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12)
    b.load_state_dict(b.state_dict())  # its own state dict reloads
    set_grads(gb, 41)
    b.step()


# ----------------------------------------------------------------- 7. NAdam's load
def test_nadam_loads_state_that_is_not_a_dict():
    p = torch.nn.Parameter(torch.ones(2))
    opt = NAdam([p])
    p.grad = torch.ones(2)
    opt.step()
    sd = opt.state_dict()
    sd["state"]["not-a-parameter"] = 3  # torch keeps state of unknown keys as it is
    opt.load_state_dict(sd)
    assert opt.state["not-a-parameter"] == 3 and opt.state[p]["mu_product"].dtype == torch.float32


# ----------------------------------------------------------------- 8. noise on complex params
def test_gradient_noise_on_complex_params_has_the_variance_per_real_component():
    p = torch.nn.Parameter(torch.zeros(100_000, dtype=torch.complex128))
    opt = GradientNoise(torch.optim.SGD([p], lr=1.0), eta=0.3, gamma=0.55, generator=7)
    for t in range(1, 4):
        before = p.detach().clone()
        p.grad = torch.zeros_like(p)
        opt.step()
        noise = torch.view_as_real(before - p.detach())
        expected = 0.3 / (1 + t) ** 0.55
        for part in (noise[:, 0], noise[:, 1]):
            assert abs(part.var().item() / expected - 1) < 0.03, t


# ----------------------------------------------------------------- 9. tensor betas
BETA_NAMES = [  # (beta1, beta2) pairs; AdEMAMix's three: tests/optim/test_since_lecture.py
    n for n in BASES if len(descentlab.create(n, [torch.zeros(1)]).defaults.get("betas", ())) == 2
]


@pytest.mark.parametrize("impl", ["auto", "forloop"])
@pytest.mark.parametrize("name", BETA_NAMES)
def test_tensor_betas_give_the_float_betas_result(name, impl):
    runs = []
    for betas in ((0.8, 0.99), (torch.tensor(0.8, dtype=torch.float64), torch.tensor(0.99))):
        groups = make_groups(torch.float32)
        opt = _build(name, groups, betas=betas, impl=impl)
        _run(opt, groups, 1, 20)
        runs.append(groups)
    # float32 0.99 is not the double 0.99: the float run takes the tensor's value
    groups = make_groups(torch.float32)
    opt = _build(name, groups, betas=(0.8, float(torch.tensor(0.99))), impl=impl)
    _run(opt, groups, 1, 20)
    for p, q in zip(flat(groups), flat(runs[1])):
        assert torch.equal(p, q)


def test_bad_tensor_betas_are_named():
    p = torch.nn.Parameter(torch.ones(2))
    with pytest.raises(HyperparameterError, match=r"index 0.*valid range"):
        descentlab.optim.Adam([p], betas=(torch.tensor(1.0), torch.tensor(0.9)))
    with pytest.raises(HyperparameterError, match="shape"):
        descentlab.optim.Adam([p], betas=(torch.ones(2), torch.ones(1)))
    with pytest.raises(HyperparameterError, match="both floats or both Tensors"):
        descentlab.optim.Adam([p], betas=(torch.tensor(0.9), 0.99))  # torch refuses it too


# ----------------------------------------------------------------- 10. half precision
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", BASES)
def test_half_precision_readable_path_computes_in_float32(name, dtype):
    if _kernels.unavailable_reason() is not None:
        pytest.skip(f"compiled kernels unavailable here: {_kernels.unavailable_reason()}")
    runs = []
    for impl in ("forloop", "fused"):
        groups = make_groups(dtype)
        opt = _build(name, groups, impl=impl)
        _run(opt, groups, 1, 50)
        assert all(torch.isfinite(p).all() for p in flat(groups)), impl
        runs.append(groups)
    tol = {torch.float16: 2e-3, torch.bfloat16: 2e-2}[dtype]
    for p, q in zip(*map(flat, runs)):
        torch.testing.assert_close(p, q, rtol=tol, atol=tol)


def test_half_precision_adam_with_a_tiny_eps_stays_finite():
    """The case that went NaN: eps = 1e-8 underflows in float16 (sqrt(v) + eps = 0)."""
    p = torch.nn.Parameter(torch.zeros(4, dtype=torch.float16))
    opt = descentlab.optim.Adam([p], lr=1e-3, impl="forloop")
    for t in range(5):
        p.grad = torch.tensor([0.0, 1e-4, -1e-3, 0.5], dtype=torch.float16) * (t % 2)
        opt.step()
    assert torch.isfinite(p).all() and math.isfinite(float(opt.state[p]["exp_avg_sq"].sum()))


def test_adabound_reloads_its_state_dict_after_a_schedule_took_lr_to_zero():
    """Accelerate wraps an optimizer by ``load_state_dict(state_dict())``, after a warm-up
    schedule set lr to 0; only the initial lr (base_lr, the bounds divide by it) must be > 0."""
    p = torch.nn.Parameter(torch.ones(3))
    opt = AdaBound([p], lr=1e-3)
    torch.optim.lr_scheduler.LambdaLR(opt, lambda step: step / 10)  # lr 0 at step 0
    assert opt.param_groups[0]["lr"] == 0.0
    opt.load_state_dict(opt.state_dict())
    p.grad = torch.ones(3)
    opt.step()
    assert torch.equal(p.detach(), torch.ones(3))  # lr 0: bounds 0, no move
    with pytest.raises(ValueError, match=r"lr.*\(0, inf\)"):
        AdaBound([torch.nn.Parameter(torch.ones(1))], lr=0.0)
