"""A trial's summary: its final metrics, its problem's target, time-to-target and steps.

:class:`Summary` is read once from the JSON the store keeps (:meth:`Summary.from_json`, which
names the field of a bad value) and written back as it was read (:meth:`Summary.to_json`): a key
absent from an older store stays absent, a ``null`` stays ``null``, and keys this release does
not know are kept in ``extra``. It is also a read-only mapping of that JSON (``summary["final"]``),
for code written against the plain dicts of earlier releases.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from ._json import INTEGER, NUMBER, TEXT, TRUTH, Kind, table, typed

__all__ = ["Pretrained", "Summary", "Target"]


@dataclass(frozen=True)
class Target:
    """The problem's target as a trial recorded it: ``metric`` on ``split`` reaching ``value``."""

    metric: str
    value: float
    higher_is_better: bool
    split: str = "val"

    @classmethod
    def from_json(cls, doc: Any, where: str = "summary.target") -> Target:
        """The target of a stored summary; a ValueError names a missing or bad field."""
        doc = table(where, doc)
        for name, kind in (("metric", TEXT), ("value", NUMBER), ("higher_is_better", TRUTH)):
            if doc.get(name) is None:
                raise ValueError(f"{where}.{name}: missing; expected {kind[1]}")
            typed(f"{where}.{name}", doc[name], kind)
        split = typed(f"{where}.split", doc.get("split", "val"), TEXT)
        return cls(doc["metric"], doc["value"], doc["higher_is_better"], split)

    def reached(self, value: float) -> bool:
        """Whether ``value`` of the metric reaches the target."""
        return value >= self.value if self.higher_is_better else value <= self.value


@dataclass(frozen=True)
class Pretrained:
    """The pre-training of a fine-tuned trial (the ``finetune`` axis): problem, epochs, seconds."""

    problem: str
    epochs: int
    seconds: float


# Each field's JSON type; a field is written back when the summary had it (see ``nulls``).
_KINDS: dict[str, Kind] = {
    "main_metric": TEXT,
    "higher_is_better": TRUTH,
    "epochs_done": INTEGER,
    "steps": INTEGER,
    "train_seconds": NUMBER,
    "epochs_to_target": INTEGER,
    "seconds_to_target": NUMBER,
    "steps_per_epoch": INTEGER,
    "examples_per_epoch": INTEGER,
}


@dataclass(frozen=True)
class Summary(Mapping[str, Any]):
    """What a finished trial measured, beyond its curves.

    ``final`` holds the final metrics (``final[split][metric]``, see :meth:`value`); ``target``
    the problem's target, ``epochs_to_target`` and ``seconds_to_target`` when the run reached
    it (``None``: never); ``sharpness`` the sharpness measures of the final point (``None``: the
    problem has none); ``pretrained`` the pre-training of a fine-tuned trial. ``None`` in any
    other field means not recorded (an older store). ``nulls``: the fields written as ``null``
    when ``None`` (by default the two times to target; else those the stored JSON had).
    """

    main_metric: str | None = None
    higher_is_better: bool | None = None
    target: Target | None = None
    epochs_done: int | None = None
    steps: int | None = None
    final: Mapping[str, Mapping[str, float]] | None = None
    train_seconds: float | None = None
    epochs_to_target: int | None = None
    seconds_to_target: float | None = None
    steps_per_epoch: int | None = None
    examples_per_epoch: int | None = None
    sharpness: Mapping[str, float] | None = None
    pretrained: Pretrained | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    nulls: frozenset[str] = field(
        default=frozenset({"epochs_to_target", "seconds_to_target"}), compare=False, repr=False
    )

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Summary:
        """The summary a trial stored (any release's); a ValueError names a bad field."""
        doc = table("summary", doc)
        known = {f.name for f in fields(cls)} - {"extra", "nulls"}
        values = {k: typed(f"summary.{k}", doc[k], _KINDS[k]) for k in _KINDS if k in doc}
        if doc.get("target") is not None:
            values["target"] = Target.from_json(doc["target"])
        if doc.get("final") is not None:
            final = table("summary.final", doc["final"])
            for split, metrics in final.items():
                table(f"summary.final.{split}", metrics)
            values["final"] = final
        if doc.get("sharpness") is not None:
            values["sharpness"] = table("summary.sharpness", doc["sharpness"])
        if doc.get("pretrained") is not None:
            p = table("summary.pretrained", doc["pretrained"])
            kinds = {"problem": TEXT, "epochs": INTEGER, "seconds": NUMBER}
            values["pretrained"] = Pretrained(
                *(typed(f"summary.pretrained.{k}", p.get(k), kind) for k, kind in kinds.items())
            )
        nulls = frozenset(k for k in known if k in doc and doc[k] is None)
        extra = {k: v for k, v in doc.items() if k not in known}
        return cls(**values, extra=extra, nulls=nulls)

    def to_json(self) -> dict[str, Any]:
        """The summary as the store keeps it (JSON): the fields it has, then ``extra``."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("extra", "nulls") or (value is None and f.name not in self.nulls):
                continue
            if isinstance(value, (Target, Pretrained)):
                value = {g.name: getattr(value, g.name) for g in fields(value)}
            out[f.name] = dict(sorted(value.items())) if isinstance(value, Mapping) else value
        return dict(sorted({**out, **self.extra}.items()))  # in the store's order (sort_keys)

    def value(self, split: str, metric: str, default: float = math.nan) -> float:
        """The final ``metric`` on ``split`` (``default`` if it was not measured)."""
        return (self.final or {}).get(split, {}).get(metric, default)

    def __getitem__(self, key: str) -> Any:
        return self.to_json()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_json())

    def __len__(self) -> int:
        return len(self.to_json())
