"""The foreach path (``impl="foreach"``: descentlab/optim/kernels/foreach.py, or a rule run over
the lists, kernels/rules.py) equals the readable path.

Every optimizer of the case table steps twice from the same start: with ``impl="forloop"`` and
with ``impl="foreach"``, step by step, in float32 and float64, with the
case's two groups of non-default hyperparameters; then once more on 324 tensors.
"""

from __future__ import annotations

import pytest
import torch

import descentlab
from descentlab.optim.kernels import foreach, rules

from ._harness import assert_close, clone_groups, flat, make_groups, set_grads, with_hparams
from .cases import CASES

TOL = {torch.float32: (1e-5, 1e-6), torch.float64: (1e-11, 1e-13)}


def foreach_optimizer(name, groups, **kw):
    return descentlab.create(name, groups, impl="foreach", **kw)


def _foreach_tensors(opt) -> int:
    """How many tensors the plans put on the foreach path."""
    buckets = [b for plan in opt._plans.values() for b in plan.buckets]
    assert all(b.kernels in (foreach, rules.Foreach) for b in buckets)
    return sum(len(b.params) for b in buckets)


def _agree(a, b, pa, pb, tol, what):
    for i, (p, q) in enumerate(zip(pa, pb)):
        assert_close(q.detach(), p.detach(), *tol, f"{what}: param {i}")
        sa, sb = a.state[p], b.state[q]
        assert sa.keys() == sb.keys(), f"{what}: param {i} state keys"
        for key in sa:
            assert_close(sb[key], sa[key], *tol, f"{what}: param {i} state {key!r}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_foreach_equals_the_readable_path_step_by_step(case, dtype):
    groups = make_groups(dtype)
    twin = clone_groups(groups)
    slow = descentlab.create(case.name, with_hparams(groups, case.groups), impl="forloop")
    fast = foreach_optimizer(case.name, with_hparams(twin, case.groups))
    for t in range(1, case.steps + 1):
        set_grads(groups, t)
        set_grads(twin, t)
        slow.step()
        fast.step()
        _agree(slow, fast, flat(groups), flat(twin), TOL[dtype], f"{case} step {t}")
    assert _foreach_tensors(fast) == 3  # all but the non-contiguous view


def _many(seed: int) -> list[list[torch.nn.Parameter]]:
    """Two groups, 324 tensors in all, of sizes 1 to 300 (and some 0-d)."""
    gen = torch.Generator().manual_seed(seed)
    shapes = [(), (1,), (7,), (3, 5), (300,), (2, 3, 4)] * 54
    params = [
        torch.nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float64)) for s in shapes
    ]
    return [params[:200], params[200:]]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_foreach_on_324_tensors_in_two_calls(case):
    groups = _many(0)
    twin = clone_groups(groups)
    slow = descentlab.create(case.name, with_hparams(groups, case.groups), impl="forloop")
    fast = foreach_optimizer(case.name, with_hparams(twin, case.groups))
    for t in range(1, 16):
        set_grads(groups, t)
        set_grads(twin, t)
        slow.step()
        fast.step()
    _agree(slow, fast, flat(groups), flat(twin), TOL[torch.float64], str(case))
    assert _foreach_tensors(fast) == 324


def test_lookahead_sync_and_noise_add():
    gen = torch.Generator().manual_seed(0)
    fast = [torch.randn(s, generator=gen) for s in [(3,), (4, 5), ()]]
    slow = [torch.randn_like(p) for p in fast]
    expected = [s + 0.3 * (p - s) for p, s in zip(fast, slow)]
    foreach.lookahead_sync(slow, fast, alpha=0.3)
    for p, s, e in zip(fast, slow, expected):
        torch.testing.assert_close(s, e)
        assert torch.equal(p, s)
    grads = [torch.randn_like(p) for p in fast]
    noise = [torch.randn_like(p) for p in fast]
    expected = [g + 0.5 * n for g, n in zip(grads, noise)]
    out = foreach.noise_add(noise, grads, std=0.5)
    for o, e in zip(out, expected):
        torch.testing.assert_close(o, e)
