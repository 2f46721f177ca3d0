"""An experiment as the store keeps it: its tuning, seeds and the report's rows, typed.

The lab writes the whole experiment as JSON (:func:`descentlab.lab.sweep.document`); the report
reads what it shows through :meth:`StoredExperiment.from_json`, once, when the store is read. A
store of an earlier release reads too: a key it lacks takes its default (no ``tuning`` table:
not tuned); a value of the wrong type is a ValueError naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from ._json import INTEGER, NUMBER, TEXT, TRUTH, Kind, items, table, typed

__all__ = ["Row", "StoredExperiment", "Tuning"]


@dataclass(frozen=True)
class Tuning:
    """How learning rates are searched: the same ``budget`` for every optimizer.

    ``weight_decay_range``: also search the weight decay of decoupled-decay optimizers (in the
    same budget). ``seeds``: one search per tuning seed (``None``: one search, on ``seed``).
    ``refine``: the last ``refine`` settings of the budget are drawn around the first
    ``budget - refine``'s best, within a factor ``refine_factor`` on each side.
    """

    method: str = "random"
    budget: int = 6
    lr_factor: float = 10.0
    lr_range: tuple[float, float] | None = None
    seed: int | None = None
    defaults: bool = False
    epochs: int | None = None
    weight_decay_range: tuple[float, float] | None = None
    seeds: tuple[int, ...] | None = None
    refine: int = 0
    refine_factor: float = 3.0

    @classmethod
    def from_json(cls, doc: Any, where: str = "tuning") -> Tuning:
        """The tuning of a stored experiment (keys it lacks take their defaults)."""
        doc = table(where, doc)
        out: dict[str, Any] = {}
        for f in fields(cls):
            value, key = doc.get(f.name), f"{where}.{f.name}"
            if f.name not in doc:
                continue
            if f.name in _TUNING or value is None:
                out[f.name] = typed(key, value, _TUNING.get(f.name, NUMBER))
            elif f.name == "seeds":
                out[f.name] = items(key, value, INTEGER)
            else:  # a range
                out[f.name] = items(key, value, NUMBER)
                if len(out[f.name]) != 2:
                    raise ValueError(f"{key}: {value!r}; expected [low, high]")
        return cls(**out)


@dataclass(frozen=True)
class Row:
    """A row of the report: its ``label``, its optimizer's label, its variant's label and the
    axes that variant changes from the baseline (``design = "one-at-a-time"`` groups by them)."""

    label: str
    optimizer: str
    variant: str = ""
    changed: tuple[str, ...] = ()


@dataclass(frozen=True)
class StoredExperiment:
    """What the report reads of a stored experiment.

    ``problem_labels`` and ``rows`` give the report's order (an older store may lack ``rows``:
    then ``optimizers``, the optimizers' labels, do); ``variants`` are the variants' labels.
    """

    name: str
    description: str = ""
    seeds: tuple[int, ...] = ()
    tuning: Tuning = field(default_factory=lambda: Tuning(method="defaults"))
    design: str = "grid"
    problem_labels: tuple[str, ...] = ()
    rows: tuple[Row, ...] = ()
    optimizers: tuple[str, ...] = ()
    variants: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, name: str, doc: Any) -> StoredExperiment:
        """The experiment ``name`` as stored (any release's); a ValueError names a bad field."""
        doc = table("spec", doc)
        out: dict[str, Any] = {"name": name}
        for key in ("description", "design"):
            if doc.get(key) is not None:
                out[key] = typed(key, doc[key], TEXT)
        for key in ("seeds", "problem_labels"):
            if key in doc:
                out[key] = items(key, doc[key], INTEGER if key == "seeds" else TEXT)
        if doc.get("tuning") is not None:
            out["tuning"] = Tuning.from_json(doc["tuning"])
        rows = items("rows", doc.get("rows", []), (Mapping, "a table"))
        out["rows"] = tuple(_row(f"rows[{i}]", r) for i, r in enumerate(rows))
        return cls(**out, optimizers=_labels("optimizers", doc), variants=_labels("variants", doc))

    @property
    def labels(self) -> list[str]:
        """The rows' labels in the experiment's order (the optimizers' for an older store)."""
        return [r.label for r in self.rows] or list(self.optimizers)

    def changed(self, label: str) -> tuple[str, ...]:
        """The axes the row ``label`` changes from the baseline (none for an unknown label)."""
        return next((r.changed for r in self.rows if r.label == label), ())

    @property
    def tuning_seeds(self) -> list[int]:
        """The tuning seed of each search, the reported one first (a single search: its
        training seed, ``tuning.seed`` or else the first seed); none without a search."""
        t = self.tuning
        if t.method == "defaults":
            return []
        if t.seeds:
            return list(t.seeds)
        return [t.seed if t.seed is not None or not self.seeds else self.seeds[0]]


_TUNING: dict[str, Kind] = {
    "method": TEXT,
    "budget": INTEGER,
    "lr_factor": NUMBER,
    "seed": INTEGER,
    "defaults": TRUTH,
    "epochs": INTEGER,
    "refine": INTEGER,
    "refine_factor": NUMBER,
}


def _labels(key: str, doc: Mapping[str, Any]) -> tuple[str, ...]:
    """The ``label`` of each table of the list ``doc[key]`` ("" where it has none)."""
    entries = items(key, doc.get(key, []), (Mapping, "a table"))
    return tuple(
        typed(f"{key}[{i}].label", e.get("label", ""), TEXT) for i, e in enumerate(entries)
    )


def _row(key: str, value: Any) -> Row:
    r = table(key, value)
    if "label" not in r or "optimizer" not in r:
        raise ValueError(f"{key}: {value!r}; expected a table with label and optimizer")
    return Row(
        label=typed(f"{key}.label", r["label"], TEXT),
        optimizer=typed(f"{key}.optimizer", r["optimizer"], TEXT),
        variant=typed(f"{key}.variant", r.get("variant", ""), TEXT),
        changed=items(f"{key}.changed", r.get("changed", []), TEXT),
    )
