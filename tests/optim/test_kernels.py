"""The compiled kernels of the fast path: build, fallback, dtypes, SWATS's switch.

Parity of every optimizer on float32/float64 is in test_machinery.py (the case table); here are
the cases that concern the kernels themselves.
"""

from __future__ import annotations

import warnings

import pytest
import torch

import descentlab
from descentlab.optim.kernels import cpu

from ._harness import assert_close

KERNEL_NAMES = ["rmsprop", "nadam", "radam", "adabound", "amsbound", "sgdw", "sgdwm", "swats"]
SGD_FAMILY = ["sgd", "sgdm", "nag", "sgdw", "sgdwm"]
TORCH_FUSED = ["sgd", "sgdm", "nag"]  # torch's fused SGD where the kernels are not built


def _need_kernels() -> None:
    reason = cpu.unavailable_reason()
    if reason is not None:
        pytest.skip(f"compiled kernels unavailable here: {reason}")


def _params(dtypes, seed=0):
    gen = torch.Generator().manual_seed(seed)
    shapes = [(), (3, 5), (70_000,), (4, 3, 2)]  # 70k: more than one 64K chunk
    return [
        torch.nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float64).to(d))
        for s, d in zip(shapes, dtypes)
    ]


def _run(name, params, impl, steps, **hparams):
    opt = descentlab.create(name, params, impl=impl, **hparams)
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        for p in params:
            g = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            p.grad = (0.5 * p.detach().double() + g).to(p.dtype)
        opt.step()
    return opt


def test_kernels_build_and_load():
    _need_kernels()
    module = cpu.kernels()
    from descentlab.optim._rules.rule import BUILTIN

    # the hand-written kernels, and the built-in rules' generated ones in the same extension
    rules = [f"rule_{name.lower()}" for name in BUILTIN]
    assert {"rule_rmsprop", "rule_radam", "rule_adabound", "rule_nadam"} <= set(rules)
    for fn in ("momentum_sgd", "swats_adam", *rules):
        assert callable(getattr(module, fn))
    assert any(cpu.build_directory().glob("*.so"))
    with pytest.raises(TypeError):  # keyword-only hyperparameters: no swapped betas
        module.lookahead_sync([], [], 0.5)
    module.lookahead_sync([], [], alpha=0.5)


def test_a_failed_build_is_remembered_not_raised(monkeypatch):
    def broken(verbose=False):
        raise OSError("no C++ compiler found (test)")

    monkeypatch.setattr(cpu, "_module", None)
    monkeypatch.setattr(cpu, "_error", None)
    monkeypatch.setattr(cpu, "_load", broken)
    assert "no C++ compiler found (test)" in cpu.unavailable_reason()
    with pytest.raises(RuntimeError, match="could not be built"):
        cpu.build()


def test_environment_variable_disables_the_kernels(monkeypatch):
    monkeypatch.setattr(cpu, "_module", None)
    monkeypatch.setattr(cpu, "_error", None)
    monkeypatch.setenv("DESCENTLAB_KERNELS", "0")
    assert cpu.unavailable_reason() == "disabled by DESCENTLAB_KERNELS=0"


@pytest.mark.parametrize("name", sorted(set(KERNEL_NAMES + SGD_FAMILY)))
def test_without_kernels_auto_takes_foreach_and_fused_raises(name, monkeypatch):
    reason = f"no compiler for {name} (test)"  # unique, so that warn_once warns here
    monkeypatch.setattr(cpu, "unavailable_reason", lambda: reason)
    monkeypatch.setattr(cpu, "ready", lambda: None)
    dtypes = [torch.float64] * 4
    expected = _params(dtypes)
    _run(name, expected, "forloop", 8)
    params = _params(dtypes)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _run(name, params, "auto", 8)
    for p, q in zip(params, expected):
        # SGD, SGDM and NAG without kernels take torch's fused SGD, the others the foreach path
        assert_close(p.detach(), q.detach(), 1e-11, 1e-13, name)
    if name not in TORCH_FUSED:
        assert any(reason in str(w.message) and "foreach" in str(w.message) for w in caught)
        with pytest.raises(RuntimeError, match="no compiled kernel"):
            _run(name, _params(dtypes), "fused", 1)


