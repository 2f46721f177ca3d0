"""The optimizer registry: names as data, and ``create`` for plain and wrapped names."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ..checks import HyperparameterError, close_matches
from .adabound import AdaBound
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .ademamix import AdEMAMix
from .adopt import ADOPT
from .lion import Lion
from .lookahead import Lookahead
from .nadam import NAdam
from .noise import GradientNoise
from .radam import RAdam
from .rmsprop import RMSprop
from .schedule_free import ScheduleFreeAdamW, ScheduleFreeSGD
from .sgd import SGD, SGDW
from .swats import SWATS

__all__ = ["REGISTRY", "WRAPPERS", "Entry", "create", "names", "register", "unregister"]


@dataclass(frozen=True)
class Entry:
    """One registry name: a class, the hyperparameters the name fixes, and what it is."""

    name: str
    cls: type[torch.optim.Optimizer]
    fixed: Mapping[str, Any] = field(default_factory=dict)
    lr: float = 1e-3  # a sensible default learning rate for an MLP on small data
    paper: str = ""
    reference: str = ""  # what the tests compare against, step by step

    def create(self, params: Any, **hparams: Any) -> torch.optim.Optimizer:
        """Build the optimizer; ``hparams`` override the fixed ones."""
        return self.cls(params, **{**self.fixed, **hparams})


_TORCH = "torch.optim"
REGISTRY: dict[str, Entry] = {
    e.name: e
    for e in (
        Entry("sgd", SGD, {}, 0.1, "Robbins & Monro 1951", f"{_TORCH}.SGD"),
        Entry("sgdm", SGD, {"momentum": 0.9}, 0.01, "Polyak 1964", f"{_TORCH}.SGD(momentum=0.9)"),
        Entry(
            "nag",
            SGD,
            {"momentum": 0.9, "nesterov": True},
            0.01,
            "Nesterov 1983; Sutskever et al. 2013",
            f"{_TORCH}.SGD(nesterov=True)",
        ),
        Entry("adagrad", Adagrad, {}, 1e-2, "Duchi et al. 2011", f"{_TORCH}.Adagrad"),
        Entry("rmsprop", RMSprop, {}, 1e-3, "Tieleman & Hinton 2012", f"{_TORCH}.RMSprop"),
        Entry("adam", Adam, {}, 1e-3, "Kingma & Ba 2015", f"{_TORCH}.Adam"),
        Entry(
            "amsgrad",
            Adam,
            {"amsgrad": True},
            1e-3,
            "Reddi et al. 2018",
            f"{_TORCH}.Adam(amsgrad=True)",
        ),
        Entry("adamw", AdamW, {}, 1e-3, "Loshchilov & Hutter 2019", f"{_TORCH}.AdamW"),
        Entry("nadam", NAdam, {}, 2e-3, "Dozat 2016", f"{_TORCH}.NAdam"),
        Entry("radam", RAdam, {}, 1e-3, "Liu et al. 2020", f"{_TORCH}.RAdam"),
        Entry("adabound", AdaBound, {}, 1e-3, "Luo et al. 2019", "adabound.AdaBound"),
        Entry(
            "amsbound",
            AdaBound,
            {"amsbound": True},
            1e-3,
            "Luo et al. 2019",
            "adabound.AdaBound(amsbound=True)",
        ),
        Entry("sgdw", SGDW, {}, 0.1, "Loshchilov & Hutter 2019", "the equations (test)"),
        Entry(
            "sgdwm",
            SGDW,
            {"momentum": 0.9},
            0.01,
            "Loshchilov & Hutter 2019",
            "the equations (test)",
        ),
        Entry("swats", SWATS, {}, 1e-3, "Keskar & Socher 2017", "Algorithm 1 (test)"),
        # since the lecture
        Entry("adopt", ADOPT, {}, 1e-3, "Taniguchi et al. 2024", "adopt.ADOPT (torch-adopt)"),
        Entry(
            "ademamix",
            AdEMAMix,
            {},
            1e-3,
            "Pagliardini et al. 2024",
            "Algorithm 1 (test); pytorch_optimizer.AdEMAMix",
        ),
        Entry("lion", Lion, {}, 3e-4, "Chen et al. 2023", "Algorithm 2 (test); lion_pytorch.Lion"),
        Entry(
            "schedule-free-adamw",
            ScheduleFreeAdamW,
            {},
            2.5e-3,
            "Defazio et al. 2024",
            "schedulefree.AdamWScheduleFree",
        ),
        Entry(
            "schedule-free-sgd",
            ScheduleFreeSGD,
            {},
            1.0,
            "Defazio et al. 2024",
            "schedulefree.SGDScheduleFree",
        ),
    )
}

WRAPPERS: dict[str, type[torch.optim.Optimizer]] = {
    "lookahead": Lookahead,
    "noisy": GradientNoise,
}

_WRAPPED = re.compile(r"^\s*([a-z_]+)\s*\((.*)\)\s*$")
_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


def register(entry: Entry, *, replace: bool = False) -> Entry:
    """Add ``entry`` to the registry, so that ``create(entry.name, ...)`` and the lab know it
    (wrapped names included). A name that exists is refused unless ``replace``."""
    if not _NAME.match(entry.name) or entry.name in WRAPPERS:
        raise HyperparameterError(
            f"Invalid optimizer name {entry.name!r}: lowercase letters, digits, '-' and '_', "
            f"starting with a letter, and not a wrapper ({', '.join(WRAPPERS)})"
        )
    if not (isinstance(entry.cls, type) and issubclass(entry.cls, torch.optim.Optimizer)):
        raise HyperparameterError(
            f"Invalid optimizer class for {entry.name!r}: {entry.cls!r} is not a "
            "torch.optim.Optimizer subclass"
        )
    if entry.name in REGISTRY and not replace:
        raise HyperparameterError(
            f"Optimizer {entry.name!r} is already registered ({REGISTRY[entry.name].cls.__name__}); "
            "pass replace=True to replace it"
        )
    REGISTRY[entry.name] = entry
    return entry


def unregister(name: str) -> Entry:
    """Remove a registered name (``KeyError`` if unknown); the entry that was there."""
    return REGISTRY.pop(name)


def names(*, wrapped: bool = False) -> list[str]:
    """The registry's names; with ``wrapped=True`` also ``wrapper(name)`` for every pair."""
    base = list(REGISTRY)
    if not wrapped:
        return base
    return base + [f"{w}({n})" for w in WRAPPERS for n in base]


