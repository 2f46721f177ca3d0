"""Optimizers written as one elementwise rule (descentlab.optim.elementwise), with Lion
(examples/custom_optimizer.py) as the worked example: every derived path against the paper's
algorithm written here, against each other, and the rules the generator refuses."""

from __future__ import annotations

import importlib.util
import itertools
import math
from pathlib import Path

import pytest
import torch

from descentlab.optim._rules.rule import BUILTIN
from descentlab.optim.elementwise import Elementwise, RuleError, lerp, sqrt, where

from ._harness import assert_close, clone_groups, flat, make_groups, set_grads, with_hparams

_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom_optimizer.py"
_spec = importlib.util.spec_from_file_location("custom_optimizer", _EXAMPLE)
example = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(example)
Lion = example.Lion

GROUPS = [
    {"lr": 0.01, "betas": (0.9, 0.99), "weight_decay": 0.1},
    {"lr": 0.003, "betas": (0.8, 0.9)},
]
STEPS = 120
IMPLS = ["forloop", "foreach", "fused"]


def lion_paper(p, g, m, *, lr, betas, weight_decay=0.0):
    """Chen et al. 2023, Algorithm 2, written from the paper (not from our rule)."""
    b1, b2 = betas
    c = b1 * m + (1 - b1) * g
    p_new = p - lr * (torch.sign(c) + weight_decay * p)
    return p_new, b2 * m + (1 - b2) * g


@pytest.mark.parametrize("impl", IMPLS)
def test_lion_follows_the_papers_algorithm(impl):
    groups = make_groups(torch.float64)
    real = [[p for p in g if not p.dtype.is_complex] for g in groups]
    opt = Lion(with_hparams(real, GROUPS), impl=impl)
    ref = [p.detach().clone() for p in flat(real)]
    moments = [torch.zeros_like(p) for p in ref]
    hparams = [{**Lion.hyperparameters, **h} for h, g in zip(GROUPS, real) for _ in g]
    for t in range(1, STEPS + 1):
        set_grads(real, t)
        grads = [p.grad.clone() for p in flat(real)]
        opt.step()
        for i, h in enumerate(hparams):
            h = {k: h[k] for k in ("lr", "betas", "weight_decay")}
            ref[i], moments[i] = lion_paper(ref[i], grads[i], moments[i], **h)
        for i, p in enumerate(flat(real)):
            assert_close(p.detach(), ref[i], 1e-12, 1e-14, f"step {t} param {i}")
            assert_close(opt.state[p]["exp_avg"], moments[i], 1e-12, 1e-14, f"step {t} m {i}")
            assert int(opt.state[p]["step"]) == t


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("impl", ["foreach", "fused"])
def test_every_fast_path_equals_the_readable_one(impl, dtype):
    """On parameters and every state tensor, with maximize in one group."""
    groups = [[p.to(dtype) for p in g if not p.dtype.is_complex] for g in make_groups()]
    groups = [[torch.nn.Parameter(p.detach()) for p in g] for g in groups]
    twin = clone_groups(groups)
    hparams = [{**GROUPS[0], "maximize": True}, GROUPS[1]]
    slow = Lion(with_hparams(groups, hparams), impl="forloop")
    fast = Lion(with_hparams(twin, hparams), impl=impl)
    tol = {torch.float64: (1e-13, 1e-15), torch.float32: (1e-6, 1e-7)}.get(dtype, (1e-2, 1e-3))
    for t in range(1, 31):
        set_grads(groups, t)
        set_grads(twin, t)
        slow.step()
        fast.step()
        for i, (p, q) in enumerate(zip(flat(groups), flat(twin))):
            assert_close(p.detach(), q.detach(), *tol, f"{impl} step {t} param {i}")
            m, n = slow.state[p]["exp_avg"], fast.state[q]["exp_avg"]
            assert_close(m, n, *tol, f"{impl} step {t} exp_avg {i}")


def test_a_state_dict_resumes_through_a_file_bit_for_bit(tmp_path):
    groups = [[p for p in g if not p.dtype.is_complex] for g in make_groups(torch.float32)]
    twin = clone_groups(groups)
    a = Lion(with_hparams(groups, GROUPS))
    for t in range(1, 6):
        set_grads(groups, t)
        a.step()
    torch.save(a.state_dict(), tmp_path / "opt.pt")
    for p, q in zip(flat(groups), flat(twin)):
        q.data.copy_(p.detach())
    b = Lion(with_hparams(twin, GROUPS))
    b.load_state_dict(torch.load(tmp_path / "opt.pt"))
    for t in range(6, 11):
        set_grads(groups, t)
        set_grads(twin, t)
        a.step()
        b.step()
    for p, q in zip(flat(groups), flat(twin)):
        assert torch.equal(p.detach(), q.detach())
        assert torch.equal(a.state[p]["exp_avg"], b.state[q]["exp_avg"])


