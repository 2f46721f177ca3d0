"""The GPU path end to end: ``opt.step()`` with the kernels a CUDA machine selects.

On CUDA, :func:`descentlab.optim.kernels.select` hands a bucket torch's fused kernel where it has
the algorithm's math, else descentlab's Triton kernels (a rule optimizer's: the kernels generated
from its rule, :func:`descentlab.optim.kernels.rules.select`). Here the same choice is made for CPU
tensors (``select`` patched; the Triton kernels run under ``TRITON_INTERPRET=1``, torch's fused
kernels have CPU versions), so each optimizer's ``_fused`` is exercised with exactly the modules
it gets on a GPU: every registry optimizer and both wrappers step in lock-step with the readable
path, under ``torch.amp.GradScaler`` too (the scale and the inf flag handed to the kernels, as
torch's fused optimizers take them), and SWATS keeps its phase on the device.
"""

from __future__ import annotations

import math

import pytest
import torch

triton = pytest.importorskip("triton")

import descentlab  # noqa: E402
from descentlab.optim import kernels  # noqa: E402
from descentlab.optim.kernels import rules  # noqa: E402
from descentlab.optim.kernels import triton as tk  # noqa: E402
from descentlab.optim.kernels.triton import _table  # noqa: E402

from ._harness import assert_close, clone_groups, flat, make_groups, set_grads  # noqa: E402
from .cases import CASES  # noqa: E402

STEPS = 12
TOL = {torch.float64: (1e-10, 1e-12), torch.float32: (2e-5, 2e-6)}


def _cuda_choice(device, *, impl, torch_fused, compiled, build, owner):
    """``kernels.select`` as on a CUDA device, for CPU tensors."""
    if impl == "foreach":
        return kernels.select(device, impl=impl, torch_fused=False, compiled=False, build=False,
                              owner=owner)  # fmt: skip
    if torch_fused:
        return None
    return tk if compiled else kernels.select(device, impl=impl, torch_fused=False,
                                              compiled=False, build=False, owner=owner)  # fmt: skip


def _cuda_rule_choice(rule, device, *, impl, owner):
    """``rules.select`` as on a CUDA device (a rule's generated Triton kernels), for CPU tensors."""
    return rules.Foreach if impl == "foreach" else rules.compiled(rule, "cuda")


@pytest.fixture
def gpu_path(monkeypatch):
    assert triton.knobs.runtime.interpret
    monkeypatch.setattr(kernels, "select", _cuda_choice)
    monkeypatch.setattr(rules, "select", _cuda_rule_choice)
    old = _table.configure(chunk=64, block=32)  # the sizes below straddle chunks and blocks
    yield
    _table.configure(chunk=old[0], block=old[1])


def _contiguous_groups(dtype):
    groups = make_groups(dtype)
    groups[1][0] = torch.nn.Parameter(groups[1][0].detach().contiguous())  # fast path for all
    groups[1].append(torch.nn.Parameter(torch.linspace(-1, 1, 70, dtype=dtype)))  # 2 chunks
    return groups


def _pair(name, hparams, dtype, fixed):
    groups = _contiguous_groups(dtype)
    twin = clone_groups(groups)
    fast = descentlab.create(name, [dict(params=g, **h) for g, h in zip(groups, hparams)],
                             **fixed)  # fmt: skip
    slow = descentlab.create(name, [dict(params=g, **h) for g, h in zip(twin, hparams)],
                             impl="forloop", **fixed)  # fmt: skip
    return (fast, groups), (slow, twin)


