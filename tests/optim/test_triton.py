"""descentlab's Triton kernels (optim/kernels/triton), run on CPU tensors under the interpreter.

Every kernel steps in lock-step with the optimizer's readable path (``impl="forloop"``), fed the
scalars that path uses at each step count; the tables are checked for launches that do not grow
with the number of tensors; the operators are traced by torch.compile without graph breaks or
recompiles. Interpreted Triton costs about 10-30 ms per program, so the sizes are small and the
chunk and block are shrunk (``configure``) so that the same sizes straddle their boundaries.
"""

from __future__ import annotations

import math
import os

os.environ["TRITON_INTERPRET"] = "1"  # read when the kernels are defined (imported) below

import pytest
import torch

triton = pytest.importorskip("triton")

import descentlab  # noqa: E402
from descentlab.optim import AdaBound, NAdam, RAdam  # noqa: E402
from descentlab.optim.kernels import triton as tk  # noqa: E402
from descentlab.optim.kernels.triton import _table  # noqa: E402

from ._harness import assert_close  # noqa: E402

SMALL = dict(chunk=64, block=32)  # the shrunk configuration of most tests
# (5, 13) = chunk + 1: two work items, the first of two blocks; 33 = block + 1: two blocks
SHAPES = [[(5, 13)], [(33,)]]
F64 = torch.float64


@pytest.fixture(autouse=True)
def small_tables():
    assert triton.knobs.runtime.interpret, "the kernels were imported before TRITON_INTERPRET=1"
    old = _table.configure(**SMALL)
    yield
    _table.configure(chunk=old[0], block=old[1])


def vec(values, device="cpu") -> torch.Tensor:
    return torch.tensor(values, dtype=F64, device=device)


# ------------------------------------------------------------------ drivers: the fast path
# Each feeds a kernel what the readable path uses at step t (per-tensor scalars from t).
def drive_rmsprop(group, ps, gs, states, ts):
    tk.rmsprop(
        params=ps,
        grads=gs,
        square_avg=[s["square_avg"] for s in states],
        grad_avg=[s["grad_avg"] for s in states] if group["centered"] else [],
        momentum_buffer=[s["momentum_buffer"] for s in states] if group["momentum"] > 0 else [],
        lr=group["lr"],
        alpha=group["alpha"],
        eps=group["eps"],
        weight_decay=group["weight_decay"],
        momentum=group["momentum"],
        maximize=group["maximize"],
    )


def _decay(group):
    lr, wd = group["lr"], group["weight_decay"]
    return (0.0, 1 - lr * wd) if group["decoupled_weight_decay"] else (wd, 1.0)


def drive_nadam(group, ps, gs, states, ts):
    pairs = [NAdam.coefficients(group, t, s["mu_product"]) for t, s in zip(ts, states)]
    l2, decay = _decay(group)
    b1, b2 = group["betas"]
    tk.nadam(
        params=ps,
        grads=gs,
        exp_avg=[s["exp_avg"] for s in states],
        exp_avg_sq=[s["exp_avg_sq"] for s in states],
        c_grad=vec([c for c, _ in pairs]),
        c_avg=vec([c for _, c in pairs]),
        bc2=vec([1 - b2**t for t in ts]),
        beta1=b1,
        beta2=b2,
        eps=group["eps"],
        l2_weight_decay=l2,
        decay=decay,
        maximize=group["maximize"],
    )


def drive_radam(group, ps, gs, states, ts):
    l2, decay = _decay(group)
    b1, b2 = group["betas"]
    rect = [RAdam.rectification(b2, t) for t in ts]
    tk.radam(
        params=ps,
        grads=gs,
        exp_avg=[s["exp_avg"] for s in states],
        exp_avg_sq=[s["exp_avg_sq"] for s in states],
        bc1=vec([1 - b1**t for t in ts]),
        rect=vec([-1.0 if r is None else r for r in rect]),
        adapt=vec([math.sqrt(1 - b2**t) for t in ts]),
        lr=group["lr"],
        beta1=b1,
        beta2=b2,
        eps=group["eps"],
        l2_weight_decay=l2,
        decay=decay,
        maximize=group["maximize"],
    )


def drive_adabound(group, ps, gs, states, ts):
    bounds = [AdaBound.bounds(group, t) for t in ts]
    tk.adabound(
        params=ps,
        grads=gs,
        exp_avg=[s["exp_avg"] for s in states],
        exp_avg_sq=[s["exp_avg_sq"] for s in states],
        max_exp_avg_sq=[s["max_exp_avg_sq"] for s in states] if group["amsbound"] else [],
        step_size=vec([b[0] for b in bounds]),
        lower=vec([b[1] for b in bounds]),
        upper=vec([b[2] for b in bounds]),
        beta1=group["betas"][0],
        beta2=group["betas"][1],
        eps=group["eps"],
        l2_weight_decay=group["weight_decay"],
        maximize=group["maximize"],
    )


def drive_sgd(group, ps, gs, states, ts):
    l2, decay = _decay(group)
    tk.momentum_sgd(
        params=ps,
        grads=gs,
        momentum_buffer=[s["momentum_buffer"] for s in states] if group["momentum"] else [],
        lr=vec([group["lr"]] * len(ps)),
        first=torch.tensor([t == 1 for t in ts]),
        momentum=group["momentum"],
        dampening=group["dampening"],
        nesterov=group["nesterov"],
        l2_weight_decay=l2,
        decay=decay,
        maximize=group["maximize"],
    )