def test_gradscaler_skips_an_inf_step_and_unscales_the_gradients():
    p = torch.nn.Parameter(torch.ones(5))
    opt = Lion([p], lr=0.1)
    opt.grad_scale = torch.tensor(4.0)
    opt.found_inf = torch.tensor(1.0)
    p.grad = torch.full((5,), 8.0)
    opt.step()
    assert torch.equal(p.detach(), torch.ones(5)) and not opt.state[p]  # no lazy state either
    opt.found_inf = torch.tensor(0.0)
    opt.step()
    assert torch.equal(p.grad, torch.full((5,), 2.0))  # unscaled in place, as torch's fused
    assert torch.allclose(p.detach(), torch.full((5,), 0.9))


def test_hyperparameters_are_checked_with_the_valid_range():
    p = [torch.nn.Parameter(torch.ones(2))]
    with pytest.raises(ValueError, match=r"lr.*-1"):
        Lion(p, lr=-1.0)
    with pytest.raises(ValueError, match=r"beta"):
        Lion(p, betas=(1.5, 0.9))
    with pytest.raises(TypeError, match="momentum"):
        Lion(p, momentum=0.9)
    with pytest.raises(TypeError, match="by position"):
        Lion(p, 1e-3, (0.9, 0.99), 0.0, False, 7)


def test_the_compiled_kernel_is_a_torch_library_operator():
    from descentlab.optim.kernels import rules

    kernel = rules.compiled(Lion._rule)
    schema = str(kernel.op._schema)
    assert "Tensor(a!)[] params" in schema and "Tensor(c!)[] exp_avg" in schema
    args = ([torch.randn(3, 2), torch.randn(4)], [torch.randn(3, 2), torch.randn(4)])
    kwargs = {
        "lr": torch.full((2,), 0.1, dtype=torch.float64),
        "betas_0": 0.9,
        "betas_1": 0.99,
        "weight_decay": 0.0,
        "maximize": False,
    }
    state = [torch.zeros(3, 2), torch.zeros(4)]
    torch.library.opcheck(kernel.op, (*args, state), kwargs)


@pytest.mark.parametrize("flags", [False, True], ids=["flags-off", "flags-on"])
@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_every_built_in_rule_is_a_checked_operator(name, flags):
    """descentlab's own rules: one operator each (built into the hand-written kernels'
    extension), its schema from the rule; torch's opcheck with every flag off or on."""
    from descentlab.optim.kernels import rules

    rule = BUILTIN[name]
    kernel = rules.compiled(rule)
    assert str(kernel.op._schema).startswith(f"descentlab::{rule.stem}(")
    gen = torch.Generator().manual_seed(0)
    shapes = [(3, 2), (5,), ()]
    lists = [
        [0.3 + 0.01 * torch.rand(s, generator=gen, dtype=torch.float64) for s in shapes]
        for _ in rule.signature.lists
    ]
    group = dict(rule.defaults)
    t = torch.full((len(shapes),), 3.0, dtype=torch.float64)
    kwargs = {**rule.vectors(group, t), **rule.hypers(group)}
    on = max(rule.programs, key=sum)  # the most flags a group can have on at once
    kwargs.update(dict(zip(rule.flags, on if flags else [False] * len(on))))
    torch.library.opcheck(kernel.op, tuple(lists), kwargs)


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_each_setting_a_group_can_have_has_a_loop(name):
    """The C++ has a case for every setting of the flags that has a program, and a program
    for every setting but those where L2 and decoupled weight decay contradict
    ``decoupled_weight_decay``; settings with the same loop share it (no two loops alike)."""
    import re

    from descentlab.optim.elementwise import DECAY_FLAGS

    rule = BUILTIN[name]
    code = rule.unit.code
    cases = {int(c) for c in re.findall(r"case (\d+):", code)}
    assert cases == {sum(1 << i for i, on in enumerate(k) if on) for k in rule.programs}
    decay_flags = all(rule.derived.get(k) is f for k, f in DECAY_FLAGS.items())
    for combo in itertools.product((False, True), repeat=len(rule.flags)):
        flags = dict(zip(rule.flags, combo))
        coupled = not flags.get("decoupled_weight_decay", False)
        contradicts = decay_flags and (
            (flags["l2"] and not coupled) or (flags["decay"] and coupled)
        )
        assert (combo in rule.programs) is not contradicts, flags
    loops = re.findall(r"void loop_\d+(\(.*?\n)}\n", code, flags=re.DOTALL)
    assert loops and len(set(loops)) == len(loops)


