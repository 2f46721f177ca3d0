"""Generic drop-in tests driven by torch's own optimizer test database (``optim_db``).

For every descentlab class that torch.optim has, every configuration torch tests on the CPU runs
and equals torch step by step, survives copies and state-dict round trips, loads torch's state
dict (and torch loads ours), and every error input raises the exception type torch's does. The
descentlab-only classes and the wrappers take the copy and round-trip tests over ``cases.py``.
"""

from __future__ import annotations

import copy
import functools
from collections import Counter

import pytest
import torch
from torch import nn
from torch.testing._internal.common_optimizers import OptimizerErrorEnum

import descentlab
from descentlab.optim import REGISTRY, HyperparameterError

from ._harness import clone_groups, flat, make_groups, with_hparams
from ._optim_db import (
    COPIES,
    EXCLUDED,
    INFOS,
    MIRRORED,
    agree,
    assert_identical,
    configs,
    error_inputs,
    generic_error_inputs,
    params_of,
    run,
    saved_state_dict,
    slug,
)
from .cases import BY_NAME, CASES

CONFIGS = configs()
RUNNABLE = [c for c in CONFIGS if not c.excluded]
ERRORS = error_inputs()
RTOL, ATOL = 1e-10, 1e-12  # float64, 20 steps: agreement to rounding (the paths round differently)
STEPS = 20


def _ids(items, id_of) -> list[str]:
    """Readable ids; a repeated one (torch lists some error inputs twice) gets a counter."""
    seen: Counter[str] = Counter()
    ids = []
    for item in items:
        base = id_of(item)
        seen[base] += 1
        ids.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return ids


runnable = pytest.mark.parametrize("config", RUNNABLE, ids=_ids(RUNNABLE, lambda c: c.id))


# ------------------------------------------------------------------------- the database itself
def test_database_covers_every_mirrored_class():
    """optim_db has an entry for each class we mirror, and we mirror no other torch class."""
    assert set(INFOS) == set(MIRRORED)
    ours = {n for n in descentlab.optim.__all__ if hasattr(torch.optim, n)} - {"Optimizer"}
    assert ours == set(MIRRORED), ours ^ set(MIRRORED)
    assert all(INFOS[n].optim_cls is getattr(torch.optim, n) for n in MIRRORED)


def test_importing_the_database_leaves_torch_backends_flags_settable():
    assert not torch.backends.flags_frozen()
    torch.backends.cudnn.deterministic = torch.backends.cudnn.deterministic


def test_every_class_has_configurations_and_float32_lists_the_same():
    """The float64 runs below drop none of the configurations torch lists for float32."""
    assert {c.cls_name for c in RUNNABLE} == set(MIRRORED)
    assert [(c.id, repr(c.kwargs)) for c in configs(torch.float32)] == [
        (c.id, repr(c.kwargs)) for c in CONFIGS
    ]


def _torch_uses() -> list[tuple[str, dict]]:
    """(class, keywords) of every configuration and error input in torch's database."""
    return [(c.cls_name, c.kwargs) for c in CONFIGS] + [
        (n, e.optimizer_error_input.kwargs) for n, e in ERRORS
    ]


@pytest.mark.parametrize("kwarg", sorted(EXCLUDED))
def test_excluded_keyword_is_used_by_torch_and_refused_by_us(kwarg):
    """The exclusion table stays small and true: torch's database uses each keyword, and every
    class it uses it with refuses it by name."""
    assert len(EXCLUDED) <= 2 and len(EXCLUDED[kwarg]) > 40
    users = {name: kw[kwarg] for name, kw in _torch_uses() if kwarg in kw}
    assert users, f"torch's database no longer uses {kwarg!r}: drop it from EXCLUDED"
    for name, value in users.items():
        with pytest.raises(HyperparameterError, match=kwarg):
            getattr(descentlab.optim, name)([nn.Parameter(torch.ones(2))], **{kwarg: value})