def _compare(fast, slow, groups, twin, dtype, t):
    rtol, atol = TOL[dtype]
    for i, (p, q) in enumerate(zip(flat(groups), flat(twin))):
        assert_close(p.detach(), q.detach(), rtol, atol, f"step {t}: param {i}")
        for key, value in slow.state[q].items():
            mine = fast.state[p][key]
            if torch.is_tensor(mine) or torch.is_tensor(value):
                mine, value = (torch.as_tensor(x, dtype=torch.float64) for x in (mine, value))
            assert_close(mine, value, rtol, atol, f"step {t}: param {i}: {key}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_every_optimizer_steps_on_the_gpu_kernels_as_the_readable_path(gpu_path, case, dtype):
    (fast, groups), (slow, twin) = _pair(case.name, case.groups, dtype, case.fixed)
    for t in range(1, STEPS + 1):
        set_grads(groups, t)
        set_grads(twin, t)
        fast.step()
        slow.step()
        _compare(fast, slow, groups, twin, dtype, t)
    plans = [fast._plans[id(g)] for g in fast.param_groups]
    assert all(not plan.slow and plan.buckets for plan in plans), "a tensor left the fast path"


def _run(fast, slow, groups, twin, dtype, steps, first=1):
    for t in range(first, first + steps):
        set_grads(groups, t)
        set_grads(twin, t)
        fast.step()
        slow.step()
        _compare(fast, slow, groups, twin, dtype, t)


def test_swats_keeps_its_phase_on_the_device_and_saves_numbers(gpu_path, tmp_path):
    """Both phases run in the Triton kernel (the switch decided there), the state holds the
    switch as 0-d float64 tensors and the state dict as numbers, and a save continues on the
    readable path in lock-step."""
    hparams = ({"lr": 0.01, "switch_tol": 1e-3}, {"lr": 0.003, "switch_tol": 0.0})
    (fast, groups), (slow, twin) = _pair("swats", hparams, torch.float64, {})
    _run(fast, slow, groups, twin, torch.float64, 40)
    states = [fast.state[p] for p in flat(groups)]
    assert all(torch.is_tensor(s["switch_step"]) for s in states)
    phases = {float(s["switch_step"]) > 0 for s in states}
    assert phases == {True, False}, "both phases within 40 steps"
    saved = fast.state_dict()["state"]
    assert all(isinstance(e["switch_step"], int) and isinstance(e["lam"], float)
               for e in saved.values())  # fmt: skip
    torch.save(fast.state_dict(), tmp_path / "swats.pt")
    readable = descentlab.create("swats", [dict(params=g, **h) for g, h in zip(groups, hparams)],
                                 impl="forloop")  # fmt: skip
    readable.load_state_dict(torch.load(tmp_path / "swats.pt", weights_only=True))
    _run(readable, slow, groups, twin, torch.float64, 10, first=41)
    assert all(isinstance(readable.state[p]["lam"], float) for p in flat(groups))  # host path


@pytest.mark.parametrize("case", CASES, ids=str)
def test_grad_scaler_hands_the_kernels_its_scale_and_inf_flag(gpu_path, case, monkeypatch):
    """As with a CUDA flag (not read on the host): the kernels unscale (no separate division
    pass) and change nothing on an inf step, step counters included; every step equals the
    readable path's under its own GradScaler."""
    from descentlab.optim import _stepping

    monkeypatch.setattr(_stepping, "_read_on_host", lambda flag: False)
    (fast, groups), (slow, twin) = _pair(case.name, case.groups, torch.float64, case.fixed)
    scalers = [torch.amp.GradScaler("cpu", init_scale=2.0**10) for _ in range(2)]
    divide, divisions = torch._foreach_div_, []
    for t in range(1, 9):
        for params, opt, scaler in ((groups, fast, scalers[0]), (twin, slow, scalers[1])):
            set_grads(params, t)
            for p in flat(params):
                p.grad = scaler.scale(p.grad)  # what backward of a scaled loss gives
            if t == 4:
                flat(params)[1].grad[0, 0] = float("inf")
            if opt is fast:
                monkeypatch.setattr(torch, "_foreach_div_", lambda *a: divisions.append(a))
            scaler.step(opt)
            monkeypatch.setattr(torch, "_foreach_div_", divide)
            scaler.update()
        _compare(fast, slow, groups, twin, torch.float64, t)
    assert not divisions, "the gradients were unscaled in a separate pass"
    assert all(float(fast.state[p]["step"]) == 7 for p in flat(groups))


@pytest.mark.parametrize("capturable", [False, True], ids=["host-count", "device-count"])
@pytest.mark.parametrize("name", ["lookahead(adam)", "noisy(rmsprop)", "lookahead(noisy(radam))"])
def test_wrappers_step_on_the_gpu_kernels_as_the_foreach_path(gpu_path, name, capturable,
                                                              monkeypatch):  # fmt: skip
    """Lookahead synchronises in its Triton kernel (with a device count, every step: the
    kernel skips unless the flag says k-th), GradientNoise draws once and adds in one Triton
    pass; the twin takes the foreach path everywhere. Every size is a multiple of 16, so that
    on CPU the one flat draw is the per-tensor draws' stream (see kernels/triton/noise.py)."""
    from descentlab.optim.kernels import foreach

    calls = {"lookahead_sync": 0, "noise_add": 0}
    for kernel in calls:
        real = getattr(tk, kernel)
        monkeypatch.setattr(tk, kernel, lambda real=real, kernel=kernel, **kw: (
            calls.__setitem__(kernel, calls[kernel] + 1), real(**kw)))  # fmt: skip
    gen = torch.Generator().manual_seed(0)
    start = [torch.randn(s, generator=gen) for s in [(16,), (4, 8), (3, 16), (80,)]]
    runs = []
    for path in ("gpu", "foreach"):
        with monkeypatch.context() as m:
            if path == "foreach":
                m.setattr(kernels, "select", lambda device, **kwargs: foreach)
            params = [torch.nn.Parameter(x.clone()) for x in start]
            groups = [{"params": params[:2], "lr": 0.01}, {"params": params[2:], "lr": 0.02}]
            options = {"k": 3} if "lookahead" in name else {}
            options |= {"generator": 5} if "noisy" in name else {}
            opt = descentlab.create(name, groups, capturable=capturable, **options)
            for t in range(1, 10):
                for i, p in enumerate(params):
                    p.grad = 0.3 * p.detach() + math.sin(t + i)
                opt.step()
            runs.append(params)
    for i, (p, q) in enumerate(zip(*runs)):
        assert_close(p.detach(), q.detach(), *TOL[torch.float32], f"param {i}")
    syncs = (9 if capturable else 3) if "lookahead" in name else 0
    assert calls == {"lookahead_sync": syncs, "noise_add": 9 if "noisy" in name else 0}


def _cpu_choice(device, **kwargs):
    return kernels.select(device, **kwargs)


@pytest.mark.parametrize("path", ["gpu kernels", "cpu kernels", "foreach", "forloop"])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_every_path_leaves_the_gradients_as_torchs_fused_kernels_do(case, path, monkeypatch):
    """After a GradScaler step every path leaves ``p.grad`` unscaled, as torch's fused kernels
    (``_fused_adam_``: ``grads`` is a mutated argument) and ``GradScaler.unscale_`` leave it:
    the Triton and C++ kernels store the unscaled gradient in their pass, the foreach and
    readable paths divide before the step. The operators declare ``grads`` mutated."""
    from descentlab.optim import _stepping

    monkeypatch.setattr(_stepping, "_read_on_host", lambda flag: False)  # a device flag
    if path == "gpu kernels":
        monkeypatch.setattr(kernels, "select", _cuda_choice)
    impl = {"foreach": "foreach", "forloop": "forloop"}.get(path, "auto")
    groups = _contiguous_groups(torch.float32)
    opt = descentlab.create(
        case.name, [dict(params=g, **h) for g, h in zip(groups, case.groups)], **case.fixed,
        **({"impl": impl} if "(" not in case.name else {}),
    )  # fmt: skip
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    for t in (1, 2):
        set_grads(groups, t)
        want = [p.grad.clone() for p in flat(groups)]
        for p in flat(groups):
            p.grad = scaler.scale(p.grad)
        scaler.step(opt)
        scaler.update()
        for i, (p, g) in enumerate(zip(flat(groups), want)):
            assert_close(p.grad, g, 1e-6, 1e-8, f"{path}, step {t}: gradient {i}")


@pytest.mark.parametrize("name", ["momentum_sgd",
                                  "swats", "swats_adam"])  # fmt: skip
def test_cpu_and_gpu_operators_declare_the_same_mutated_lists(name):
    """One contract per kernel: the C++ operator and the Triton one mutate the same lists (a
    rule optimizer has one operator for both, its schema from the rule: tests/optim/test_rules)."""
    from descentlab.optim.kernels import ops  # noqa: F401 - registers descentlab::<name>

    def mutated(op):
        return {
            a.name for a in op.default._schema.arguments if a.alias_info and a.alias_info.is_write
        }

    cpu = getattr(torch.ops.descentlab, name)
    gpu = getattr(torch.ops.descentlab, f"triton_{name}")
    assert mutated(cpu) == mutated(gpu) >= {"params", "grads"}
