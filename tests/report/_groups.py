"""Report rows built by hand: groups of finished runs with given final test accuracies."""

from __future__ import annotations

from descentlab.report._data import Group
from descentlab.store import Stored, Trial, TrialResult


def group(label: str, values: list[float], *, higher: bool = True) -> Group:
    """A group of finished runs whose final test accuracies are ``values``."""
    runs = []
    for seed, v in enumerate(values):
        trial = Trial(problem="p", seed=seed, epochs=1, batch_size=1, optimizer=label)
        summary = {
            "main_metric": "accuracy",
            "higher_is_better": higher,
            "final": {"test": {"accuracy": v}},
        }
        result = TrialResult("finished", summary=summary)
        runs.append(Stored(trial.key(), trial, "0.1.0", "finished", 0.0, 1.0, result))
    return Group("e", "p", label, runs)