# -------------------------------------------------------------------- classes torch.optim has
@runnable
@pytest.mark.parametrize("impl", ["forloop", "auto"])
def test_equals_torch_step_by_step(config, impl):
    groups = make_groups(torch.float64)
    twin = clone_groups(groups)
    _together(config.ours(groups, impl=impl), groups, config.torch(twin), twin, range(1, STEPS + 1))


def _together(ours, groups, theirs, twin, steps) -> None:
    """Step both with the same gradients; parameters and every state tensor torch keeps agree."""
    for t in steps:
        run(ours, groups, [t])
        run(theirs, twin, [t])
        agree(ours, theirs, groups, twin, t, RTOL, ATOL)


@runnable
@pytest.mark.parametrize("how", list(COPIES))
def test_copy_continues_like_the_original(config, how):
    _check_copy(functools.partial(config.ours, impl="auto", nonfinite="skip"), how, 2)


@runnable
def test_state_dict_round_trip_into_a_fresh_model(config):
    _check_round_trip(functools.partial(config.ours, impl="auto", nonfinite="skip"), 2)


@runnable
def test_loads_torchs_state_dict(config):
    twin = make_groups(torch.float64)
    theirs = config.torch(twin)
    run(theirs, twin, range(1, 6))
    groups = clone_groups(twin)
    ours = config.ours(groups)
    ours.load_state_dict(saved_state_dict(theirs))
    _together(ours, groups, theirs, twin, range(6, 16))


@runnable
def test_torch_loads_our_state_dict(config):
    """torch continues from our state dict as it does from its own. (Its own load is the
    reference: it casts float32 scalars such as NAdam's mu_product to the parameter's dtype.)"""
    groups = make_groups(torch.float64)
    twin = clone_groups(groups)
    ours, theirs = config.ours(groups), config.torch(twin)
    run(ours, groups, range(1, 6))
    run(theirs, twin, range(1, 6))
    from_ours, from_theirs = config.torch(clone_groups(groups)), config.torch(clone_groups(twin))
    from_ours.load_state_dict(saved_state_dict(ours))
    from_theirs.load_state_dict(saved_state_dict(theirs))
    _together(from_ours, params_of(from_ours), from_theirs, params_of(from_theirs), range(6, 16))


def _error_id(item) -> str:
    name, error = item
    return f"{name}-{slug(error.optimizer_error_input.desc)}"


@pytest.mark.parametrize(("name", "error"), ERRORS, ids=_ids(ERRORS, _error_id))
def test_error_input_raises_what_torch_raises(name, error):
    """Same exception type (a warning: same category) as torch; the message may differ. torch is
    run first on the same inputs, so the database is read as torch's own tests read it."""
    inp = error.optimizer_error_input
    params = inp.params if inp.params is not None else [nn.Parameter(torch.randn(1, 1))]
    args = (params, inp.kwargs, error.error_on)
    _expect(INFOS[name].optim_cls, *args, error.error_type, error.error_regex)
    excluded = sorted(set(inp.kwargs) & set(EXCLUDED))
    if excluded:  # refused for the keyword, before any other check
        _expect(getattr(descentlab.optim, name), *args, HyperparameterError, excluded[0])
    else:
        _expect(getattr(descentlab.optim, name), *args, error.error_type, None)


def _expect(cls, params, kwargs, error_on, kind: type[Exception], regex: str | None) -> None:
    act = functools.partial(cls, params, **copy.deepcopy(kwargs))
    if error_on is OptimizerErrorEnum.STEP_ERROR:
        act = act().step
    # pytest.warns records every warning (its filter is "always", so none is deduplicated)
    with (pytest.warns if issubclass(kind, Warning) else pytest.raises)(kind, match=regex):
        act()


# ---------------------------------------------------- descentlab-only classes and the wrappers
ONLY = [c for c in CASES if REGISTRY[c.name].cls.__name__ not in MIRRORED]
WRAPPED = {  # name: (the case whose groups the inner optimizer takes, wrapper hyperparameters)
    "lookahead(adam)": ("adam", {"k": 3, "alpha": 0.5}),
    "noisy(sgdm)": ("sgdm", {"eta": 0.01, "generator": 7}),
    "lookahead(noisy(swats))": ("swats", {"k": 2, "alpha": 0.8, "eta": 0.01, "generator": 3}),
}
BUILDS = {c.name: (c.name, c, {}) for c in ONLY} | {
    name: (name, BY_NAME[case], hp) for name, (case, hp) in WRAPPED.items()
}
PRE_STEPS = 60  # before the copy or save: SWATS's case has switched some tensors by then