SWITCH_STATE = ("switch_step", "lam", "sgd_lr", "switch_lr")


def drive_swats(group, ps, gs, states, ts):
    lr, (b1, b2) = group["lr"], group["betas"]
    for s in states:  # the device path keeps the switch state as 0-d float64 tensors
        for key in SWITCH_STATE:
            if not torch.is_tensor(s[key]):
                s[key] = torch.tensor(float(s[key]), dtype=F64)
    tk.swats(
        params=ps,
        grads=gs,
        exp_avg=[s["exp_avg"] for s in states],
        exp_avg_sq=[s["exp_avg_sq"] for s in states],
        momentum_buffer=[s["momentum_buffer"] for s in states],
        **{key: [s[key] for s in states] for key in SWITCH_STATE},
        coef=vec([-lr * math.sqrt(1 - b2**t) / (1 - b1**t) for t in ts]),
        bc2=vec([1 - b2**t for t in ts]),
        steps=vec(ts),
        lr=lr,
        beta1=b1,
        beta2=b2,
        eps=group["eps"],
        l2_weight_decay=group["weight_decay"],
        switch_tol=group["switch_tol"],
        maximize=group["maximize"],
    )


# name -> (driver, hyperparameters of the two groups)
CASES = {
    "rmsprop": (
        drive_rmsprop,
        [dict(lr=1e-2, momentum=0.9, centered=True), dict(weight_decay=0.1, maximize=True)],
    ),
    "nadam": (
        drive_nadam,
        [dict(weight_decay=0.1), dict(weight_decay=0.2, decoupled_weight_decay=True, maximize=True)],
    ),
    "radam": (
        drive_radam,
        [dict(betas=(0.9, 0.9), weight_decay=0.1), dict(decoupled_weight_decay=True,
                                                        weight_decay=0.2, maximize=True)],
    ),
    "adabound": (
        drive_adabound,
        [dict(amsbound=True, weight_decay=0.1), dict(final_lr=0.05, gamma=0.1, maximize=True)],
    ),
    "sgd": (
        drive_sgd,
        [dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1),
         dict(lr=0.05, momentum=0.5, dampening=0.3, weight_decay=0.2,
              decoupled_weight_decay=True, maximize=True)],
    ),
    "swats": (
        drive_swats,
        [dict(switch_tol=1e-4, weight_decay=0.01), dict(lr=3e-3, switch_tol=1e-5, maximize=True)],
    ),
}  # fmt: skip


def make_params(dtype, shapes=SHAPES, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [
        [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=F64).to(dtype)) for s in group]
        for group in shapes
    ]


def set_grads(ours, theirs, t):
    """The same gradient on both sides: a quadratic's at the reference's point, plus noise."""
    gen = torch.Generator().manual_seed(t)
    for p, q in zip(ours, theirs):
        noise = torch.randn(q.shape, generator=gen, dtype=F64)
        g = (0.3 * q.detach().double() + noise * math.cos(t)).to(q.dtype)
        q.grad, p.grad = g, g.clone()


def fast_step(opt, drive):
    """One step of ``opt``'s groups through the Triton kernel (the state lives in ``opt``)."""
    for group in opt.param_groups:
        ps = [p for p in group["params"] if p.grad is not None]
        states = []
        for p in ps:
            state = opt.state[p]
            if not state:
                state["step"] = torch.tensor(0.0)
                opt._init_state(group, p, state)
            state["step"] += 1
            states.append(state)
        drive(group, ps, [p.grad for p in ps], states, [int(s["step"]) for s in states])


def compare(ours, theirs, rtol, atol, t):
    for i, (p, q) in enumerate(zip(flat(ours), flat(theirs))):
        assert_close(p.detach(), q.detach(), rtol, atol, f"step {t}: param {i}")
        for key, value in theirs.state[q].items():
            if not torch.is_tensor(value):  # assert_close would make a float32 tensor of it
                value = torch.tensor(float(value), dtype=F64)
            assert_close(ours.state[p][key], value, rtol, atol, f"step {t}: param {i}: {key}")


def flat(opt):
    return [p for g in opt.param_groups for p in g["params"]]


def lockstep(name, dtype, steps, rtol, atol):
    drive, hparams = CASES[name]
    ours = descentlab.create(name, [dict(params=g, **h) for g, h in
                                    zip(make_params(dtype), hparams)], impl="forloop")  # fmt: skip
    theirs = descentlab.create(name, [dict(params=g, **h) for g, h in
                                      zip(make_params(dtype), hparams)], impl="forloop")  # fmt: skip
    for t in range(1, steps + 1):
        set_grads(flat(ours), flat(theirs), t)
        theirs.step()
        fast_step(ours, drive)
        compare(ours, theirs, rtol, atol, t)
    return theirs


TOLERANCES = {torch.float64: (1e-11, 1e-12), torch.float32: (2e-5, 2e-6)}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("name", list(CASES))
def test_equals_readable_path(name, dtype):
    """50 steps in lock-step with the readable path, two groups of non-default settings."""
    theirs = lockstep(name, dtype, 50, *TOLERANCES[dtype])
    if name == "swats":  # both phases were exercised
        phases = {bool(theirs.state[p]["switch_step"]) for p in flat(theirs)}
        assert phases == {True, False}, phases
