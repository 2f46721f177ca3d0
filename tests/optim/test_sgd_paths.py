"""Plain SGD's fast path takes any lr torch's fused SGD takes: a tensor, one above float32's range.

A guard against a `torch._foreach_add_(params, grads, alpha=-lr)` shortcut (torch.optim's foreach
path) without a check: it raises on a tensor lr or one the dtype cannot hold.
"""

from __future__ import annotations

import pytest
import torch

import descentlab
from descentlab.optim.kernels import cpu


@pytest.mark.parametrize(
    "lr",
    [0.1, torch.tensor(0.1), 1e39, 1e300],  # 1e39 and 1e300 do not fit in float32
    ids=["float", "tensor", "above-float32", "huge"],
)
@pytest.mark.parametrize("maximize", [False, True])
def test_plain_sgd_fast_path_equals_torch_fused(lr, maximize):
    gen = torch.Generator().manual_seed(0)
    values = [torch.randn(5, 3, generator=gen), torch.randn(4, generator=gen)]
    runs = {}
    for impl in ("torch", "auto"):  # torch.optim.SGD(fused=True): it takes any lr
        params = [torch.nn.Parameter(v.clone()) for v in values]
        if impl == "torch":
            opt = torch.optim.SGD(params, lr=lr, maximize=maximize, fused=True)
        else:
            opt = descentlab.create("sgd", params, lr=lr, maximize=maximize, impl=impl)
        for t in range(3):
            for p in params:
                p.grad = torch.full_like(p, 1e-3 * (t + 1))
            opt.step()
        runs[impl] = params
    for p, q in zip(runs["torch"], runs["auto"]):
        torch.testing.assert_close(q.detach(), p.detach(), rtol=1e-6, atol=0, equal_nan=True)


@pytest.mark.parametrize("kernels", ["compiled", "torch-fused"])
@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_switched_on_mid_run_equals_torch(kernels, nesterov, monkeypatch):
    """Momentum turned on after some steps starts its buffer at that step's gradient, as torch.

    (Tolerances: fused multiply-adds round differently from torch's loop.)
    """
    if kernels == "torch-fused":
        monkeypatch.setattr(cpu, "ready", lambda: None)
    elif cpu.unavailable_reason() is not None:
        pytest.skip(f"compiled kernels unavailable here: {cpu.unavailable_reason()}")
    gen = torch.Generator().manual_seed(0)
    values = [
        torch.randn(5, 3, generator=gen, dtype=torch.float64),
        torch.randn(70_000, dtype=torch.float64, generator=gen),
    ]
    runs = {}
    for who in ("torch", "descentlab"):
        params = [torch.nn.Parameter(v.clone()) for v in values]
        if who == "torch":
            opt = torch.optim.SGD(params, lr=0.1, foreach=False)
        else:
            opt = descentlab.create("sgd", params, lr=0.1)
        for t in range(8):
            if t == 3:
                opt.param_groups[0].update(momentum=0.9, nesterov=nesterov)
            for p in params:
                p.grad = torch.sin(p.detach() * (t + 1))
            opt.step()
        runs[who] = (params, opt)
    (ps, topt), (qs, dopt) = runs["torch"], runs["descentlab"]
    for p, q in zip(ps, qs):
        torch.testing.assert_close(q.detach(), p.detach(), rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(
            dopt.state[q]["momentum_buffer"],
            topt.state[p]["momentum_buffer"],
            rtol=1e-10,
            atol=1e-12,
        )