@pytest.mark.parametrize("name", KERNEL_NAMES)
def test_mixed_dtypes_in_one_group(name):
    _need_kernels()
    dtypes = [torch.float32, torch.float64, torch.float32, torch.float64]
    slow, fast = _params(dtypes), _params(dtypes)
    a = _run(name, slow, "forloop", 20)
    b = _run(name, fast, "fused", 20)
    for p, q in zip(slow, fast):
        assert q.dtype == p.dtype
        # float32: one-ulp differences per op (another operation order, fused multiply-adds)
        # feed back through the gradient 0.5 p + noise over 20 steps
        tol = (1e-4, 1e-5) if p.dtype == torch.float32 else (1e-11, 1e-13)
        assert_close(q.detach(), p.detach(), *tol, f"{name} {p.dtype}")
        for key, value in a.state[p].items():
            assert_close(b.state[q][key], value, *tol, f"{name} {p.dtype} state {key}")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", KERNEL_NAMES)
def test_half_precision_at_least_as_accurate_as_the_loop(name, dtype):
    # The kernel keeps intermediates in float32 and rounds once per stored value; the loop
    # rounds after every op. Both are compared with a float64 run from the same start.
    # (eps = 1e-3: the default 1e-8 is 0 in float16, and the loop then divides 0 by 0.)
    _need_kernels()
    hp = dict(lr=1e-2) if name.startswith("sgdw") else dict(lr=1e-2, eps=1e-3)
    slow, fast = _params([dtype] * 4), _params([dtype] * 4)
    exact = [torch.nn.Parameter(p.detach().double()) for p in _params([dtype] * 4)]
    _run(name, slow, "forloop", 10, **hp)
    _run(name, fast, "fused", 10, **hp)
    _run(name, exact, "forloop", 10, **hp)
    for p, q, x in zip(slow, fast, exact):
        assert q.dtype == dtype
        err_loop = (p.detach().double() - x.detach()).abs().max()
        err_fused = (q.detach().double() - x.detach()).abs().max()
        ulp = torch.finfo(dtype).eps * x.detach().abs().max()
        assert err_fused <= 1.5 * err_loop + 2 * ulp, (name, err_fused, err_loop)


def test_swats_switches_at_the_same_step_on_both_paths():
    _need_kernels()
    dtypes = [torch.float64] * 4
    slow, fast = _params(dtypes), _params(dtypes)
    hp = dict(lr=1e-2, switch_tol=1e-4)
    a = _run("swats", slow, "forloop", 60, **hp)
    b = _run("swats", fast, "fused", 60, **hp)
    switched = 0
    for p, q in zip(slow, fast):
        sa, sb = a.state[p], b.state[q]
        assert sb["switch_step"] == sa["switch_step"]
        switched += sa["switch_step"] > 0
        assert_close(sb["sgd_lr"], sa["sgd_lr"], 1e-9, 1e-15, "sgd_lr")
        assert_close(sb["lam"], sa["lam"], 1e-9, 1e-15, "lam")
        assert_close(q.detach(), p.detach(), 1e-11, 1e-13, "param")
    assert switched >= 2, "the test should see tensors switch (raise switch_tol)"