def test_compile_takes_the_step_without_recompiling():
    torch._dynamo.reset()
    model = torch.nn.Linear(4, 3)
    opt = Lion(model.parameters(), lr=torch.tensor(0.01))
    step = torch.compile(opt.step, fullgraph=False)
    x = torch.randn(8, 4)
    with torch._dynamo.config.patch(error_on_recompile=True):
        for t in range(4):
            opt.zero_grad()
            model(x).square().mean().backward()
            step()
            opt.param_groups[0]["lr"].fill_(0.01 / (t + 2))  # a scheduler, in place


# ----------------------------------------------------------------------------- refused rules
def _define(update, **attrs):
    return type("Bad", (Elementwise,), {"update": update, **attrs})


_BASE = {"hyperparameters": {"lr": 0.1, "beta": 0.9}, "state_tensors": ("m",)}


def test_an_unknown_hyperparameter_is_named_with_its_line():
    def update(x, h):
        x.m = x.grad
        x.param = x.param - h.lr * h.momentum  # reads a name the class does not have

    with pytest.raises(RuleError, match=r"h\.momentum.*beta, lr.*\n?.*|h\.momentum") as err:
        _define(update, **_BASE)
    assert "test_rules.py" in str(err.value) and "h.lr * h.momentum" in str(err.value)


def test_a_state_tensor_never_assigned_is_refused():
    def update(x, h):
        x.param = x.param - h.lr * x.grad

    with pytest.raises(RuleError, match=r"never assigns x\.m"):
        _define(update, **_BASE)


def test_an_operation_without_translation_is_named_with_its_line():
    def update(x, h):
        x.m = x.grad
        x.param = x.param - h.lr * math.sqrt(x.m)

    with pytest.raises(RuleError, match=r"math\.sqrt\(x\.m\)"):
        _define(update, **_BASE)

    def branchy(x, h):
        x.m = x.grad
        if x.m > 0:
            x.param = x.param - h.lr

    with pytest.raises(RuleError, match=r"where\(condition"):
        _define(branchy, **_BASE)

    def torchy(x, h):
        x.m = torch.sqrt(x.grad)
        x.param = x.param

    with pytest.raises(RuleError, match=r"torch\.sqrt\(x\.grad\)"):
        _define(torchy, **_BASE)


def test_bad_names_and_defaults_are_refused():
    def update(x, h):
        x.m = x.grad
        x.param = x.param - h.lr * x.m

    with pytest.raises(RuleError, match=r"assigns x\.grad"):
        _define(lambda x, h: setattr(x, "grad", 0.0), **_BASE)
    with pytest.raises(RuleError, match="state tensor 'lr'"):
        _define(update, hyperparameters={"lr": 0.1}, state_tensors=("lr",))
    with pytest.raises(RuleError, match="schedule='cosine'"):
        _define(update, hyperparameters={"lr": 0.1, "schedule": "cosine"}, state_tensors=("m",))
    with pytest.raises(RuleError, match=r"take \(x, h\)"):
        _define(lambda x: None, **_BASE)


def _decayed(x, h):
    x.m = x.grad * h.scale
    x.param = x.param - h.lr * x.m


def test_scalar_state_takes_its_values_and_is_refused_when_misdeclared():
    """A rule's per-tensor scalar state (NAdam's running product): ``scalars(h, t, s)`` reads
    it and returns its new value; kept 0-d float32 in the state, advanced by every path alike,
    held on an inf step."""

    def scalars(h, t, s):
        product = s.scale * 0.5
        return {"scale": product, "scale_now": product.to(t.dtype)}

    def update(x, h):
        x.m = x.grad * h.scale_now
        x.param = x.param - h.lr * x.m

    Halving = _define(update, scalars=staticmethod(scalars), scalar_state={"scale": 1.0}, **_BASE)
    for impl in ("forloop", "foreach"):  # (the fused path: NAdam's tests)
        p = torch.nn.Parameter(torch.ones(3))
        opt = Halving([p], impl=impl)
        for _ in range(3):
            p.grad = torch.ones(3)
            opt.step()
        assert opt.state[p]["scale"].dtype == torch.float32
        assert opt.state[p]["scale"].item() == 0.125, impl
        torch.testing.assert_close(p.detach(), torch.full((3,), 1 - 0.1 * (0.5 + 0.25 + 0.125)))
    with pytest.raises(RuleError, match=r"scalars must take \(h, t, s\)"):
        _define(
            _decayed,
            scalars=staticmethod(lambda h, t: {"scale": t}),
            scalar_state={"scale": 1.0},
            **_BASE,
        )
    with pytest.raises(RuleError, match="scalar state 'lr' must be a new identifier"):
        _define(
            _decayed, scalars=staticmethod(lambda h, t, s: {}), scalar_state={"lr": 1.0}, **_BASE
        )


