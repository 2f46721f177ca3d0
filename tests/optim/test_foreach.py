"""The foreach path (descentlab/optim/kernels/foreach.py) equals the readable path.

Every optimizer of the case table steps twice from the same start: with ``impl="forloop"`` and
with its fast path on the foreach functions, step by step, in float32 and float64, with the
case's two groups of non-default hyperparameters; then once more on 324 tensors.
"""

from __future__ import annotations

import types

import pytest
import torch

import descentlab
from descentlab.optim.kernels import _scalars as S
from descentlab.optim.kernels import foreach

from ._harness import assert_close, clone_groups, flat, make_groups, set_grads, with_hparams
from .cases import CASES

TOL = {torch.float32: (1e-5, 1e-6), torch.float64: (1e-11, 1e-13)}


def _vec(t: torch.Tensor, values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=t.dtype, device=t.device)


def _sgd(opt, group, params, grads, states, k):
    t = S.advance(states)
    first = S.first_steps(t)
    l2, dec = S.decay(group)
    buffers = []
    if group["momentum"] != 0:
        fresh = ["momentum_buffer" not in s for s in states]
        for p, s in zip(params, states):
            s.setdefault("momentum_buffer", torch.zeros_like(p))
        if any(fresh):  # momentum switched on after the first step: b_1 = g_1 now
            first = torch.maximum(first, _vec(t, fresh))
        buffers = [s["momentum_buffer"] for s in states]
    k.momentum_sgd(
        params,
        grads,
        buffers,
        lr=torch.zeros_like(t) + group["lr"],
        first=first,
        momentum=group["momentum"],
        dampening=group["dampening"],
        nesterov=group["nesterov"],
        l2_weight_decay=l2,
        decay=dec,
        maximize=group["maximize"],
    )


def _adam(opt, group, params, grads, states, k):
    bc1, bc2 = S.adam(group, S.advance(states))
    l2, dec = S.decay(group)
    b1, b2 = group["betas"]
    k.adam(
        params,
        grads,
        [s["exp_avg"] for s in states],
        [s["exp_avg_sq"] for s in states],
        [s["max_exp_avg_sq"] for s in states] if group["amsgrad"] else [],
        bc1=bc1,
        bc2=bc2,
        lr=group["lr"],
        beta1=b1,
        beta2=b2,
        eps=group["eps"],
        l2_weight_decay=l2,
        decay=dec,
        amsgrad=group["amsgrad"],
        maximize=group["maximize"],
    )


def _adagrad(opt, group, params, grads, states, k):
    k.adagrad(
        params,
        grads,
        [s["sum"] for s in states],
        clr=S.adagrad(group, S.advance(states)),
        eps=group["eps"],
        weight_decay=group["weight_decay"],
        maximize=group["maximize"],
    )


def _rmsprop(opt, group, params, grads, states, k):
    S.advance(states)
    k.rmsprop(
        params,
        grads,
        [s["square_avg"] for s in states],
        [s["grad_avg"] for s in states] if group["centered"] else [],
        [s["momentum_buffer"] for s in states] if group["momentum"] > 0 else [],
        lr=group["lr"],
        alpha=group["alpha"],
        eps=group["eps"],
        weight_decay=group["weight_decay"],
        momentum=group["momentum"],
        maximize=group["maximize"],
    )


def _nadam(opt, group, params, grads, states, k):
    t = S.advance(states)
    c_grad, c_avg = S.nadam(group, t, [s["mu_product"] for s in states])
    l2, dec = S.decay(group)
    b1, b2 = group["betas"]
    k.nadam(
        params,
        grads,
        [s["exp_avg"] for s in states],
        [s["exp_avg_sq"] for s in states],
        c_grad=c_grad,
        c_avg=c_avg,
        bc2=1 - b2**t,
        beta1=b1,
        beta2=b2,
        eps=group["eps"],
        l2_weight_decay=l2,
        decay=dec,
        maximize=group["maximize"],
    )