def _builder(key):
    name, case, hparams = BUILDS[key]
    return lambda groups: descentlab.create(
        name, with_hparams(groups, case.groups), impl="auto", nonfinite="skip", **hparams
    )


@pytest.mark.parametrize("key", list(BUILDS))
@pytest.mark.parametrize("how", list(COPIES))
def test_case_copy_continues_like_the_original(key, how):
    _check_copy(_builder(key), how, PRE_STEPS)


@pytest.mark.parametrize("key", list(BUILDS))
def test_case_state_dict_round_trip_into_a_fresh_model(key):
    _check_round_trip(_builder(key), PRE_STEPS)


OWN_CLASSES = (
    "ADOPT",
    "AdEMAMix",
    "AdaBound",
    "Lion",
    "SGDW",
    "SWATS",
    "ScheduleFreeAdamW",
    "ScheduleFreeSGD",
)  # the wrappers take an optimizer, not parameters
OWN_ERRORS = generic_error_inputs(OWN_CLASSES)


@pytest.mark.parametrize(("name", "error"), OWN_ERRORS, ids=_ids(OWN_ERRORS, _error_id))
def test_generic_error_input_raises_what_torch_raises(name, error):
    """The error inputs torch checks for every optimizer, on the descentlab-only classes."""
    inp = error.optimizer_error_input
    params = inp.params if inp.params is not None else [nn.Parameter(torch.randn(1, 1))]
    args = (params, inp.kwargs, error.error_on, error.error_type, None)
    _expect(getattr(descentlab.optim, name), *args)


def test_cases_cover_every_descentlab_only_class():
    classes = {type(_builder(k)(make_groups())).__name__ for k in BUILDS}
    inner = {REGISTRY[c.name].cls.__name__ for c in ONLY}
    assert inner == set(OWN_CLASSES)
    assert classes | inner == {*OWN_CLASSES, "Lookahead", "GradientNoise"}


def test_swats_state_is_saved_in_both_phases():
    """The SWATS builds cross the switch before they are copied or saved."""
    groups = make_groups()
    opt = _builder("swats")(groups)
    run(opt, groups, range(1, PRE_STEPS + 1))
    phases = {bool(s["switch_step"]) for s in opt.state.values()}
    assert phases == {False, True}, phases


# ------------------------------------------------------------------------------- shared checks
def _check_copy(build, how: str, pre_steps: int) -> None:
    """A copy taken after ``pre_steps`` continues exactly as the original."""
    groups = make_groups()
    opt = build(groups)
    run(opt, groups, range(1, pre_steps + 1))
    twin = COPIES[how](opt)
    assert flat(params_of(twin))[0] is not flat(groups)[0]
    _continue_identically(opt, twin, pre_steps)


def _check_round_trip(build, pre_steps: int) -> None:
    """``torch.save(opt.state_dict())``, ``torch.load(weights_only=True)`` into a freshly built
    optimizer on a fresh model with the same weights: both continue bit for bit."""
    groups = make_groups()
    opt = build(groups)
    run(opt, groups, range(1, pre_steps + 1))
    fresh = build(clone_groups(groups))
    fresh.load_state_dict(saved_state_dict(opt))
    _continue_identically(opt, fresh, pre_steps)


def _continue_identically(a, b, pre_steps: int) -> None:
    """Identical now, and after four more steps of which one is skipped for a NaN gradient."""
    assert_identical(a, b)
    after = range(pre_steps + 1, pre_steps + 5)
    for opt in (a, b):
        run(opt, params_of(opt), after, nan_at=pre_steps + 2)
    assert a.skipped_steps == 1
    assert_identical(a, b)