def test_flags_step_scalars_and_where_in_one_rule():
    """An AMSGrad-style rule with a flag, bias corrections from ``scalars`` and ``where``: the
    fused path equals the readable one, and the flag picks the program."""

    class Clipped(Elementwise):
        hyperparameters = {"lr": 0.01, "beta": 0.9, "eps": 1e-8, "keep_max": False}
        state_tensors = ("v", "v_max")

        @staticmethod
        def scalars(h, t):
            return {"bc": 1 - h.beta**t}

        def update(x, h):
            x.v = lerp(x.v, x.grad * x.grad, 1 - h.beta)
            x.v_max = where(x.v > x.v_max, x.v, x.v_max) if h.keep_max else x.v
            x.param = x.param - h.lr * x.grad / (sqrt(x.v_max / h.bc) + h.eps)

    for keep in (False, True):
        groups = [[p for p in g if not p.dtype.is_complex] for g in make_groups(torch.float64)]
        twin = clone_groups(groups)
        a = Clipped(with_hparams(groups, [{"keep_max": keep}, {"lr": 0.1}]), impl="forloop")
        b = Clipped(with_hparams(twin, [{"keep_max": keep}, {"lr": 0.1}]), impl="fused")
        for t in range(1, 21):
            set_grads(groups, t)
            set_grads(twin, t)
            a.step()
            b.step()
        for p, q in zip(flat(groups), flat(twin)):
            assert_close(p.detach(), q.detach(), 1e-12, 1e-14, f"keep_max={keep}")
            assert_close(a.state[p]["v_max"], b.state[q]["v_max"], 1e-12, 1e-14, "v_max")


@pytest.fixture
def lion_registered():
    from descentlab.optim import Entry, register, unregister

    register(Entry("my-lion", Lion, {}, 1e-4, "Chen et al. 2023", "Algorithm 2, in the tests"))
    yield
    unregister("my-lion")


def test_a_rule_optimizer_joins_the_registry(lion_registered):
    import descentlab
    from descentlab.optim import Entry, HyperparameterError, register

    model = torch.nn.Linear(3, 2)
    opt = descentlab.create("lookahead(my-lion)", model.parameters(), lr=1e-3, k=2)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    assert "my-lion" in descentlab.names()
    with pytest.raises(HyperparameterError, match="already registered"):
        register(Entry("my-lion", Lion))
    with pytest.raises(HyperparameterError, match="Invalid optimizer name"):
        register(Entry("Lion!", Lion))


def test_derived_flags_and_state_that_only_some_settings_have():
    """RMSprop-style: a heavy-ball buffer only where momentum > 0 (a flag derived from a number),
    created, saved and updated only then, on every path alike."""

    class Heavy(Elementwise):
        hyperparameters = {"lr": 0.01, "momentum": 0.0}
        state_tensors = ("buf",)
        derived = {"heavy_ball": lambda h: h.momentum > 0}
        state_when = {"buf": "heavy_ball"}

        def update(x, h):
            if h.heavy_ball:
                x.buf = x.buf * h.momentum + x.grad
                x.param = x.param - h.lr * x.buf
            else:
                x.param = x.param - h.lr * x.grad

    runs = {}
    for impl in ("forloop", "foreach", "fused"):
        groups = [[p for p in g if not p.dtype.is_complex] for g in make_groups(torch.float64)]
        opt = Heavy(with_hparams(groups, [{"momentum": 0.9}, {}]), impl=impl)
        for t in range(1, 8):
            set_grads(groups, t)
            opt.step()
        assert [sorted(opt.state[p]) for p in flat(groups)] == [["buf", "step"]] * 2 + [
            ["step"]
        ] * 2
        runs[impl] = [p.detach().clone() for p in flat(groups)]
    for impl in ("foreach", "fused"):
        for p, q in zip(runs["forloop"], runs[impl]):
            assert_close(p, q, 1e-13, 1e-15, impl)
    with pytest.raises(RuleError, match="state_when"):
        type("Bad", (Heavy,), {"update": Heavy.update, "state_when": {"buf": "nothing"}})


