"""The shared machinery, for every optimizer: paths, persistence, validation, non-finite policy."""

from __future__ import annotations

import pytest
import torch

import descentlab
from descentlab.optim import HyperparameterError, NonFiniteGradientError

from ._harness import assert_close, clone_groups, flat, make_groups, set_grads, with_hparams
from .cases import BY_NAME, CASE_IDS, CASES, ERRORS

ALL_NAMES = [
    *descentlab.names(),
    "lookahead(adam)",
    "lookahead(sgdm)",
    "noisy(sgdm)",
    "lookahead(noisy(adam))",
]


def _build(name, groups, **kw):
    hparams = BY_NAME[name].groups if name in BY_NAME else ({"lr": 0.01}, {"lr": 0.005})
    return descentlab.create(name, with_hparams(groups, hparams), **kw)


def _states_equal(a, b, pa, pb, rtol=0.0, atol=0.0):
    for i, (p, q) in enumerate(zip(pa, pb)):
        assert_close(p.detach(), q.detach(), rtol, atol, f"param {i}")
        sa, sb = a.state[p], b.state[q]
        assert sa.keys() == sb.keys()
        for k in sa:
            assert_close(sa[k], sb[k], rtol, atol, f"param {i} state {k}")


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fast_path_matches_readable_path(case, dtype):
    """impl="fused" (or "auto" where no kernel exists here) against impl="forloop"."""
    groups = make_groups(dtype)
    twin = clone_groups(groups)
    slow = descentlab.create(case.name, with_hparams(groups, case.groups), impl="forloop")
    fast = descentlab.create(case.name, with_hparams(twin, case.groups), impl="auto")
    tol = (1e-5, 1e-6) if dtype == torch.float32 else (1e-11, 1e-13)
    for t in range(1, 61):
        set_grads(groups, t)
        set_grads(twin, t)
        slow.step()
        fast.step()
    _states_equal(slow, fast, flat(groups), flat(twin), *tol)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_state_dict_round_trip_through_a_file(name, tmp_path):
    """Save mid-run, load into a freshly built model and optimizer: lock-step continuation."""
    groups = make_groups(torch.float64)
    run = _build(name, groups)
    fresh_groups = None
    for t in range(1, 41):
        if t == 21:
            torch.save(run.state_dict(), tmp_path / "opt.pt")
            fresh_groups = clone_groups(groups)  # a new model with the current weights
            resumed = _build(name, fresh_groups)
            resumed.load_state_dict(torch.load(tmp_path / "opt.pt", weights_only=False))
        set_grads(groups, t)
        run.step()
        if fresh_groups is not None:
            set_grads(fresh_groups, t)
            resumed.step()
            for p, q in zip(flat(groups), flat(fresh_groups)):
                assert torch.equal(p, q), f"step {t}"


@pytest.mark.parametrize(
    ("name", "kwargs", "words"), ERRORS, ids=[f"{e[0]}-{e[1]}" for e in ERRORS]
)
def test_validation_error_names_parameter_and_range(name, kwargs, words):
    p = torch.nn.Parameter(torch.ones(2))
    with pytest.raises(ValueError) as info:
        descentlab.create(name, [p], **kwargs)
    for word in words:
        assert word in str(info.value), f"{word!r} not in {info.value}"


def test_unknown_keyword_on_a_class_is_a_value_error():
    p = torch.nn.Parameter(torch.ones(2))
    with pytest.raises(ValueError, match=r"'lrr'.*did you mean lr"):
        descentlab.optim.Adam([p], lrr=0.1)


def test_bad_param_group_changes_nothing():
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    opt = descentlab.optim.SGD([a], lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        opt.add_param_group({"params": [b], "lr": -1.0})
    with pytest.raises(ValueError, match="nesterov"):
        opt.add_param_group({"params": [b], "nesterov": True})
    assert len(opt.param_groups) == 1


def _nan_grads(groups, t):
    set_grads(groups, t)
    flat(groups)[2].grad[0, 1] = float("nan")


@pytest.mark.parametrize("name", descentlab.names())  # wrappers: test_nonfinite.py
def test_nonfinite_raise_names_the_parameter_and_updates_nothing(name):
    groups = make_groups(torch.float64)
    opt = _build(name, groups, nonfinite="raise")
    set_grads(groups, 1)
    opt.step()
    before = [p.detach().clone() for p in flat(groups)]
    state = {
        k: v.clone() if torch.is_tensor(v) else v
        for p in flat(groups)
        for k, v in opt.state[p].items()
    }
    _nan_grads(groups, 2)
    with pytest.raises(NonFiniteGradientError, match=r"param_groups\[1\]\['params'\]\[0\].*step 2"):
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, flat(groups)))
    after = {k: v for p in flat(groups) for k, v in opt.state[p].items()}
    assert all(
        torch.equal(v, after[k]) if torch.is_tensor(v) else v == after[k] for k, v in state.items()
    )


@pytest.mark.parametrize("name", descentlab.names())
def test_nonfinite_skip_skips_the_whole_step(name):
    groups = make_groups(torch.float64)
    twin = clone_groups(groups)
    opt = _build(name, groups, nonfinite="skip")
    ref = _build(name, twin)
    for t in range(1, 6):
        set_grads(groups, t)
        set_grads(twin, t)
        opt.step()
        ref.step()
        _nan_grads(groups, 100 + t)
        opt.step()  # skipped: state and parameters untouched
    assert opt.skipped_steps == 5
    _states_equal(opt, ref, flat(groups), flat(twin))


