"""The built-in experiment of ``descentlab compare`` (``default.toml``), with overrides."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib import resources

from .spec import Experiment, parse

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["default_experiment"]


def default_experiment(
    *,
    problem: str | None = None,
    optimizers: Sequence[str] | None = None,
    epochs: int | None = None,
    seeds: Sequence[int] | None = None,
) -> Experiment:
    """The lecture's optimizers on digits-mlp, tuned with equal budgets, on 5 seeds.

    Args:
        problem: another problem instead of digits-mlp (then its own epoch budget is used).
        optimizers: registry names instead of the lecture's 14.
        epochs: epochs per run (default: 10 on digits-mlp, else the problem's budget).
        seeds: the seeds of the reported runs (the first one also tunes).

    Raises:
        SpecError: an override is invalid (the message names it).
    """
    data = tomllib.loads(resources.files(__package__).joinpath("default.toml").read_text())
    if problem is not None and [problem] != data["problems"]:
        data["problems"] = [problem]
        data.pop("epochs", None)
    if optimizers:
        data["optimizers"] = [{"name": name} for name in optimizers]
    if epochs is not None:
        data["epochs"] = epochs
    if seeds is not None:
        data["seeds"] = list(seeds)
    return parse(data, name=data["name"])