def test_cli_build_kernels_prints_the_cache(monkeypatch):
    from typer.testing import CliRunner

    from descentlab.cli import app

    _need_kernels()
    result = CliRunner().invoke(app, ["build-kernels"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(cpu.build_directory())

    def broken(verbose=False):
        raise RuntimeError("descentlab kernels could not be built: no compiler (test)")

    monkeypatch.setattr(cpu, "build", broken)
    result = CliRunner().invoke(app, ["build-kernels"])
    assert result.exit_code == 2
    assert "no compiler (test)" in result.output


@pytest.mark.parametrize("name", KERNEL_NAMES)
def test_tensors_at_different_steps_in_one_call(name):
    # a parameter without a gradient for the first steps lags behind the others of its
    # group: one kernel call then sees several step counts (and NAdam several mu_products)
    _need_kernels()

    def run(impl):
        params = _params([torch.float64] * 4)
        opt = descentlab.create(name, params, impl=impl)
        gen = torch.Generator().manual_seed(2)
        for t in range(12):
            for i, p in enumerate(params):
                g = torch.randn(p.shape, generator=gen, dtype=torch.float64)
                p.grad = None if (i == 2 and t < 4) else g
            opt.step()
        return params, opt

    (slow, a), (fast, b) = run("forloop"), run("fused")
    assert b.state[fast[2]]["step"] == 8 and b.state[fast[0]]["step"] == 12
    for p, q in zip(slow, fast):
        assert_close(q.detach(), p.detach(), 1e-11, 1e-13, name)
        for key, value in a.state[p].items():
            assert_close(b.state[q][key], value, 1e-11, 1e-13, f"{name} state {key}")


def test_a_lock_left_by_a_killed_build_is_removed_and_a_fresh_one_kept(tmp_path):
    import os
    import time

    from descentlab.optim.kernels.cpu import clear_stale_lock

    assert not clear_stale_lock(tmp_path)  # no lock
    lock = tmp_path / "lock"
    lock.touch()
    assert not clear_stale_lock(tmp_path) and lock.exists()  # a build may be running
    old = time.time() - 3600
    os.utime(lock, (old, old))
    assert clear_stale_lock(tmp_path) and not lock.exists()


def test_a_built_extension_loads_past_a_lock_that_a_killed_process_left():
    """A new process loads the built kernels without torch's build lock: the lab's SIGKILLed
    workers can leave it behind (torch's load() takes it for a no-op ninja in every process),
    and every later process would wait on it forever."""
    import os
    import subprocess
    import sys

    from descentlab.optim.kernels import cpu

    if cpu.unavailable_reason() is not None:
        pytest.skip(f"compiled kernels unavailable here: {cpu.unavailable_reason()}")
    lock = cpu.build_directory() / "lock"
    lock.touch()  # fresh: no stale-lock rule would clear it
    try:
        done = subprocess.run(
            [sys.executable, "-c", "from descentlab.optim.kernels import cpu; cpu.build()"],
            env={**os.environ}, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        lock.unlink()
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_build_is_announced_once_whatever_the_processes_and_within_80_columns(
    tmp_path, monkeypatch, caplog
):
    """The lab's workers all wait for one build: only the process that starts it says so (the
    others find its marker file, created with O_EXCL, so across processes), in lines of at most
    80 columns; the marker goes when the build ends, so a later build is announced again."""
    from descentlab.optim.kernels import cpu

    assert all(len(line) <= 80 for line in cpu.BUILDING.splitlines())
    others = []

    class Extension:  # a build during which two more workers start loading
        @staticmethod
        def load(**kwargs):
            others.append(cpu._announce(tmp_path))
            others.append(cpu._announce(tmp_path))
            return "module"

    monkeypatch.setattr(cpu, "build_directory", lambda: tmp_path)
    monkeypatch.setattr(cpu, "_cpp_extension", lambda: Extension)
    with caplog.at_level("WARNING", logger=cpu.__name__):
        assert cpu._load() == "module"
    assert others == [None, None]
    assert [r.getMessage() for r in caplog.records] == [cpu.BUILDING]
    assert not (tmp_path / "announced").exists()
    caplog.clear()
    with caplog.at_level("WARNING", logger=cpu.__name__):
        cpu._load()
    assert len(caplog.records) == 1


@pytest.mark.parametrize("name", ["sgdm", "adam", "radam", "rmsprop", "adabound", "nadam"])
def test_grad_scaler_unscales_in_the_step_and_an_inf_step_changes_nothing(name):
    """torch.amp.GradScaler hands descentlab's optimizers grad_scale and found_inf, as torch's
    fused ones: scaled steps equal unscaled ones, and an inf step leaves everything as it was."""
    runs = []
    for scaled in (False, True):
        torch.manual_seed(0)
        model = torch.nn.Linear(5, 3)
        opt = descentlab.create(name, model.parameters(), lr=1e-2)
        scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, enabled=scaled)
        x = torch.randn(8, 5)
        for t in range(6):
            opt.zero_grad()
            scaler.scale(model(x * (t + 1)).square().mean()).backward()
            if t == 3:
                model.weight.grad[0, 0] = float("inf")
                before = [p.detach().clone() for p in model.parameters()]
                state = {k: v.clone() for k, v in opt.state[model.weight].items()}
            scaler.step(opt)
            scaler.update()
            if t == 2:
                after_three = [p.detach().clone() for p in model.parameters()]
            if t == 3 and scaled:  # skipped: parameters, state and step counter untouched
                assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before))
                for key, value in state.items():
                    assert torch.equal(opt.state[model.weight][key], value), key
        runs.append((after_three, opt, model))
    (a, oa, ma), (b, ob, mb) = runs
    for p, q in zip(a, b):  # three scaled steps equal three unscaled ones (scale: 2^10, exact)
        torch.testing.assert_close(q, p, rtol=1e-6, atol=1e-7)
    assert float(ob.state[mb.weight]["step"]) == float(oa.state[ma.weight]["step"]) - 1
    assert all(torch.isfinite(p).all() for p in mb.parameters())


