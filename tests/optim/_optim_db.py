"""torch's optimizer test database (``optim_db``), read for the descentlab classes it covers.

Collects, for every descentlab class that torch.optim also has, every CPU configuration and every
error input that torch tests, and holds the runs and comparisons that ``test_optim_db`` shares.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.testing._internal.common_optimizers import (
    ErrorOptimizerInput,
    OptimizerInfo,
    get_error_inputs_for_all_optims,
    optim_db,
)

import descentlab.optim
from descentlab import testing

from ._harness import ALIASES, compare_states, flat, set_grads

# Importing torch.testing._internal freezes torch.backends' flags for the whole process
# (common_utils calls torch.backends.disable_global_flags()): every later
# `torch.backends.cudnn.deterministic = True` (Lightning's deterministic=True, the lab's
# deterministic trials) would raise. Collection imports this module before any test runs.
torch.backends.flags_frozen.__globals__["__allow_nonbracketed_mutation_flag"] = True

# torch.optim classes that descentlab mirrors under the same name (checked against optim_db).
MIRRORED = ("SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "NAdam", "RAdam")
INFOS: dict[str, OptimizerInfo] = {
    i.optim_cls.__name__: i for i in optim_db if i.optim_cls.__name__ in descentlab.optim.__all__
}

# The one table of torch keywords that descentlab does not take, with the reason. test_optim_db
# checks that every entry is still used by torch's database and really refused by our class.
EXCLUDED = {
    "foreach": "descentlab picks its path with impl='auto'|'forloop'|'fused'; torch's foreach "
    "multi-tensor path is what impl='auto' replaces",
}


def slug(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z]+", "_", text).strip("_")


@dataclass(frozen=True)
class Config:
    """One configuration torch tests: a class and its constructor keywords."""

    cls_name: str
    desc: str
    kwargs: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.cls_name}-{slug(self.desc)}"

    @property
    def excluded(self) -> list[str]:
        return sorted(set(self.kwargs) & set(EXCLUDED))

    def torch(self, groups: list[list[nn.Parameter]]) -> torch.optim.Optimizer:
        return INFOS[self.cls_name].optim_cls(_groups(groups), **copy.deepcopy(self.kwargs))

    def ours(self, groups: list[list[nn.Parameter]], **options: Any) -> torch.optim.Optimizer:
        cls = getattr(descentlab.optim, self.cls_name)
        return cls(_groups(groups), **copy.deepcopy(self.kwargs), **options)


def _groups(groups: list[list[nn.Parameter]]) -> list[dict[str, Any]]:
    return [{"params": g} for g in groups]


def configs(dtype: torch.dtype = torch.float64) -> list[Config]:
    """Every CPU configuration of every mirrored class, none dropped."""
    return [
        Config(name, inp.desc, inp.kwargs)
        for name, info in INFOS.items()
        for inp in info.optim_inputs_func(device="cpu", dtype=dtype)
    ]


def error_inputs() -> list[tuple[str, ErrorOptimizerInput]]:
    """Every CPU error input of every mirrored class."""
    return [
        (name, e)
        for name, info in INFOS.items()
        for e in info.optim_error_inputs_func(device="cpu", dtype=torch.float32)
    ]


def generic_error_inputs(names: Iterable[str]) -> list[tuple[str, ErrorOptimizerInput]]:
    """The error inputs torch gives every optimizer (params, duplicates, names, tensor lr)."""
    return [(n, e) for n in names for e in get_error_inputs_for_all_optims("cpu", torch.float32)]


# ---------------------------------------------------------------------------------------- runs
def run(
    opt: torch.optim.Optimizer, groups, steps: Iterable[int], nan_at: int | None = None
) -> None:
    """Step ``opt`` with the harness's gradients; at step ``nan_at`` one gradient holds a NaN."""
    for t in steps:
        set_grads(groups, t)
        if t == nan_at:
            groups[-1][-1].grad[0] = math.nan
        opt.step()


def params_of(opt: torch.optim.Optimizer) -> list[list[nn.Parameter]]:
    return [list(g["params"]) for g in opt.param_groups]


COPIES: dict[str, Callable[[Any], Any]] = {
    k.replace(".", "_"): f for k, f in testing.COPIES.items()
}


def saved_state_dict(opt: torch.optim.Optimizer) -> dict[str, Any]:
    """``opt.state_dict()`` through ``torch.save`` and ``torch.load(weights_only=True)``."""
    return testing.torch_round_trip(opt.state_dict(), weights_only=True)


