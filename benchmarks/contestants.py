"""Who races whom in benchmarks/step.py: per algorithm, the torch.optim paths and peer packages.

Tables as data: an algorithm name (descentlab's registry name) maps to its torch.optim class and
keywords (raced with ``foreach=True`` and, where torch has it, ``fused=True``), to the peer
packages' classes, and to the number of full-size state tensors one step must read and write
(for the memory roofline).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

import descentlab

__all__ = ["LR", "SETTINGS", "Contestant", "bytes_per_param", "contestants"]

LR = 1e-3  # small enough that 100s of steps on a fixed gradient stay finite
WD = 5e-4  # SGDW's decay, given to every SGDW so that the decoupled path runs

# state tensors read and written per step (p and g come on top): minimum bytes per float32
# parameter = 4 (read p, g, states; write p, states) = 4 (3 + 2 k); Lookahead adds its slow
# weights every k = 5 steps (read p, slow; write p, slow): 16 / 5 bytes per step.
STATE_TENSORS = {
    "sgd": 0,
    "sgdm": 1,
    "nag": 1,
    "adagrad": 1,
    "rmsprop": 1,
    "adam": 2,
    "amsgrad": 3,
    "adamw": 2,
    "nadam": 2,
    "radam": 2,
    "adabound": 2,
    "amsbound": 3,
    "sgdw": 0,
    "sgdwm": 1,
    "swats": 2,  # the Adam phase: switch_tol=0 below keeps descentlab's SWATS in it
    "lookahead(adam)": 2,
    "adopt": 2,
    "ademamix": 3,
    "lion": 1,
    "schedule-free-adamw": 2,
    "schedule-free-sgd": 1,
}
EXTRA_BYTES = {"lookahead(adam)": 16 / 5}

# With the same gradient every step SWATS's rate estimate settles and it switches to its SGD
# phase (momentum SGD's 20 bytes per value) within the race; switch_tol=0 never switches. The
# peers keep their own switching rules.
HPARAMS = {
    "sgdw": {"weight_decay": WD},
    "sgdwm": {"weight_decay": WD},
    "swats": {"switch_tol": 0.0},
}

_SGD = "torch.optim.SGD"
TORCH: dict[str, tuple[str, dict[str, Any]]] = {
    "sgd": (_SGD, {}),
    "sgdm": (_SGD, {"momentum": 0.9}),
    "nag": (_SGD, {"momentum": 0.9, "nesterov": True}),
    "adagrad": ("torch.optim.Adagrad", {}),
    "rmsprop": ("torch.optim.RMSprop", {}),
    "adam": ("torch.optim.Adam", {}),
    "amsgrad": ("torch.optim.Adam", {"amsgrad": True}),
    "adamw": ("torch.optim.AdamW", {}),
    "nadam": ("torch.optim.NAdam", {}),
    "radam": ("torch.optim.RAdam", {}),
}
TORCH_FUSED = {"sgd", "sgdm", "nag", "adagrad", "adam", "amsgrad", "adamw"}

_PO, _TO, _AB = "pytorch_optimizer", "torch_optimizer", "adabound"
PEERS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "nadam": [(f"{_PO}.NAdam", {})],
    "radam": [(f"{_PO}.RAdam", {}), (f"{_TO}.RAdam", {})],
    "adabound": [(f"{_AB}.AdaBound", {}), (f"{_PO}.AdaBound", {}), (f"{_TO}.AdaBound", {})],
    "amsbound": [
        (f"{_AB}.AdaBound", {"amsbound": True}),
        (f"{_PO}.AdaBound", {"ams_bound": True}),
        (f"{_TO}.AdaBound", {"amsbound": True}),
    ],
    "sgdw": [(f"{_PO}.SGDW", {"weight_decay": WD}), (f"{_TO}.SGDW", {"weight_decay": WD})],
    "sgdwm": [
        (f"{_PO}.SGDW", {"weight_decay": WD, "momentum": 0.9}),
        (f"{_TO}.SGDW", {"weight_decay": WD, "momentum": 0.9}),
    ],
    "swats": [(f"{_PO}.SWATS", {}), (f"{_TO}.SWATS", {})],
    "lookahead(adam)": [(f"{_PO}.Lookahead", {}), (f"{_TO}.Lookahead", {})],
    "adopt": [("adopt.ADOPT", {}), (f"{_PO}.ADOPT", {})],  # the authors' package; a peer
    "ademamix": [(f"{_PO}.AdEMAMix", {})],
    "lion": [("lion_pytorch.Lion", {}), (f"{_PO}.Lion", {})],
}

# (a) one flat tensor; (b) about 200 tensors shaped like a conv net (conv, bias, norm weight
# and bias per layer, and a classifier)
SETTINGS = ("one tensor", "200 tensors")


@dataclass
class Contestant:
    """One optimizer implementation in the race; ``kind`` is descentlab, torch or peer."""

    label: str
    kind: str
    build: Callable[[list[torch.Tensor]], torch.optim.Optimizer]
    times: list[float] = field(default_factory=list)
    faults: int = 0
    steps: int = 0
    first: float = float("nan")


def bytes_per_param(name: str, itemsize: int = 4) -> float:
    """The minimum bytes one step moves per parameter (reads plus writes)."""
    return itemsize * (3 + 2 * STATE_TENSORS[name]) + EXTRA_BYTES.get(name, 0.0)


def _resolve(path: str) -> Any:
    module, _, attr = path.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def _peer(name: str, path: str, kwargs: dict[str, Any]) -> Callable:
    cls = _resolve(path)
    if name.startswith("lookahead("):  # the wrapper around torch's own Adam
        return lambda ps: cls(torch.optim.Adam(ps, lr=LR), **kwargs)
    return lambda ps: cls(ps, lr=LR, **kwargs)


def contestants(name: str) -> list[Contestant]:
    """descentlab's fast and readable paths, torch.optim's foreach/fused paths, the peers."""
    hp = {"lr": LR, **HPARAMS.get(name, {})}
    out = [
        Contestant(
            f"descentlab {impl}",
            "descentlab",
            lambda ps, impl=impl: descentlab.create(name, ps, impl=impl, **hp),
        )
        for impl in ("auto", "forloop")
    ]
    if name in TORCH:
        path, kw = TORCH[name]
        cls = _resolve(path)
        for flag in ("foreach", "fused") if name in TORCH_FUSED else ("foreach",):
            out.append(
                Contestant(
                    f"{path} {flag}",
                    "torch",
                    lambda ps, cls=cls, kw=kw, flag=flag: cls(ps, lr=LR, **kw, **{flag: True}),
                )
            )
    for path, kw in PEERS.get(name, []):
        try:
            out.append(Contestant(path, "peer", _peer(name, path, kw)))
        except ImportError as exc:  # a peer package that is not installed is left out
            print(f"# {path} left out: {exc}")
    return out
