"""The records that cross the lab's parts: a :class:`Trial` in, a :class:`TrialResult` out.

They live with the store, which keeps them (and imports nothing of the lab). Tuning plans trials, the sweep hands them to a backend, the loop runs them, the store keeps them
and the report reads them; all of them use these records, and only this module knows how they
look as JSON. A trial's key (:meth:`Trial.key`) hashes :meth:`Trial.config`, the plain
configuration of release 0.1.0, where a field at its default is absent: a trial that uses no
new field (a CPU, float32 trial) keeps the key it had then, and a trial on another device or in
another precision gets another key, so results that differ never mix.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from ._summary import Summary

__all__ = [
    "KEY_VERSION",
    "PRECISIONS",
    "Curve",
    "Placement",
    "Stored",
    "Tag",
    "Trial",
    "TrialResult",
    "trial_key",
]

KEY_VERSION = "0.1.0"
"""The version hashed into every key: the release whose numbers trials reproduce. A release that
changes what a trial computes bumps it (old trials then rerun); others keep it."""
PRECISIONS = ("float32", "bf16", "fp16")
Status = Literal["finished", "failed"]

# Fields written to the configuration only when they differ from these (0.1.0 had none of them).
_OPTIONAL = {
    "tricks": {},
    "sharpness": False,
    "device": "cpu",
    "precision": "float32",
    "deterministic": False,
}


@dataclass(frozen=True)
class Trial:
    """What a trial is: everything that changes its numbers, and nothing else.

    ``device`` is the device *type* (``"cpu"``, ``"cuda"``, ``"mps"``): which GPU of a machine
    runs it is the backend's choice and does not change the result. ``tricks`` are the axes the
    trial runner applies (see :mod:`descentlab.lab.axes`), without those that are off.
    """

    problem: str
    seed: int
    epochs: int
    batch_size: int | str
    optimizer: str
    options: Mapping[str, Any] = field(default_factory=dict)
    hparams: Mapping[str, Any] = field(default_factory=dict)
    schedule: str | None = None
    schedule_args: Mapping[str, Any] = field(default_factory=dict)
    tricks: Mapping[str, Any] = field(default_factory=dict)
    sharpness: bool = False
    device: str = "cpu"
    precision: str = "float32"
    deterministic: bool = False

    def __hash__(self) -> int:
        return hash(self.key())

    def config(self) -> dict[str, Any]:
        """The plain configuration (JSON), fields at their default left out."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _OPTIONAL and value == _OPTIONAL[f.name]:
                continue
            out[f.name] = dict(value) if isinstance(value, Mapping) else value
        return out

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Trial:
        """The trial of a plain configuration (as :meth:`config` writes it, or 0.1.0 did)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(config) - names)
        if unknown:
            raise ValueError(f"trial configuration: unknown keys {', '.join(unknown)}")
        return cls(**config)

    def key(self, version: str = KEY_VERSION) -> str:
        """The trial's identity in the store: see :func:`trial_key`."""
        return trial_key(self.config(), version)


def trial_key(trial: Trial | Mapping[str, Any], version: str = KEY_VERSION) -> str:
    """A hash of the trial's configuration and ``version`` (:data:`KEY_VERSION`)."""
    config = trial.config() if isinstance(trial, Trial) else trial
    blob = json.dumps({"config": config, "version": version}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Curve:
    """One series of a trial: ``split`` (``train``, ``val``, ``test``, ``time``), ``metric``,
    ``unit`` (``step`` or ``epoch``) and its values."""

    split: str
    metric: str
    unit: str
    values: list[float]


@dataclass(frozen=True)
class Placement:
    """Where a trial ran: device type and name, torch and CUDA versions, precision.

    Trials stored before placements were recorded read as :meth:`unrecorded` (CPU, float32).
    """

    device_type: str = "cpu"
    device_name: str = ""
    torch: str = ""
    cuda: str | None = None
    precision: str = "float32"

    @classmethod
    def unrecorded(cls) -> Placement:
        """A trial of release 0.1.0: it ran on a CPU in float32; nothing else is known."""
        return cls()

    @classmethod
    def here(cls, device: Any, precision: str) -> Placement:
        """The placement of a run on the ``torch.device`` ``device`` of this machine."""
        import torch

        if device.type == "cuda":
            name = torch.cuda.get_device_name(device)
        else:
            name = platform.processor() or platform.machine()
        return cls(device.type, name, torch.__version__, torch.version.cuda, precision)

    @property
    def label(self) -> str:
        """How a report shows it: ``"cuda (NVIDIA H200), bf16"`` or ``"cpu"``."""
        where = f"{self.device_type} ({self.device_name})" if self.device_name else self.device_type
        return where if self.precision == "float32" else f"{where}, {self.precision}"


@dataclass(frozen=True)
class TrialResult:
    """What a trial produced.

    ``summary`` holds the final metrics (``final[split][metric]``), the problem's ``main_metric``
    and target, time-to-target, steps (a :class:`~descentlab.store.Summary`; a plain mapping, as
    the store keeps it, is read into one); ``curves`` the training loss of every step, each split's
    loss and metrics after every epoch (epoch 0 is before training) and the cumulative training
    seconds (``time/train_seconds``).
    """

    status: Status
    diverged: bool = False
    wall_time: float = 0.0
    error: str | None = None
    summary: Summary = field(default_factory=Summary)
    curves: tuple[Curve, ...] = ()
    placement: Placement = field(default_factory=Placement.unrecorded)

    def __post_init__(self) -> None:
        if not isinstance(self.summary, Summary):
            object.__setattr__(self, "summary", Summary.from_json(self.summary))

    @classmethod
    def failure(cls, error: str, placement: Placement | None = None) -> TrialResult:
        """The outcome of a trial that could not run (an exception, or its worker died)."""
        return cls("failed", error=error, placement=placement or Placement.unrecorded())

    @property
    def ok(self) -> bool:
        """Finished without diverging: its metrics count."""
        return self.status == "finished" and not self.diverged

    def final(self, split: str, metric: str, default: float = float("nan")) -> float:
        """The final ``metric`` on ``split`` (``default`` if it was not measured)."""
        return self.summary.value(split, metric, default)

    def curve(self, split: str, metric: str) -> list[float]:
        """The values of one curve (empty if the trial has none)."""
        return next((c.values for c in self.curves if (c.split, c.metric) == (split, metric)), [])


@dataclass(frozen=True)
class Tag:
    """Which experiment a trial serves, in which role (``tune`` or ``final``), on which problem
    (its label in reports) and under which row label."""

    experiment: str
    role: str
    problem: str
    label: str


@dataclass(frozen=True)
class Stored:
    """A trial as the store holds it: its key, the trial, the package version that wrote it,
    its status and, once it ended, its result (``None`` while ``running``); ``tag`` when read
    through a tag (:meth:`Store.records`)."""

    key: str
    trial: Trial
    version: str
    status: str
    started: float
    finished: float | None
    result: TrialResult | None
    tag: Tag | None = None
