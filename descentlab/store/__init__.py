"""The results store (SQLite, resumable), the records it keeps, and its exports (CSV, pandas)."""

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
    "Store",
    "StoreError",
    "Stored",
    "Tag",
    "Trial",
    "TrialResult",
    "load_results",
    "results",
    "to_csv",
    "trial_key",
]
