"""Fuzzed state dicts: a foreign or corrupted one is refused with a ValueError, nothing changed.

The optimizer under test has taken a step (so "unchanged" means something); the state dict fed to
it is a valid one, of the same or another optimizer, put through random mutations. The outcome
is either a clean load (the mutation left it valid) after which a step runs, or a ValueError
raised by descentlab's own checks (never from inside torch) with the optimizer's state dict as
it was.
"""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import descentlab

from ._strategies import anything, assert_raised_by_us

NAMES = [*descentlab.names(), "lookahead(adam)", "noisy(sgdm)"]
EXAMPLES = 100  # per optimizer; deterministic (derandomized), reported in docs/reliability.md
SHAPES = [(3,), (2, 2), (4,)]  # two groups: the first two tensors, then the third


def trained(name: str, steps: int = 2) -> torch.optim.Optimizer:
    gen = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(s, generator=gen)) for s in SHAPES]
    opt = descentlab.create(name, [{"params": params[:2]}, {"params": params[2:], "lr": 1e-3}])
    for _ in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen)
        opt.step()
    return opt


def _same(a, b) -> bool:
    if torch.is_tensor(a) or torch.is_tensor(b):
        return torch.is_tensor(a) and torch.is_tensor(b) and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b or (a != a and b != b)  # NaN equals NaN here


KINDS = [
    "drop_key",
    "hparam",
    "group_count",
    "params_len",
    "shape",
    "state_value",
    "drop_state_key",
    "wrapper",
    "top_level",
]  # top_level last: it replaces the structure


def _mutate(data, sd: dict, kind: str) -> None:
    """Apply one corruption of ``kind`` to ``sd`` in place."""
    groups, state = sd["param_groups"], sd["state"]
    if kind in ("drop_key", "hparam", "params_len") and groups:
        g = data.draw(st.sampled_from(groups))
        keys = sorted(k for k in g if k != "params")
        if kind == "params_len":
            g["params"] = g["params"][:-1] if data.draw(st.booleans()) else [*g["params"], 99]
        elif keys and kind == "drop_key":
            g.pop(data.draw(st.sampled_from(keys)))
        elif keys:
            g[data.draw(st.sampled_from(keys))] = data.draw(anything)
    elif kind == "group_count" and groups:
        if data.draw(st.booleans()):
            groups.pop()
        else:
            groups.append(copy.deepcopy(groups[-1]))
    elif kind in ("shape", "state_value", "drop_state_key") and state:
        entry = state[data.draw(st.sampled_from(sorted(state)))]
        if not entry:
            return
        key = data.draw(st.sampled_from(sorted(entry)))
        if kind == "shape":
            entry[key] = torch.zeros(data.draw(st.sampled_from([(7,), (1, 3), (2, 2, 1)])))
        elif kind == "state_value":
            entry[key] = data.draw(anything)
        else:
            entry.pop(key)
    elif kind == "wrapper":
        for key in [k for k in sd if k not in ("state", "param_groups", "skipped_steps")]:
            sd[key] = data.draw(st.one_of(anything, st.just({"state": {0: {"slow": 1}}})))
    elif kind == "top_level":
        sd[data.draw(st.sampled_from(["state", "param_groups"]))] = data.draw(anything)


def _load(opt, sd, what: str) -> None:
    before = copy.deepcopy(opt.state_dict())
    try:
        opt.load_state_dict(sd)
    except ValueError as e:
        assert_raised_by_us(e)
        assert _same(opt.state_dict(), before), f"{what}: refused, but the optimizer changed"
        return
    for p in (q for g in opt.param_groups for q in g["params"]):
        p.grad = torch.ones_like(p)
    opt.step()  # what was accepted must run


@pytest.mark.parametrize("name", NAMES)
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data())
def test_corrupted_state_dict_is_refused_cleanly(name, data):
    sd = copy.deepcopy(trained(name).state_dict())
    kinds = sorted(
        data.draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=3)), key=KINDS.index
    )
    for kind in kinds:
        _mutate(data, sd, kind)
    _load(trained(name, steps=1), sd, f"{name} after {kinds}")


def _classes(opt) -> list[type]:
    out = [type(opt)]
    while hasattr(opt, "base_optimizer"):
        opt = opt.base_optimizer
        out.append(type(opt))
    return out


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("other", NAMES)
def test_foreign_state_dict_is_refused(name, other):
    target, source = trained(name, steps=1), trained(other)
    if _classes(target) == _classes(source):
        return  # e.g. sgd and sgdm: one class, so a valid state dict for it
    before = copy.deepcopy(target.state_dict())
    with pytest.raises(ValueError) as info:
        target.load_state_dict(source.state_dict())
    assert_raised_by_us(info.value)
    assert _same(target.state_dict(), before)
