"""The Triton kernels printed from a rule (Lion's), on CPU tensors under the interpreter, and
compiled for sm_90 by Triton's real compiler without a GPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

if os.environ.get("DESCENTLAB_TRITON_COMPILE") != "1":
    os.environ["TRITON_INTERPRET"] = "1"  # read when the kernels are defined (imported) below

import pytest
import torch

triton = pytest.importorskip("triton")

from descentlab.optim._rules.rule import BUILTIN  # noqa: E402
from descentlab.optim.kernels import rules  # noqa: E402
from descentlab.optim.kernels.triton import _table  # noqa: E402

from .test_rules import Lion  # noqa: E402

SHAPES = [(5, 13), (33,), (), (64,)]  # across the shrunk chunk (64) and block (32)


@pytest.fixture(autouse=True)
def small_tables():
    old = _table.configure(chunk=64, block=32)
    yield
    _table.configure(chunk=old[0], block=old[1])


def _pair(dtype, **hparams):
    gen = torch.Generator().manual_seed(0)
    ps = [torch.nn.Parameter(torch.randn(s, generator=gen).to(dtype)) for s in SHAPES]
    qs = [torch.nn.Parameter(p.detach().clone()) for p in ps]
    slow = Lion(ps, impl="forloop", **hparams)
    fast = Lion(qs, **hparams)
    return ps, qs, slow, fast


def _grads(params, t, scale=1.0):
    for i, p in enumerate(params):
        gen = torch.Generator().manual_seed(100 * t + i)
        p.grad = (scale * torch.randn(p.shape, generator=gen)).to(p.dtype)


def _triton_step(opt, params, **amp):
    """The optimizer's step with its buckets on the Triton kernels (CPU tensors, interpreted)."""
    kernel = rules.compiled(opt._rule, "cuda")
    group = opt.param_groups[0]
    for p in params:
        state = opt.state[p]
        if not state:
            state["step"] = torch.tensor(0.0)
            opt._init_state(group, p, state)
    opt._fused(
        group, params, [p.grad for p in params], [opt.state[p] for p in params], kernel, **amp
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_the_triton_kernels_equal_the_readable_path(dtype):
    """Step by step; bfloat16 from the readable path's state at each step (a rounding apart in
    the momentum can flip a sign, which Lion's update then carries)."""
    ps, qs, slow, fast = _pair(dtype, lr=0.05, weight_decay=0.1, maximize=True)
    before = _table.LAUNCHES.total()
    tol = {torch.float64: (1e-14, 1e-15), torch.float32: (1e-6, 1e-7)}.get(dtype, (2e-2, 2e-2))
    for t in range(1, 5):
        _grads(ps, t)
        _grads(qs, t)
        slow.step()
        _triton_step(fast, qs)
        for p, q in zip(ps, qs):
            torch.testing.assert_close(q.detach(), p.detach(), rtol=tol[0], atol=tol[1])
            m, n = slow.state[p]["exp_avg"], fast.state[q]["exp_avg"]
            torch.testing.assert_close(n, m, rtol=tol[0], atol=tol[1])
            if dtype is torch.bfloat16:
                q.data.copy_(p.detach())
                n.copy_(m)
    assert _table.LAUNCHES.total() - before == 2 * 4  # whole blocks, tails: per step


def test_gradscaler_in_the_triton_kernels():
    """An inf step changes nothing; a scaled one divides the gradients in the kernel and leaves
    them unscaled, as torch's fused kernels do."""
    ps, qs, slow, fast = _pair(torch.float32, lr=0.05)
    _grads(qs, 1, scale=8.0)
    before = [q.detach().clone() for q in qs]
    _triton_step(fast, qs, grad_scale=torch.tensor(8.0), found_inf=torch.tensor(1.0))
    assert all(torch.equal(q.detach(), b) for q, b in zip(qs, before))
    _triton_step(fast, qs, grad_scale=torch.tensor(8.0), found_inf=torch.tensor(0.0))
    _grads(ps, 1)
    slow.step()
    for p, q in zip(ps, qs):
        torch.testing.assert_close(q.grad, p.grad)
        torch.testing.assert_close(q.detach(), p.detach())


def _compile_rules() -> None:
    """Compile Lion's kernels and every built-in rule's (all flags off, the most on) to PTX for
    sm_90: whole-block and tail variants, float32 and bfloat16."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    compiled = 0
    for rule in [Lion._rule, *(BUILTIN[name] for name in sorted(BUILTIN))]:
        module = rules._load_module(rule.stem, rule.triton())
        most = max(module.KERNELS, key=lambda c: bin(c).count("1"))  # the most flags on
        for combo, fn in module.KERNELS.items():
            if rule is not Lion._rule and combo not in (0, most):
                continue
            for dtype, full in [(torch.float32, True), (torch.bfloat16, True),
                                (torch.float32, False)]:  # fmt: skip
                cx = dict(L=len(rule.signature.lists), HAS_SCALE=True, HAS_INF=True,
                          DT=_table.element_type(dtype), CT=_table.compute_type(dtype),
                          FULL=full, BLOCK=1024)  # fmt: skip
                sig = {"H": "*fp64", "V": "*fp64", "NT": "i32", "GRAD_SCALE": "*fp32",
                       "FOUND_INF": "*fp32"}  # fmt: skip
                sig = {n: "constexpr" if n in cx else sig.get(n, "*i64") for n in fn.arg_names}
                consts = {(fn.arg_names.index(n),): v for n, v in cx.items()}
                kernel = triton.compile(
                    ASTSource(fn, sig, constexprs=consts), target=GPUTarget("cuda", 90, 32)
                )
                ptx = kernel.asm["ptx"]
                assert "div.approx" not in ptx and kernel.asm["cubin"]
                vector = "ld.global.v" in ptx and "st.global.v" in ptx
                assert vector == full, (rule.name, combo, dtype, full)
                compiled += 1
    print(f"compiled {compiled} kernels")


@pytest.mark.slow
def test_the_generated_kernels_compile_for_the_gpu_without_one():
    if "nvidia" not in triton.backends.backends:
        pytest.skip("Triton's NVIDIA backend is not installed")
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "DESCENTLAB_TRITON_COMPILE": "1",
           "TRITON_INTERPRET": "0"}  # fmt: skip
    code = "import tests.optim.test_rules_triton as t; t._compile_rules()"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=root, timeout=600, check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"compiled {6 + 6 * len(BUILTIN)} kernels" in run.stdout