# ----------------------------------------------------------------------------------- comparing
def agree(ours, theirs, groups, twin, t: int, rtol: float, atol: float) -> None:
    """``compare_states`` (parameters and every state entry ``theirs`` keeps), with one vectorised
    check first: the per-tensor messages are built only when something differs."""
    pairs = []
    for p, q in zip(flat(groups), flat(twin)):
        pairs.append((p.detach(), q.detach()))
        mine = ours.state[p]
        for key, value in theirs.state[q].items():
            pairs.append((mine.get(ALIASES.get(key, key)), value))
    if all(torch.is_tensor(a) and torch.is_tensor(b) and a.shape == b.shape for a, b in pairs):
        a = torch.cat([x.reshape(-1).to(torch.float64) for x, _ in pairs])
        b = torch.cat([y.reshape(-1).to(torch.float64) for _, y in pairs])
        if torch.allclose(a, b, rtol=rtol, atol=atol):
            return
    compare_states(ours, theirs, flat(groups), flat(twin), rtol, atol, t)  # raises, naming what


def _chain(opt: torch.optim.Optimizer) -> list[torch.optim.Optimizer]:
    """The optimizer and every optimizer it wraps, outermost first."""
    out = [opt]
    while hasattr(out[-1], "base_optimizer"):
        out.append(out[-1].base_optimizer)
    return out


# SWATS keeps its switch state where its path reads it: 0-d float64 tensors on the compiled
# kernels' path, numbers on the others (and in a state dict, so in a loaded one until it steps).
_WHERE_READ = tuple(f"[{k!r}]" for k in ("switch_step", "lam", "sgd_lr", "switch_lr"))


def _identical(a: Any, b: Any, what: str) -> None:
    if what.endswith(_WHERE_READ) and {type(a), type(b)} & {int, float}:
        assert float(a) == float(b), f"{what}: {a} vs {b}"
        return
    assert type(a) is type(b), f"{what}: a {type(a).__name__} vs a {type(b).__name__}"
    if torch.is_tensor(a):
        assert (a.dtype, a.shape) == (b.dtype, b.shape), f"{what}: {a.dtype} vs {b.dtype}"
        assert torch.equal(a, b), f"{what}: differs by {(a - b).abs().max().item():.3g}"
    elif isinstance(a, torch.Generator):
        _identical(a.get_state(), b.get_state(), f"{what} (generator state)")
    elif isinstance(a, dict):
        assert sorted(map(str, a)) == sorted(map(str, b)), f"{what}: keys {list(a)} vs {list(b)}"
        for key in a:
            _identical(a[key], b[key], f"{what}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{what}: length {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            _identical(x, y, f"{what}[{i}]")
    else:
        assert a == b, f"{what}: {a!r} vs {b!r}"


_OWN = ("state", "param_groups", "base_optimizer")  # compared by parameter, not as attributes


def assert_identical(a: torch.optim.Optimizer, b: torch.optim.Optimizer) -> None:
    """Same parameters, hyperparameters, public attributes (options, counters, generators) and
    state, bit for bit, at every level of wrapping."""
    pa, pb = flat(params_of(a)), flat(params_of(b))
    assert len(pa) == len(pb)
    for i, (p, q) in enumerate(zip(pa, pb)):
        _identical(p.detach(), q.detach(), f"param {i}")
    for i, (ga, gb) in enumerate(zip(a.param_groups, b.param_groups, strict=True)):
        _identical(_hparams(ga), _hparams(gb), f"param_groups[{i}]")
    for oa, ob in zip(_chain(a), _chain(b), strict=True):
        level = type(oa).__name__
        assert type(oa) is type(ob), level
        _identical(_public(oa), _public(ob), level)
        for i, (p, q) in enumerate(zip(pa, pb)):
            _identical(oa.state.get(p, {}), ob.state.get(q, {}), f"{level}: state of param {i}")


def _hparams(group: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in group.items() if k != "params"}


def _public(opt: torch.optim.Optimizer) -> dict[str, Any]:
    public = {k: v for k, v in vars(opt).items() if not k.startswith("_") and k not in _OWN}
    # torch's Optimizer.__setstate__ (unpickling, load_state_dict) adds defaults["differentiable"]
    public["defaults"] = {k: v for k, v in opt.defaults.items() if k != "differentiable"}
    return public
