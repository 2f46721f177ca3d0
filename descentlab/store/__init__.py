"""The results store (SQLite, resumable) and its exports (CSV, pandas)."""

from .db import Store, StoreError, trial_key
from .export import load_results, results, to_csv

__all__ = ["Store", "StoreError", "load_results", "results", "to_csv", "trial_key"]