def _radam(opt, group, params, grads, states, k):
    bc1, rect, adapt = S.radam(group, S.advance(states))
    l2, dec = S.decay(group)
    b1, b2 = group["betas"]
    k.radam(
        params,
        grads,
        [s["exp_avg"] for s in states],
        [s["exp_avg_sq"] for s in states],
        bc1=bc1,
        rect=rect,
        adapt=adapt,
        lr=group["lr"],
        beta1=b1,
        beta2=b2,
        eps=group["eps"],
        l2_weight_decay=l2,
        decay=dec,
        maximize=group["maximize"],
    )


def _adabound(opt, group, params, grads, states, k):
    step_size, lower, upper = S.adabound(group, S.advance(states))
    b1, b2 = group["betas"]
    k.adabound(
        params,
        grads,
        [s["exp_avg"] for s in states],
        [s["exp_avg_sq"] for s in states],
        [s["max_exp_avg_sq"] for s in states] if group["amsbound"] else [],
        step_size=step_size,
        lower=lower,
        upper=upper,
        beta1=b1,
        beta2=b2,
        eps=group["eps"],
        l2_weight_decay=group["weight_decay"],
        maximize=group["maximize"],
    )


def _swats(opt, group, params, grads, states, k):
    t = S.advance(states)
    (b1, _), wd = group["betas"], group["weight_decay"]
    adam = [i for i, s in enumerate(states) if not s["switch_step"]]
    sgd = [i for i, s in enumerate(states) if s["switch_step"]]
    if sgd:
        rates = [(1 - b1) * states[i]["sgd_lr"] / states[i]["switch_lr"] for i in sgd]
        k.momentum_sgd(
            [params[i] for i in sgd],
            [grads[i] for i in sgd],
            [states[i]["momentum_buffer"] for i in sgd],
            lr=_vec(t, rates) * group["lr"],
            first=t.new_zeros(len(sgd)),
            momentum=b1,
            dampening=0.0,
            nesterov=False,
            l2_weight_decay=wd,
            decay=1.0,
            maximize=group["maximize"],
        )
    if not adam:
        return
    ta = t[adam]
    dots = k.swats_adam(
        [params[i] for i in adam],
        [grads[i] for i in adam],
        [states[i]["exp_avg"] for i in adam],
        [states[i]["exp_avg_sq"] for i in adam],
        coef=S.swats(group, ta),
        beta1=b1,
        beta2=group["betas"][1],
        eps=group["eps"],
        l2_weight_decay=wd,
        maximize=group["maximize"],
    ).tolist()
    for i, step, (pg, pp) in zip(adam, ta.tolist(), dots):
        opt._switch(group, states[i], int(step), pg, pp)


GLUE = {
    "SGD": _sgd,
    "SGDW": _sgd,
    "Adam": _adam,
    "AdamW": _adam,
    "Adagrad": _adagrad,
    "RMSprop": _rmsprop,
    "NAdam": _nadam,
    "RAdam": _radam,
    "AdaBound": _adabound,
    "SWATS": _swats,
}


def foreach_optimizer(name, groups, **kw):
    """A registry optimizer whose fast path is the foreach functions, for every tensor."""
    opt = descentlab.create(name, groups, impl="fused", **kw)
    glue = GLUE[type(opt).__name__]
    opt.foreach_tensors = 0  # how many tensors the foreach path updated, over all steps

    def fused(self, group, params, grads, states):
        self.foreach_tensors += len(params)
        glue(self, group, params, grads, states, foreach)

    opt._fused = types.MethodType(fused, opt)
    opt._fused_available = lambda: True
    opt._fused_supported = lambda p, g: g.is_contiguous()
    return opt


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
    assert fast.foreach_tensors == 3 * case.steps  # all but the non-contiguous view


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
    assert fast.foreach_tensors == 324 * 15


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