def resolve(name: str) -> tuple[list[str], Entry]:
    """Split ``"lookahead(noisy(adam))"`` into wrappers (outermost first) and the base entry."""
    wrappers: list[str] = []
    inner = name.strip().lower()
    while (m := _WRAPPED.match(inner)) and m.group(1) in WRAPPERS:
        wrappers.append(m.group(1))
        inner = m.group(2).strip()
    if inner not in REGISTRY:
        candidates = names() + [f"{w}(<name>)" for w in WRAPPERS]
        close = close_matches(inner, candidates, n=3, cutoff=0.5)
        hint = f"; closest: {', '.join(close)}" if close else ""
        raise HyperparameterError(
            f"Unknown optimizer {name!r}{hint}. Known: {', '.join(names())}, "
            f"and wrapped names {', '.join(f'{w}(<name>)' for w in WRAPPERS)}"
        )
    return wrappers, REGISTRY[inner]


def _keywords(cls: type) -> set[str]:
    return {
        n
        for n, p in inspect.signature(cls.__init__).parameters.items()
        if n not in ("self", "base_optimizer") and p.kind is not p.VAR_KEYWORD
    }


def create(
    name: str, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]], **hparams: Any
) -> torch.optim.Optimizer:
    """Build a registry optimizer by name, wrapped ones included.

    Wrapper and base hyperparameters go in the same call and are routed by name::

        create("lookahead(sgdm)", model.parameters(), lr=0.1, momentum=0.9, k=5, alpha=0.5)

    An unknown name or hyperparameter raises ``ValueError`` naming the closest valid ones.
    """
    wrappers, entry = resolve(name)
    per_wrapper = []
    for w in wrappers:
        keys = _keywords(WRAPPERS[w])
        per_wrapper.append({k: hparams.pop(k) for k in list(hparams) if k in keys})
    optimizer = entry.create(params, **hparams)
    for w, kw in zip(reversed(wrappers), reversed(per_wrapper)):
        optimizer = WRAPPERS[w](optimizer, **kw)
    return optimizer