@pytest.mark.parametrize("name", ["adam", "radam", "nadam", "sgdwm", "swats"])
def test_state_moves_between_paths_and_devices_in_lock_step(name, tmp_path):
    """A foreach run's state continues on the readable path in lock step with the
    uninterrupted run; a CPU state dict loads onto meta parameters with the step counters on
    the parameters' device."""
    params = _params([torch.float64] * 4)
    twin = [torch.nn.Parameter(p.detach().clone()) for p in params]
    opts = {"run": descentlab.create(name, params, impl="foreach")}
    gen = torch.Generator().manual_seed(3)
    for t in range(12):
        grads = [torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in params]
        if t == 6:
            torch.save(opts["run"].state_dict(), tmp_path / "opt.pt")
            for p, q in zip(params, twin):
                q.data.copy_(p.detach())
            opts["resumed"] = descentlab.create(name, twin, impl="forloop")
            opts["resumed"].load_state_dict(torch.load(tmp_path / "opt.pt", weights_only=False))
        for p, q, g in zip(params, twin, grads):
            p.grad, q.grad = g, g.clone()
        opts["run"].step()
        if "resumed" in opts:
            opts["resumed"].step()
            for p, q in zip(params, twin):
                assert_close(q.detach(), p.detach(), 1e-11, 1e-13, f"{name} step {t}")
    meta = [torch.nn.Parameter(torch.empty_like(p, device="meta")) for p in params]
    on_meta = descentlab.create(name, meta)
    on_meta.load_state_dict(torch.load(tmp_path / "opt.pt", weights_only=False))
    assert all(on_meta.state[p]["step"].device.type == "meta" for p in meta)


_TRITON_DISPATCH = """
import importlib, torch, descentlab
from descentlab.optim import kernels
triton = importlib.import_module("descentlab.optim.kernels.triton")
from descentlab.optim.kernels import rules
select = kernels.select
kernels.select = lambda device, **kw: (  # the CUDA choice, for CPU tensors
    triton if kw["compiled"] and not kw["torch_fused"] else select(device, **kw)
)
rules.select = lambda rule, device, **kw: rules.compiled(rule, "cuda")  # generated Triton
for name in ["rmsprop", "nadam", "radam", "adabound", "amsbound", "sgdw", "sgdwm", "swats",
             "lookahead(sgdw)"]:
    runs = []
    for impl in ("forloop", "auto"):
        torch.manual_seed(0)
        ps = [torch.nn.Parameter(torch.randn(s, dtype=torch.float64)) for s in [(3,), (7, 5), ()]]
        opt = descentlab.create(name, ps, lr=1e-2, impl=impl)
        for t in range(7):
            for p in ps:
                p.grad = torch.sin(p.detach() * (t + 1))
            opt.step()
        runs.append(ps)
    inner = getattr(opt, "base_optimizer", opt)
    assert all(b.kernels is triton or isinstance(b.kernels, rules.Compiled)
               for plan in inner._plans.values() for b in plan.buckets)
    for p, q in zip(*runs):
        torch.testing.assert_close(q, p, rtol=1e-12, atol=1e-14, msg=name)
print("ok")
"""


def test_the_cuda_dispatch_drives_the_triton_kernels_like_the_readable_path():
    """The optimizers' calls into the Triton kernels (their CUDA path), run under the Triton
    interpreter on CPU tensors in a subprocess (TRITON_INTERPRET is read at import)."""
    import os
    import subprocess
    import sys

    pytest.importorskip("triton")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    out = subprocess.run(
        [sys.executable, "-c", _TRITON_DISPATCH], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]
