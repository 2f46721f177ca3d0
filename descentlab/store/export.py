"""Flat views of the store: one row per trial and tag, as dicts, CSV or a pandas DataFrame."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from ._summary import Summary
from .db import Store
from .records import Stored

__all__ = ["load_results", "results", "to_csv"]

_FIRST = (
    "experiment",
    "role",
    "problem",
    "label",
    "seed",
    "optimizer",
    "lr",
    "status",
    "diverged",
    "wall_time",
    "epochs_to_target",
    "seconds_to_target",
)


def _row(t: Stored) -> dict[str, Any]:
    c, r, tag = t.trial, t.result, t.tag
    s = r.summary if r is not None else Summary()
    row = {
        "experiment": tag.experiment,
        "role": tag.role,
        "problem": tag.problem,
        "label": tag.label,
        "seed": c.seed,
        "optimizer": c.optimizer,
        "lr": c.hparams.get("lr"),
        "status": t.status,
        "diverged": r.diverged if r is not None else False,
        "wall_time": r.wall_time if r is not None else None,
        "epochs_to_target": s.epochs_to_target,
        "seconds_to_target": s.seconds_to_target,
    }
    for split, metrics in (s.final or {}).items():
        row.update({f"{split}_{m}": v for m, v in metrics.items()})
    row.update(
        key=t.key,
        version=t.version,
        epochs=c.epochs,
        batch_size=c.batch_size,
        hparams=json.dumps(c.hparams, sort_keys=True),
        schedule=c.schedule,
        device=c.device,
        precision=c.precision,
        device_name=r.placement.device_name if r is not None else None,
    )
    return row


def results(
    db: str | Path = "runs.db", *, experiment: str | None = None, role: str | None = "final"
) -> list[dict[str, Any]]:
    """One flat dict per trial and tag: its configuration, outcome and final metrics.

    Args:
        db: the store.
        experiment: only this experiment (default: all).
        role: ``"final"`` (reported runs, the default), ``"tune"`` (search runs) or ``None``.
    """
    if not Path(db).exists():
        raise FileNotFoundError(f"no results store at {db}")
    with Store(db) as store:
        return [_row(t) for t in store.records(experiment=experiment, role=role)]


def load_results(
    db: str | Path = "runs.db", *, experiment: str | None = None, role: str | None = "final"
) -> Any:
    """:func:`results` as a pandas DataFrame (pandas is the optional extra ``descentlab[lab]``)."""
    try:
        import pandas as pd
    except ImportError as e:
        raise ImportError(
            "load_results needs pandas: pip install 'descentlab[lab]' (or pandas); "
            "descentlab.store.results gives the same rows as dicts"
        ) from e
    return pd.DataFrame(results(db, experiment=experiment, role=role))


def to_csv(
    db: str | Path, path: str | Path, *, experiment: str | None = None, role: str | None = "final"
) -> Path:
    """Write :func:`results` to a CSV file (columns: the union over rows); returns the path."""
    rows = results(db, experiment=experiment, role=role)
    columns = list(_FIRST)
    for row in rows:
        columns += [k for k in row if k not in columns]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path
