"""Hypothesis strategies and checks shared by the fuzz tests."""

from __future__ import annotations

import inspect
import traceback
from pathlib import Path
from typing import Any

import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

import descentlab
from descentlab.optim import REGISTRY, WRAPPERS
from descentlab.optim.base import OPTIONS as _OPTIONS

__all__ = [
    "CLASSES",
    "PACKAGE",
    "anything",
    "assert_raised_by_us",
    "experiment_specs",
    "fuzz",
    "hyperparameters",
    "toml_values",
    "valid_specs",
]

PACKAGE = Path(descentlab.__file__).parent
# Every class the registry can build (plain and wrappers), each once.
CLASSES = sorted(
    {e.cls for e in REGISTRY.values()} | set(WRAPPERS.values()), key=lambda c: c.__name__
)


def fuzz(examples: int, **options: Any) -> settings:
    """Hypothesis settings of a fuzz test: deterministic (derandomized), no deadline; the
    function-scoped ``tmp_path`` is shared by the examples (each writes its own files)."""
    return settings(
        max_examples=examples,
        derandomize=True,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        **options,
    )


def hyperparameters(cls: type) -> list[str]:
    """The keyword hyperparameters of ``cls`` (its signature and the base options)."""
    skip = {"self", "params", "base_optimizer", "options"}
    own = [n for n in inspect.signature(cls.__init__).parameters if n not in skip]
    base = list(_OPTIONS) if issubclass(cls, descentlab.optim.Optimizer) else []
    return own + base


scalars = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-2, 2),
    st.integers(-(10**20), 10**20),
    st.booleans(),
    st.none(),
    st.text(max_size=5),
    st.sampled_from(["auto", "fused", "forloop", "skip", "raise", "ignore", "1e-3"]),
)
tensors = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(torch.tensor),
    st.lists(st.floats(-1, 1), min_size=0, max_size=3).map(torch.tensor),
    st.just(torch.tensor(0.5 + 1j)),
    st.just(torch.tensor(1, dtype=torch.int64)),
    st.just(torch.tensor(True)),
)
anything = st.one_of(
    scalars,
    tensors,
    st.tuples(scalars, scalars),
    st.lists(scalars, max_size=3),
    st.dictionaries(st.text(max_size=3), scalars, max_size=2),
)


def assert_raised_by_us(error: BaseException) -> None:
    """The error was raised by descentlab's own code, not from deep inside torch."""
    frames = traceback.extract_tb(error.__traceback__)
    assert frames and Path(frames[-1].filename).is_relative_to(PACKAGE), (
        f"{type(error).__name__} raised outside descentlab: {frames[-1].filename}:"
        f"{frames[-1].lineno}: {error}"
    )


# --- experiment specs (tests/fuzz/test_specs.py) ----------------------------------------------

toml_scalars = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-2, 2),
    st.integers(-(10**30), 10**30),
    st.integers(-3, 12),
    st.sampled_from([10**400, -(10**400), 2**63, 2**64, 10**12]),  # past float64, int64, memory
    st.booleans(),
    st.text(max_size=6),
    st.sampled_from(["none", "full", "epoch", "batch", "l2", "grid", "adam", "digits-mlp"]),
    st.dates(),
    st.datetimes(),
    st.times(),
)
# What a TOML document can hold (and None, which a caller of parse() might pass): nested junk.
toml_values = st.recursive(
    toml_scalars | st.none(),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(min_size=1, max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)

# Valid experiments, built only from names that are safe to import and call (a problem may be
# "module:function", and the parser calls the function).
_TINY = "tests.lab.tiny:problem"
_unique = {"unique_by": str, "min_size": 1, "max_size": 2}
_problem = st.one_of(
    st.sampled_from([_TINY, "digits-mlp"]),
    st.builds(lambda w: {"name": _TINY, "options": {"width": w}}, st.integers(1, 16)),
)
_optimizer = st.one_of(
    st.sampled_from(["sgdm", "adam", "swats", "lookahead(adam)", "torch.optim.Adam"]),
    st.fixed_dictionaries(
        {"name": st.sampled_from(["sgdm", "adam", "radam", "torch.optim.SGD"])},
        optional={
            "hparams": st.fixed_dictionaries({"lr": st.floats(1e-4, 1.0)}),
            "schedule": st.sampled_from(["cosine", "step", "onecycle"]),
            "tune": st.booleans(),
        },
    ),
)
_valid_axes = {
    "batch_size": st.one_of(st.integers(1, 64), st.just("full")),
    "shuffle": st.sampled_from(["epoch", "once", "none"]),
    "curriculum": st.one_of(
        st.just("none"),
        st.fixed_dictionaries(
            {}, optional={"start": st.floats(0.1, 1.0), "pacing": st.sampled_from(["step"])}
        ),
    ),
    "init": st.one_of(
        st.sampled_from(["default", "zeros", "kaiming_normal"]),
        st.builds(lambda x: {"scheme": "normal", "std": x}, st.floats(0.0, 1.0)),
    ),
    "weight_decay": st.one_of(
        st.just(0),
        st.builds(
            lambda v, c: {"value": v, "coupling": c},
            st.floats(1e-6, 0.1),
            st.sampled_from(["l2", "decoupled"]),
        ),
    ),
    "gradient_noise": st.one_of(st.just("none"), st.floats(1e-3, 1.0)),
    "warmup": st.one_of(st.just("none"), st.integers(1, 100), st.floats(0.01, 0.99)),
}
valid_specs = st.fixed_dictionaries(
    {
        "problems": st.lists(_problem, **_unique),
        "optimizers": st.lists(_optimizer, unique_by=lambda o: str(o)[:12], min_size=1, max_size=2),
    },
    optional={
        "name": st.text("abcxyz-_", min_size=1, max_size=6),
        "description": st.text(max_size=6),
        "seeds": st.one_of(
            st.integers(1, 3), st.lists(st.integers(0, 9), unique=True, min_size=1, max_size=3)
        ),
        "epochs": st.integers(1, 5),
        "sharpness": st.booleans(),
        "design": st.sampled_from(["grid", "one-at-a-time"]),
        "tuning": st.fixed_dictionaries(
            {},
            optional={
                "method": st.sampled_from(["grid", "random", "defaults"]),
                "budget": st.integers(1, 4),
                "lr_factor": st.floats(1.0, 100.0),
                "lr_range": st.lists(st.floats(1e-4, 1.0), min_size=2, max_size=2).map(sorted),
                "seed": st.integers(0, 3),
                "defaults": st.booleans(),
                "epochs": st.integers(1, 3),
            },
        ),
        **{k: st.one_of(v, st.lists(v, **_unique)) for k, v in _valid_axes.items()},
    },
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in a nested document: dict keys and list indices, as tuples."""
    out = []
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for k, v in items:
        out.append((*prefix, k))
        if isinstance(v, (dict, list)) and v:
            out += _paths(v, (*prefix, k))
    return out


@st.composite
def experiment_specs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid experiment, then 0 to 3 edits: a value replaced by junk, a key or an entry
    deleted, an unknown key added (anywhere in the nesting)."""
    spec = draw(valid_specs)
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from([(), *_paths(spec)]))
        parent = spec
        for k in path[:-1]:
            parent = parent[k]
        action = draw(st.sampled_from(["junk", "junk", "delete", "unknown"]))
        if not path:  # the document itself
            spec[draw(st.text(min_size=1, max_size=8))] = draw(toml_values)
        elif action == "junk":
            parent[path[-1]] = draw(toml_values)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent[path[-1]], dict):
            parent[path[-1]][draw(st.text(min_size=1, max_size=8))] = draw(toml_values)
    return spec
