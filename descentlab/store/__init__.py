"""The results store (SQLite, resumable), the records it keeps, and its exports (CSV, pandas)."""

from ._experiment import Row, StoredExperiment, Tuning
from ._summary import Pretrained, Summary, Target
from .db import Store, StoreError
from .export import load_results, results, to_csv
from .records import (
    KEY_VERSION,
    PRECISIONS,
    Curve,
    Placement,
    Stored,
    Tag,
    Trial,
    TrialResult,
    trial_key,
)

__all__ = [
    "KEY_VERSION",
    "PRECISIONS",
    "Curve",
    "Placement",
    "Pretrained",
    "Row",
    "Store",
    "StoreError",
    "Stored",
    "StoredExperiment",
    "Summary",
    "Tag",
    "Target",
    "Trial",
    "TrialResult",
    "Tuning",
    "load_results",
    "results",
    "to_csv",
    "trial_key",
]
