"""The one table of problem test cases: tiny build options per problem, so each trains in seconds."""

from __future__ import annotations

TINY: dict[str, dict] = {
    "digits-logreg": {"n_train": 200},
    "digits-mlp": {"n_train": 200},
    "digits-cnn": {"n_train": 200},
    "mnist1d-mlp": {"n_train": 300},
    "mnist1d-cnn": {"n_train": 300},
    "charlm-lstm": {"corpus_chars": 5000, "seq_len": 16, "hidden": 16},
    "wilson-linreg": {"n_train": 20, "n_val": 10, "n_test": 20},
    "gan-mog": {"width": 16, "steps_per_epoch": 5, "n_eval": 200},
}
