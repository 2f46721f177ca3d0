"""Lookahead and GradientNoise against their papers, and as drop-in torch optimizers."""

from __future__ import annotations

import math

import pytest
import torch

import descentlab
from descentlab.optim import GradientNoise, Lookahead

from . import references as ref
from ._harness import clone_groups, flat, make_groups, set_grads, with_hparams


@pytest.mark.parametrize(("k", "alpha"), [(5, 0.5), (1, 1.0), (3, 0.2)])
def test_lookahead_matches_algorithm_1(k, alpha):
    groups = make_groups(torch.float64)
    twin = flat(clone_groups(groups))
    ours = Lookahead(
        torch.optim.SGD([{"params": g} for g in groups], lr=0.05, momentum=0.9), k, alpha
    )
    expected = ref.lookahead_reference(
        torch.optim.SGD(twin, lr=0.05, momentum=0.9), twin, k, alpha, _grads, 50
    )
    for t, want in enumerate(expected, start=1):
        for p, g in zip(flat(groups), _grads(flat(groups), t)):
            p.grad = g
        ours.step()
        for p, q in zip(flat(groups), want):
            torch.testing.assert_close(p.detach(), q, rtol=1e-12, atol=1e-12, msg=f"step {t}")


def _grads(params, t):
    return [0.3 * p.detach() + math.sin(t + i) for i, p in enumerate(params)]


def test_lookahead_first_sync_pulls_back():
    """Slow weights exist from the start: after k steps the weights move back toward theta_0."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = Lookahead(torch.optim.SGD([p], lr=1.0), k=2, alpha=0.5)
    for _ in range(2):
        p.grad = -torch.ones(1)
        opt.step()
    assert p.item() == 1.0  # fast reached 2, the sync put it halfway back to 0


def test_lookahead_with_torch_scheduler_and_new_group():
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    opt = Lookahead(torch.optim.Adam([a], lr=0.1))
    assert isinstance(opt, torch.optim.Optimizer)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    a.grad = torch.ones(2)
    opt.step()
    sched.step()
    assert opt.base_optimizer.param_groups[0]["lr"] == 0.05
    opt.add_param_group({"params": [b], "lr": 0.2})
    assert len(opt.base_optimizer.param_groups) == 2 and torch.equal(opt.state[b]["slow"], b)


def test_wrapper_rejects_foreign_state_dict():
    p = torch.nn.Parameter(torch.ones(2))
    opt = Lookahead(torch.optim.SGD([p], lr=0.1))
    with pytest.raises(ValueError, match="no 'lookahead' entry"):
        opt.load_state_dict(torch.optim.SGD([p], lr=0.1).state_dict())


def test_noise_variance_follows_the_schedule():
    """With zero gradients and SGD(lr=1), the step is minus the noise: check its variance."""
    p = torch.nn.Parameter(torch.zeros(200_000, dtype=torch.float64))
    opt = GradientNoise(torch.optim.SGD([p], lr=1.0), eta=0.3, gamma=0.55, generator=7)
    for t in range(1, 11):
        before = p.detach().clone()
        p.grad = torch.zeros_like(p)
        opt.step()
        noise = before - p.detach()
        expected = 0.3 / (1 + t) ** 0.55
        assert abs(noise.var().item() / expected - 1) < 0.02, t
        assert abs(noise.mean().item()) < 5 * math.sqrt(expected / p.numel())
        assert torch.equal(p.grad, torch.zeros_like(p))  # the noise went into a copy


def test_noise_is_reproducible_from_a_seed():
    runs = []
    for _ in range(2):
        groups = make_groups(torch.float64)
        opt = descentlab.create("noisy(adam)", [{"params": g} for g in groups], generator=3)
        for t in range(1, 6):
            set_grads(groups, t)
            opt.step()
        runs.append([p.detach().clone() for p in flat(groups)])
    assert all(torch.equal(a, b) for a, b in zip(*runs))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_lookahead_one_pass_sync_equals_the_foreach_sync(dtype, monkeypatch):
    """The compiled one-pass synchronisation gives the two-pass foreach path's weights."""
    from descentlab.optim.kernels import cpu, ops

    if cpu.unavailable_reason() is not None:
        pytest.skip(f"compiled kernels unavailable here: {cpu.unavailable_reason()}")
    module, kernel, calls = cpu.ready(), ops.lookahead_sync, []

    def spy(slow, fast, **kwargs):  # counts the kernel's calls: the test fails if it never runs
        calls.append(len(slow))
        return kernel(slow, fast, **kwargs)

    gen = torch.Generator().manual_seed(0)
    start = [torch.randn(s, generator=gen).to(dtype) for s in [(), (70_000,), (4, 3)]]
    runs = []
    for ready, sync in ((lambda: module, spy), (lambda: None, kernel)):
        monkeypatch.setattr(cpu, "ready", ready)
        monkeypatch.setattr(ops, "lookahead_sync", sync)
        params = [torch.nn.Parameter(x.clone()) for x in start]
        opt = Lookahead(torch.optim.SGD(params, lr=0.1, momentum=0.9), k=3, alpha=0.3)
        for t in range(10):
            for i, p in enumerate(params):
                p.grad = (0.3 * p.detach() + math.sin(t + i)).to(dtype)
            opt.step()
        runs.append((params, opt))
    assert calls == [3, 3, 3]  # steps 3, 6, 9: every tensor in one call
    tol = {torch.float64: 1e-12, torch.float32: 1e-6, torch.bfloat16: 1e-2}[dtype]
    (ps, a), (qs, b) = runs
    for p, q in zip(ps, qs):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=tol, atol=tol)
        torch.testing.assert_close(a.state[p]["slow"], b.state[q]["slow"], rtol=tol, atol=tol)


