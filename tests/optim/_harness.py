"""Parameters, gradients and comparisons shared by the optimizer tests."""

from __future__ import annotations

import math

import torch
from torch import nn

ALIASES = {"k": "step"}  # reference state key -> descentlab state key


def make_groups(dtype: torch.dtype = torch.float64, seed: int = 0) -> list[list[nn.Parameter]]:
    """A scalar and a matrix in group 0; a non-contiguous view and a vector in group 1."""
    gen = torch.Generator().manual_seed(seed)
    real = torch.float64 if dtype.is_complex else dtype

    def r(*shape):
        x = torch.randn(shape, generator=gen, dtype=real)
        if dtype.is_complex:
            x = torch.complex(x, torch.randn(shape, generator=gen, dtype=real))
        return x

    noncontig = nn.Parameter(r(6, 3).t())
    assert not noncontig.is_contiguous()
    return [[nn.Parameter(r()), nn.Parameter(r(5, 4))], [noncontig, nn.Parameter(r(7))]]


def clone_groups(groups: list[list[nn.Parameter]]) -> list[list[nn.Parameter]]:
    return [[nn.Parameter(p.detach().clone()) for p in g] for g in groups]


def with_hparams(groups, hparams) -> list[dict]:
    return [{"params": g, **h} for g, h in zip(groups, hparams)]


def set_grads(groups, t: int) -> None:
    """A deterministic gradient that depends on the parameters (a quadratic) and on the step."""
    for i, p in enumerate(q for g in groups for q in g):
        gen = torch.Generator().manual_seed(1000 * t + i)
        noise = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype)
        p.grad = (0.3 * p.detach() + noise * math.cos(t)).to(p.dtype)


def flat(groups) -> list[nn.Parameter]:
    return [p for g in groups for p in g]


def assert_close(a, b, rtol: float, atol: float, what: str) -> None:
    if torch.is_tensor(a) or torch.is_tensor(b):
        # a Python number becomes a float64 tensor: as_tensor's float32 would hide its digits
        a, b = (x if torch.is_tensor(x) else torch.tensor(x, dtype=torch.float64) for x in (a, b))
        if a.dtype != b.dtype:
            a, b = a.to(torch.float64), b.to(torch.float64)
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol, msg=lambda m: f"{what}: {m}")
    elif isinstance(a, float) or isinstance(b, float):
        assert math.isclose(a, b, rel_tol=rtol, abs_tol=atol), f"{what}: {a} != {b}"
    else:
        assert a == b, f"{what}: {a!r} != {b!r}"


def compare_states(ours, theirs, params_ours, params_theirs, rtol, atol, t, require_all=True):
    """Compare parameters and every state entry the reference keeps."""
    for i, (p, q) in enumerate(zip(params_ours, params_theirs)):
        assert_close(p.detach(), q.detach(), rtol, atol, f"step {t}: param {i}")
        so, st = ours.state[p], theirs.state[q]
        for key, value in st.items():
            mine = ALIASES.get(key, key)
            if mine not in so:
                assert not require_all, f"step {t}: param {i}: state {key!r} missing"
                continue
            assert_close(so[mine], value, rtol, atol, f"step {t}: param {i}: state {key!r}")