@pytest.mark.parametrize("name", descentlab.names())
def test_maximize_leaves_grad_untouched_and_ascends(name):
    groups = make_groups(torch.float64)
    twin = clone_groups(groups)
    plain = ({"lr": 0.01}, {"lr": 0.005})
    up = descentlab.create(name, with_hparams(groups, plain), maximize=True)
    down = descentlab.create(name, with_hparams(twin, plain))
    for t in range(1, 11):
        set_grads(groups, t)
        grads = [p.grad.clone() for p in flat(groups)]
        for p, q in zip(flat(twin), flat(groups)):
            p.grad = -q.grad
        # maximizing f from x equals minimizing -f: same iterates when the gradient is negated
        up.step()
        down.step()
        assert all(torch.equal(g, p.grad) for g, p in zip(grads, flat(groups)))
        for p, q in zip(flat(groups), flat(twin)):
            torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12)
        for p, q in zip(flat(groups), flat(twin)):  # keep the two runs on the same gradients
            q.data.copy_(p.data)


@pytest.mark.parametrize("name", descentlab.names())
def test_closure_and_sparse_error(name):
    p = torch.nn.Parameter(torch.ones(3))
    opt = descentlab.create(name, [p], lr=0.01)

    def closure():
        opt.zero_grad()
        loss = (p**2).sum()
        loss.backward()
        return loss

    assert float(opt.step(closure)) == 3.0
    emb = torch.nn.Embedding(5, 2, sparse=True)
    opt = descentlab.create(name, emb.parameters(), lr=0.01)
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match="sparse"):
        opt.step()


def test_names_and_create():
    assert set(descentlab.names()) == set(BY_NAME)
    assert "lookahead(adam)" in descentlab.names(wrapped=True)
    p = torch.nn.Parameter(torch.ones(2))
    opt = descentlab.create("lookahead(sgdm)", [p], lr=0.1, momentum=0.8, k=3, alpha=0.4)
    assert isinstance(opt, descentlab.optim.Lookahead) and (opt.k, opt.alpha) == (3, 0.4)
    assert opt.base_optimizer.param_groups[0]["momentum"] == 0.8
    assert opt.param_groups[0]["lr"] == 0.1
    nested = descentlab.create("lookahead(noisy(adam))", [p], eta=0.01, k=2)
    assert isinstance(nested.base_optimizer, descentlab.optim.GradientNoise)
    assert nested.base_optimizer.eta == 0.01
    with pytest.raises(ValueError, match="closest: adam"):
        descentlab.create("adma", [p])
    with pytest.raises(ValueError, match="closest: lookahead"):
        descentlab.create("lookahaed(adam)", [p])
    with pytest.raises(ValueError, match="'kk'"):
        descentlab.create("lookahead(adam)", [p], kk=3)
    for name in ("sgdw", "sgdwm"):
        assert descentlab.create(name, [p]).param_groups[0]["decoupled_weight_decay"]


def test_param_groups_split_decay():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 2))
    model[2].weight.requires_grad_(False)
    groups = descentlab.param_groups(model, 0.1)
    assert [len(g["params"]) for g in groups] == [1, 4]
    assert groups[0]["params"][0] is model[0].weight and groups[1]["weight_decay"] == 0.0
    assert all(p is not model[2].weight for g in groups for p in g["params"])
    opt = descentlab.create("adamw", groups)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]


def test_hyperparameters_may_be_tensors():
    p = torch.nn.Parameter(torch.ones(2))
    opt = descentlab.optim.Adam([p], lr=torch.tensor(0.01))
    p.grad = torch.ones(2)
    opt.step()
    with pytest.raises(HyperparameterError, match="shape"):
        descentlab.optim.Adam([p], lr=torch.ones(2))


def _saved(name, shape=(3,)):
    p = torch.nn.Parameter(torch.ones(shape))
    opt = descentlab.create(name, [p], lr=0.1)
    p.grad = torch.ones(shape)
    opt.step()
    return opt.state_dict()


@pytest.mark.parametrize(
    ("saved", "words"),
    [
        (lambda: {"weights": 1}, ["not an optimizer state dict", "'state'"]),
        (lambda: _saved("sgd"), ["group 0", "lacks", "betas"]),
        (lambda: _saved("adam", (4,)), ["exp_avg", "shape (4,)", "(3,)"]),
        (lambda: {**_saved("adam"), "param_groups": []}, ["0 parameter groups saved"]),
        (
            lambda: {
                **_saved("adam"),
                "param_groups": [{**_saved("adam")["param_groups"][0], "lr": -1.0}],
            },
            ["lr", "-1.0"],
        ),
    ],
    ids=["not-a-state-dict", "wrong-optimizer", "wrong-shape", "wrong-groups", "bad-value"],
)
def test_foreign_or_corrupted_state_dict_is_rejected_and_changes_nothing(saved, words):
    p = torch.nn.Parameter(torch.ones(3))
    opt = descentlab.create("adam", [p], lr=0.1)
    p.grad = torch.ones(3)
    opt.step()
    before = {k: v.clone() for k, v in opt.state[p].items()}
    with pytest.raises(ValueError) as info:
        opt.load_state_dict(saved())
    for word in words:
        assert word in str(info.value), f"{word!r} not in {info.value}"
    assert all(torch.equal(v, opt.state[p][k]) for k, v in before.items())
    assert opt.param_groups[0]["lr"] == 0.1