@pytest.mark.parametrize("name", ["lookahead(adam)", "lookahead(sgdm)", "noisy(adam)",
                                  "lookahead(noisy(radam))"])  # fmt: skip
def test_device_count_steps_as_the_host_count(name, tmp_path):
    """A capturable inner optimizer puts the wrappers' counts on the device (Lookahead's k-th
    step a flag its kernels read, GradientNoise's std computed there): the same steps as the
    host count, and state dicts move between the two through a file."""
    hparams = ({"lr": 0.01}, {"lr": 0.02, "weight_decay": 0.1})
    options = {"k": 3} if "lookahead" in name else {}
    groups = make_groups(torch.float64)
    twin = clone_groups(groups)

    def build(params, capturable):
        return descentlab.create(name, with_hparams(params, hparams), **options,
                                 capturable=capturable)  # fmt: skip

    host, device = build(groups, False), build(twin, True)
    assert torch.is_tensor(_count(device)) and not torch.is_tensor(_count(host))
    for t in range(1, 13):
        set_grads(groups, t)
        set_grads(twin, t)
        host.step()
        device.step()
        for i, (p, q) in enumerate(zip(flat(groups), flat(twin))):
            torch.testing.assert_close(q, p, rtol=1e-12, atol=1e-12, msg=f"step {t}, param {i}")
        if t == 5:  # the device count's state continues on a host count, and back at 9
            host = _reloaded(device, build(groups, False), tmp_path)
        if t == 9:
            device = _reloaded(host, build(twin, True), tmp_path)
    assert int(_count(host)) == int(_count(device)) == 12


def _count(wrapper):
    return wrapper.inner_steps if isinstance(wrapper, Lookahead) else wrapper.noise_steps


def _reloaded(source, fresh, tmp_path):
    torch.save(source.state_dict(), tmp_path / "sd.pt")
    fresh.load_state_dict(torch.load(tmp_path / "sd.pt", weights_only=True))
    assert int(_count(fresh)) == int(_count(source))
    return fresh


def _state_dict_pre_hook(opt):  # as torch's own suite (TestOptimRenewed) registers it
    opt.state["test"] = 1


def _state_dict_post_hook(opt, sd):
    sd["ran_state_dict_pre_hook"] = sd["state"].pop("test", None) == 1
    return sd


_WRAPPED = {
    "lookahead": lambda ps: Lookahead(torch.optim.Adam(ps, lr=0.1), k=2),
    "noise": lambda ps: GradientNoise(torch.optim.SGD(ps, lr=0.1), generator=0),
    "lookahead(noise)": lambda ps: Lookahead(
        GradientNoise(torch.optim.SGD(ps, lr=0.1), generator=0)
    ),
}


@pytest.mark.parametrize("name", _WRAPPED)
def test_state_dict_hooks_see_the_wrappers_own_entries(name):
    """torch's test_state_dict_pre_hook / test_state_dict_pre_post_hook on the wrappers: an entry
    a pre-hook puts in the wrapper's ``state`` reaches the saved dict, as torch packs every key."""
    p = torch.nn.Parameter(torch.ones(3))
    opt = _WRAPPED[name]([p])
    opt.register_state_dict_pre_hook(_state_dict_pre_hook)
    assert opt.state_dict()["state"]["test"] == 1
    opt.register_state_dict_post_hook(_state_dict_post_hook)
    sd = opt.state_dict()
    assert "test" not in sd["state"] and sd["ran_state_dict_pre_hook"] is True


@pytest.mark.parametrize("name", _WRAPPED)
def test_wrappers_loose_state_entries_round_trip_through_a_file(name, tmp_path):
    """A non-parameter entry of the wrapper's state loads back into the wrapper (not the inner
    optimizer), through a file into a fresh model, and the steps continue as uninterrupted."""
    p = torch.nn.Parameter(torch.arange(3.0))
    opt = _WRAPPED[name]([p])
    for _ in range(3):
        p.grad = p.detach().sin()
        opt.step()
    opt.state["note"] = {"epoch": 7}
    torch.save(opt.state_dict(), tmp_path / "opt.pt")
    q = torch.nn.Parameter(p.detach().clone())
    fresh = _WRAPPED[name]([q])
    fresh.state["stale"] = 0  # replaced by the saved entries, as torch's load replaces state
    fresh.load_state_dict(torch.load(tmp_path / "opt.pt", weights_only=False))
    assert fresh.state["note"] == {"epoch": 7} and "stale" not in fresh.state
    assert "note" not in fresh.base_optimizer.state
    for _ in range(4):
        p.grad, q.grad = p.detach().sin(), q.detach().sin()
        opt.step()
        fresh.step()
    assert torch.equal(p, q)


def test_wrapper_refuses_loose_entries_its_state_lacks():
    p = torch.nn.Parameter(torch.ones(2))
    opt = Lookahead(torch.optim.SGD([p], lr=0.1))
    opt.state["note"] = 1
    sd = opt.state_dict()
    del sd["state"]["note"]
    before = opt.state_dict()
    with pytest.raises(ValueError, match=r"lacks the wrapper's entries \['note'\]"):
        opt.load_state_dict(sd)
    assert opt.state_dict()["lookahead"] == before["lookahead"]
