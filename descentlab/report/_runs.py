"""Every trial of a report's experiments as ``runs/<key>.json`` (search runs included)."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Collection
from pathlib import Path
from typing import Any

from ..store import Store

__all__ = ["export_runs"]


def _clean(obj: Any) -> Any:
    """JSON without NaN/inf (not valid JSON): they become ``null``."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def export_runs(store: Store, out: Path, experiments: Collection[str]) -> list[str]:
    """Every trial of ``experiments`` (search runs included) as ``runs/<key>.json``; its keys."""
    runs = out / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    tags: dict[str, list[dict[str, str]]] = {}
    for t in store.records(role=None):
        if t.tag.experiment in experiments:
            tags.setdefault(t.key, []).append(
                {"experiment": t.tag.experiment, "role": t.tag.role, "label": t.tag.label}
            )
    for key, tagged in tags.items():
        t = store.record(key)
        r = t.result
        record = {
            "key": key,
            "version": t.version,
            "config": t.trial.config(),
            "status": t.status,
            "diverged": r is not None and r.diverged,
            "wall_time": None if r is None else r.wall_time,
            "error": None if r is None else r.error,
            "placement": None if r is None else dataclasses.asdict(r.placement),
            "tags": tagged,
            "summary": {} if r is None else r.summary.to_json(),
            "curves": [] if r is None else [dataclasses.asdict(c) for c in r.curves],
        }
        (runs / f"{key}.json").write_text(json.dumps(_clean(record), indent=1), encoding="utf-8")
    return sorted(tags)
