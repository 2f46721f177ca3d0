"""The one table of problem test cases: tiny build options per problem, so each trains in seconds."""

from __future__ import annotations

TINY: dict[str, dict] = {
    "digits-logreg": {"n_train": 200},
    "digits-mlp": {"n_train": 200},
    "digits-cnn": {"n_train": 200},
}
