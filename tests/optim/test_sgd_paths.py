"""Plain SGD's fast path takes any lr torch's fused SGD takes: a tensor, one above float32's range.

A guard against a `torch._foreach_add_(params, grads, alpha=-lr)` shortcut (torch.optim's foreach
path) without a check: it raises on a tensor lr or one the dtype cannot hold.
"""

from __future__ import annotations

import pytest
import torch

import descentlab


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
