"""Non-finite values never corrupt an optimizer's state silently.

* ``nonfinite="skip"``: a step whose gradients hold NaN or inf changes nothing (parameters, state,
  the wrappers' counters and random numbers) and counts once in ``skipped_steps``; the run then
  equals one that never saw the bad step. Same for every registry name and the wrappers.
* ``nonfinite="raise"``: an inf gradient raises before anything changes.
* A loss spike (a huge but finite gradient) leaves the state finite; a huge learning rate that
  overflows the parameters is caught at the next step, before it reaches the state.
* Under ``torch.amp.GradScaler("cpu")`` with bfloat16 autocast, the scaler skips the step on inf
  (our step is never called, our counter stays at 0) and the state is untouched.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import descentlab
from descentlab.optim import NonFiniteGradientError

NAMES = [*descentlab.names(), "lookahead(adam)", "noisy(sgdm)", "lookahead(noisy(swats))"]
BAD = [float("nan"), float("inf"), -float("inf")]


def _params(dtype=torch.float64):
    gen = torch.Generator().manual_seed(0)
    return [nn.Parameter(torch.randn(s, generator=gen, dtype=dtype)) for s in [(3,), (2, 4)]]


def _grads(params, t: int, bad: float | None = None) -> None:
    gen = torch.Generator().manual_seed(t)
    for p in params:
        p.grad = 0.5 * p.detach() + torch.randn(p.shape, generator=gen, dtype=p.dtype)
    if bad is not None:
        params[1].grad[1, 2] = bad


def _snapshot(opt, params):
    sd = copy.deepcopy(opt.state_dict())
    sd.pop("skipped_steps", None)  # the one thing a skipped step changes (checked apart)
    return sd, [p.detach().clone() for p in params]


def _equal(a, b) -> bool:
    if torch.is_tensor(a):
        return torch.is_tensor(b) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b


def _innermost(opt):
    while hasattr(opt, "base_optimizer"):
        opt = opt.base_optimizer
    return opt


@pytest.mark.parametrize("bad", BAD, ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("name", NAMES)
def test_skip_changes_nothing_and_the_run_goes_on_as_without_the_bad_step(name, bad):
    hp = {"lr": 0.01, "nonfinite": "skip", "k": 2} if "lookahead" in name else {"lr": 0.01}
    hp.setdefault("nonfinite", "skip")
    params, twin = _params(), _params()
    opt = descentlab.create(name, params, **hp)
    ref = descentlab.create(name, twin, **hp)
    for t in range(1, 7):
        _grads(params, t, bad)  # a bad step before every good one
        before = _snapshot(opt, params)
        opt.step()
        after = _snapshot(opt, params)
        assert _equal(before, after), f"{name}: a skipped step changed something at step {t}"
        _grads(params, t)
        _grads(twin, t)
        opt.step()
        ref.step()
    assert _innermost(opt).skipped_steps == 6  # counted once per skipped step, not per wrapper
    assert all(torch.equal(p, q) for p, q in zip(params, twin))
    assert _equal(opt.state_dict()["state"], ref.state_dict()["state"])


@pytest.mark.parametrize("name", descentlab.names())
def test_raise_on_inf_changes_nothing(name):
    params = _params()
    opt = descentlab.create(name, params, lr=0.01, nonfinite="raise")
    _grads(params, 1)
    opt.step()
    _grads(params, 2, float("inf"))
    before = _snapshot(opt, params)
    with pytest.raises(NonFiniteGradientError, match="step 2"):
        opt.step()
    assert _equal(before, _snapshot(opt, params))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("name", descentlab.names())
def test_a_loss_spike_leaves_the_state_finite(name, dtype):
    # 1e18 squared (Adam's second moment) is 1e36, still below float32's largest value 3.4e38.
    params = _params(dtype)
    opt = descentlab.create(name, params, lr=1e-3)
    for t in range(1, 5):
        _grads(params, t)
        if t == 2:
            params[0].grad.mul_(1e18)
        opt.step()
    for state in opt.state.values():
        for key, value in state.items():
            if torch.is_tensor(value):
                assert value.isfinite().all(), f"{name}: state {key!r} is not finite"


@pytest.mark.parametrize("name", descentlab.names())
def test_a_huge_learning_rate_is_caught_before_it_reaches_the_state(name):
    params = _params()
    opt = descentlab.create(name, params, lr=1e308, nonfinite="skip")
    _grads(params, 1)
    params[0].grad.fill_(1e10)
    opt.step()  # the parameters overflow to inf (or stay finite for the normalized methods)
    state = copy.deepcopy(opt.state_dict()["state"])
    with torch.no_grad():
        for p in params:
            p.grad = 0.5 * p  # the next gradient inherits the overflow
    opt.step()
    overflowed = not all(p.isfinite().all() for p in params)
    assert opt.skipped_steps == int(overflowed)
    if overflowed:
        assert _equal(state, opt.state_dict()["state"]), f"{name}: state changed on a skipped step"


def _amp_run(name: str, poison: bool):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    opt = descentlab.create(name, model.parameters(), lr=0.01, nonfinite="skip")
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(1))
    for t in range(3):
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(x).float().pow(2).mean()
        if poison and t == 2:
            loss = loss * float("inf")
        scaler.scale(loss).backward()
        before = copy.deepcopy(opt.state_dict()["state"])
        scaler.step(opt)
        scaler.update()
    return opt, scaler, before


@pytest.mark.parametrize("name", NAMES)
def test_gradscaler_skips_inf_steps_and_our_counter_does_not_double_count(name):
    opt, scaler, _ = _amp_run(name, poison=False)
    assert scaler.get_scale() == 2.0**8 and _innermost(opt).skipped_steps == 0
    assert opt.state_dict()["state"], f"{name}: no step was taken under the scaler"
    opt, scaler, before = _amp_run(name, poison=True)
    assert scaler.get_scale() == 2.0**7  # the scaler found the inf and backed off
    assert _innermost(opt).skipped_steps == 0  # it skipped our step: nothing to count here
    assert _equal(before, opt.state_dict()["state"])