def test_a_rule_class_shows_its_real_signature():
    """inspect.signature(cls.__init__) is what the CLI lists, the lab's default lr and the
    defaults a loaded state dict's groups take: the rule's hyperparameters, in order."""
    import inspect

    from descentlab.optim._persist import _signature_defaults

    names = list(inspect.signature(Lion.__init__).parameters)
    assert names[:6] == ["self", "params", "lr", "betas", "weight_decay", "maximize"]
    assert _signature_defaults(Lion)["betas"] == (0.9, 0.99)


@pytest.mark.parametrize(
    "name, hp",
    [
        ("sgd", {"momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
        ("sgd", {"momentum": 0.9, "dampening": 0.3}),
        ("sgdw", {"momentum": 0.9}),
        ("rmsprop", {"momentum": 0.5, "centered": True}),
        ("radam", {"weight_decay": 0.1}),
    ],
    ids=["nag-l2", "sgdm-dampened", "sgdwm", "rmsprop-centered", "radam"],
)
def test_the_readable_path_in_pieces_equals_it_whole(name, hp, monkeypatch):
    """The readable path cuts a large tensor into pieces; an elementwise rule gives the same
    values either way, bit for bit (its ops, ``torch.add``'s alpha and a per-tensor ``where``
    that picks a branch, are the same on a piece as on the whole)."""
    import descentlab
    from descentlab.optim import elementwise

    gen = torch.Generator().manual_seed(0)
    start = torch.randn(10_000, generator=gen, dtype=torch.float64)
    grads = [torch.randn(10_000, generator=gen, dtype=torch.float64) for _ in range(4)]
    runs = []
    for piece in (1_000, 1 << 40):  # 10 pieces, then the tensor whole
        monkeypatch.setattr(elementwise, "_PIECE", piece)
        p = torch.nn.Parameter(start.clone())
        opt = descentlab.create(name, [p], lr=0.01, impl="forloop", **hp)
        for g in grads:
            p.grad = g.clone()
            opt.step()
        runs.append((p.detach().clone(), {k: v.clone() for k, v in opt.state[p].items()}))
    (p1, s1), (p2, s2) = runs
    assert torch.equal(p1, p2)
    assert s1.keys() == s2.keys() and all(torch.equal(s1[k], s2[k]) for k in s1)


def test_the_readable_path_keeps_scalars_per_group_values():
    """Two AdaBound groups alike but for ``base_lr`` (not a hyperparameter, read by its
    ``scalars``) take their own bounds on the readable path, as on the fused one."""
    import descentlab

    gen = torch.Generator().manual_seed(0)
    start = [torch.randn(50, generator=gen, dtype=torch.float64) for _ in range(2)]
    grads = [
        [torch.randn(50, generator=gen, dtype=torch.float64) for _ in range(2)] for _ in range(3)
    ]
    runs = {}
    for impl in ("forloop", "auto"):
        ps = [torch.nn.Parameter(v.clone()) for v in start]
        opt = descentlab.create(
            "adabound", [{"params": [ps[0]], "lr": 0.1}, {"params": [ps[1]], "lr": 0.01}],
            gamma=0.5,  # bounds that bind from the first steps
            impl=impl,
        )  # fmt: skip
        opt.param_groups[0]["lr"] = 0.01  # the same lr, base_lr 0.1 and 0.01
        for gs in grads:
            for p, g in zip(ps, gs):
                p.grad = g.clone()
            opt.step()
        runs[impl] = [p.detach() for p in ps]
    for a, b in zip(runs["forloop"], runs["auto"]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


class _PlainScale(Elementwise):
    """A rule whose step-dependent scalar is a Python float (not a tensor)."""

    hyperparameters = {"lr": 0.003}
    state_tensors = ()

    @staticmethod
    def scalars(h, t):
        return {"c": h.lr * 1.0}

    def update(x, h):
        x.param = x.param - h.c * x.grad


@pytest.mark.parametrize("impl", ["forloop", "foreach", "fused"])
def test_a_scalar_given_as_a_python_float_keeps_its_precision(impl):
    """float64 parameters: ``c = 0.003`` reaches every path as the float64 0.003, not rounded
    through float32 (the readable path once read it with ``torch.as_tensor``: 2.6e-11 off)."""
    p = torch.nn.Parameter(torch.ones(5, dtype=torch.float64))
    p.grad = torch.ones(5, dtype=torch.float64)
    _PlainScale([p], impl=impl).step()
    assert torch.equal(p.detach(), torch.full((5,), 1 - 0.003, dtype=torch.float64))
