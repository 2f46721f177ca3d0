"""Experiment files: a TOML file of problems x optimizers x seeds, with learning-rate tuning.

An experiment file looks like this (every key but ``problems`` and ``optimizers`` is optional)::

    name = "adam-fixes"
    description = "Adam and the methods that fix it"
    problems = ["digits-mlp", { name = "digits-cnn", options = { n_train = 200 }, epochs = 4 }]
    seeds = 5                  # 5 means seeds 0..4; or a list such as [0, 7, 42]
    epochs = 10                # overrides every problem's budget (a problem's own epochs win)
    batch_size = 64            # or a list: an axis (see descentlab.lab.axes for every axis)
    device = "auto"            # "cpu", "cuda", "cuda:1", "mps"; auto: a GPU when torch sees one
    deterministic = false      # torch's deterministic algorithms: the same curves on one device

    [tuning]
    method = "random"          # "grid", "random" (log-uniform), "quasi-random" or "defaults"
    budget = 8                 # learning rates tried per optimizer (the same for every one)
    # refine = 2               # of the budget: the last 2 around the first 6's best
    # refine_factor = 3.0      #   in [best / 3, best * 3] (random and quasi-random only)
    lr_factor = 10.0           # search [lr0 / 10, lr0 * 10] around each optimizer's default lr0
    # lr_range = [1e-4, 1.0]   # or one absolute range for every optimizer
    seed = 0                   # the seed of the tuning runs (default: the first seed)
    # seeds = [0, 1]           # or repeat the search once per tuning seed (instead of seed)
    weight_decay_range = [1e-3, 1.0]  # decoupled-decay optimizers: search (lr, weight decay)
    defaults = true            # also run every optimizer untuned, labelled "<label>@defaults"

    [[optimizers]]
    name = "adam"              # a registry name, "torch.optim.Adam" or "pytorch_optimizer:Lion"
    label = "adam"             # how reports call it (default: the name)
    hparams = { weight_decay = 0.0 }
    schedule = "cosine"        # from descentlab.schedules, if installed
    schedule_args = { warmup_steps = 50 }
    tune = true                # false: run at hparams.lr (or the default lr) without tuning

Tuning follows DeepOBS (Schneider, Balles & Hennig 2019): every optimizer gets the same number of
learning rates, chosen on the validation metric on the tuning seed, and the best setting is rerun
on all seeds; ``weight_decay_range`` makes the search of every decoupled-decay optimizer joint over
the learning rate and the weight decay, with the same budget; ``quasi-random`` covers the range
evenly (a scrambled Sobol sequence); ``refine`` spends the last points of the budget around the
first points' best; ``seeds`` repeats the whole search
once per tuning seed, to show which conclusions survive the tuning's own randomness (see
:mod:`descentlab.lab.tuning`). Besides the optimizers, an experiment may vary what helps optimization (batch
size, shuffling, curriculum, initialization, normalization, dropout, weight decay, gradient noise,
warm-up, fine-tuning): the keys of :mod:`descentlab.lab.axes`. Every error raised here is a
:class:`SpecError` naming the key and what is allowed.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ._build import build_optimizer, build_schedule, default_lr, load_problem
from ._errors import SpecError
from ._tuning_spec import MAX_COUNT, METHODS, Tuning, parse_tuning
from ._tuning_spec import check as _check
from ._tuning_spec import integer as _int
from ._tuning_spec import seeds as _seeds
from .axes import AXES, Variant, variants
from .devices import DeviceError, check_name, resolve

if TYPE_CHECKING:
    from ..problems import Problem

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "METHODS",
    "Experiment",
    "OptimizerSpec",
    "ProblemSpec",
    "SpecError",
    "Tuning",
    "load",
    "parse",
]

_TOP = (
    "name",
    "description",
    "problems",
    "seeds",
    "epochs",
    "sharpness",
    "device",
    "deterministic",
    "tuning",
    "optimizers",
    "design",
    *AXES,
)
_OPTIMIZER = ("name", "label", "hparams", "schedule", "schedule_args", "tune")
_PROBLEM = ("name", "options", "epochs", "axes")


@dataclass(frozen=True)
class ProblemSpec:
    """One problem of an experiment, with the options its ``build`` takes (its ``axes``).

    ``problem`` is the :class:`~descentlab.problems.Problem` that ``name`` names, loaded once
    when the experiment is read.
    """

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)
    variants: tuple[Variant, ...] | None = None  # its own axes, instead of the experiment's
    epochs: int | None = None  # its own budget, instead of the experiment's and the problem's
    problem: Problem = field(kw_only=True, compare=False, repr=False)

    @property
    def label(self) -> str:
        """How reports call it: the name, with the options if any (``digits-cnn[n_train=200]``)."""
        if not self.options:
            return self.name
        return f"{self.name}[{','.join(f'{k}={v}' for k, v in sorted(self.options.items()))}]"


@dataclass(frozen=True)
class OptimizerSpec:
    """One optimizer entry of an experiment.

    Resolved once, when the experiment is read, from the optimizer built on a dummy parameter:
    ``lr0``, its own learning rate (``hparams.lr``, else its default), and ``decoupled``,
    whether its weight decay is decoupled (:func:`descentlab.lab.tuning.decoupled`).
    """

    name: str
    label: str
    hparams: Mapping[str, Any] = field(default_factory=dict)
    schedule: str | None = None
    schedule_args: Mapping[str, Any] = field(default_factory=dict)
    tune: bool = True
    lr0: float = field(kw_only=True)
    decoupled: bool = field(kw_only=True)


@dataclass(frozen=True)
class Experiment:
    """A parsed, validated experiment."""

    name: str
    problems: tuple[ProblemSpec, ...]
    optimizers: tuple[OptimizerSpec, ...]
    seeds: tuple[int, ...] = (0,)
    tuning: Tuning = field(default_factory=Tuning)
    epochs: int | None = None
    description: str = ""
    sharpness: bool = False  # measure the sharpness of each final point (supervised problems)
    variants: tuple[Variant, ...] = (Variant(),)  # the axes' combinations (descentlab.lab.axes)
    design: str = "grid"
    device: str = "auto"  # descentlab.lab.devices: "auto", "cpu", "cuda", "cuda:N", "mps"
    deterministic: bool = False  # torch's deterministic algorithms: same curves on one device

    def variants_for(self, problem: ProblemSpec) -> tuple[Variant, ...]:
        """The variants run on ``problem``: its own axes if it has them, else the experiment's."""
        return problem.variants if problem.variants is not None else self.variants

    def epochs_for(self, problem: ProblemSpec, *, tuning: bool = False) -> int:
        """A trial's epochs: the tuning's (search runs), else the problem entry's, the
        experiment's, the problem's own budget, the first given."""
        own = problem.epochs or self.epochs or problem.problem.budget.epochs
        return (self.tuning.epochs or own) if tuning else own

    @cached_property
    def where(self) -> torch.device:
        """The ``torch.device`` that ``device`` means on this machine, resolved once (on first
        use, not when the file is read: ``--device`` may replace a file's ``cuda`` on a CPU
        machine); a DeviceError if it is not here."""
        return resolve(self.device)


def _entry(key: str, value: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    """A list entry given as a name (``"adam"``) or as a table (``{ name = "adam", ... }``)."""
    entry = _check.table(key, {"name": value} if isinstance(value, str) else value)
    _check.unknown(f"{key}.", entry, allowed)
    return entry


def _problem(i: int, value: Any, design: str) -> ProblemSpec:
    key = f"problems[{i}]"
    p = _entry(key, value, _PROBLEM)
    name = _check.string(f"{key}.name", p.get("name"))
    options = _check.table(f"{key}.options", p.get("options", {}))
    epochs = p.get("epochs")
    epochs = None if epochs is None else _int(f"{key}.epochs", epochs, maximum=MAX_COUNT)
    try:
        problem = load_problem(name)
    except (ValueError, ImportError, AttributeError) as e:
        raise SpecError(f"{key}: {e}") from e
    try:
        problem.check_options(options)
    except ValueError as e:
        raise SpecError(f"{key}.options.{e}") from e
    own = None
    if "axes" in p:
        axes = _check.table(f"{key}.axes", p["axes"])
        _check.unknown(f"{key}.axes.", axes, AXES)
        try:
            own = variants(axes, design)
        except SpecError as e:
            raise SpecError(f"{key}.axes.{e}") from e
    return ProblemSpec(name, options, own, epochs, problem=problem)


def _problems(value: Any, design: str) -> tuple[ProblemSpec, ...]:
    if not isinstance(value, list) or not value:
        raise SpecError(
            f"problems: {value!r}; expected a non-empty list of problem names or tables"
            " { name = ..., options = {...} }"
        )
    specs = tuple(_problem(i, p, design) for i, p in enumerate(value))
    labels = [p.label for p in specs]
    for label in labels:
        if labels.count(label) > 1:
            raise SpecError(f"problems: {label!r} appears twice; problems must be distinct")
    return specs


def _check_optimizer(
    key: str, name: str, hparams: dict[str, Any], schedule: str | None, args: dict[str, Any]
) -> tuple[float, bool]:
    """Build the optimizer (and schedule) once on a dummy parameter: bad names fail here.

    Returns its own learning rate and whether its weight decay is decoupled: the flag
    ``decoupled_weight_decay`` that torch.optim and the registry's classes set.
    """
    try:
        lr = hparams.get("lr", default_lr(name))
        dummy = [torch.zeros(1, requires_grad=True)]
        optimizer = build_optimizer(name, dummy, {**hparams, "lr": lr})
        if schedule is not None:
            build_schedule(schedule, optimizer, total_steps=10**6, args=args)
    except (ValueError, TypeError, ImportError) as e:
        raise SpecError(f"{key}: {e}") from e
    return float(lr), bool(optimizer.param_groups[0].get("decoupled_weight_decay", False))


def _optimizer(i: int, value: Any) -> OptimizerSpec:
    key = f"optimizers[{i}]"
    o = _entry(key, value, _OPTIMIZER)
    if "name" not in o:
        raise SpecError(f"{key}.name: missing; expected a registry name or 'module:Class'")
    name = _check.string(f"{key}.name", o["name"])
    hparams = _check.table(f"{key}.hparams", o.get("hparams", {}))
    schedule = o.get("schedule")
    schedule = None if schedule is None else _check.string(f"{key}.schedule", schedule)
    args = _check.table(f"{key}.schedule_args", o.get("schedule_args", {}))
    lr0, decoupled = _check_optimizer(
        f"{key} (name, hparams, schedule)", name, hparams, schedule, args
    )
    return OptimizerSpec(
        name=name,
        label=_check.string(f"{key}.label", o.get("label", name)),
        hparams=hparams,
        schedule=schedule,
        schedule_args=args,
        tune=_check.boolean(f"{key}.tune", o.get("tune", True)),
        lr0=lr0,
        decoupled=decoupled,
    )


def parse(data: Mapping[str, Any], *, name: str = "experiment") -> Experiment:
    """Validate a decoded TOML document and return the :class:`Experiment`."""
    _check.unknown("", data, _TOP)
    for key in ("problems", "optimizers"):
        if key not in data:
            raise SpecError(f"{key}: missing; an experiment needs problems and optimizers")
    optimizers = data["optimizers"]
    if not isinstance(optimizers, list) or not optimizers:
        raise SpecError(
            f"optimizers: {optimizers!r}; expected a non-empty array of tables ([[optimizers]])"
        )
    specs = tuple(_optimizer(i, o) for i, o in enumerate(optimizers))
    labels = [o.label for o in specs]
    for label in labels:
        if labels.count(label) > 1 or label.endswith("@defaults"):
            raise SpecError(
                f"optimizers.label: {label!r} is repeated or reserved; labels must be distinct"
                " and must not end in '@defaults'"
            )
    epochs = data.get("epochs")
    sharpness = data.get("sharpness", False)
    if not isinstance(sharpness, bool):
        raise _check.fail("sharpness", sharpness, "allowed: true or false")
    design = data.get("design", "grid")
    combos = variants(data, design)  # checks the design first
    problems = _problems(data["problems"], design)
    for i, p in enumerate(problems):
        _check_axes(i, p, specs, combos if p.variants is None else p.variants)
    return Experiment(
        name=_check.string("name", data.get("name", name)),
        description=str(data.get("description", "")),
        problems=problems,
        optimizers=specs,
        seeds=_seeds(data.get("seeds", 1)),
        tuning=parse_tuning(data.get("tuning", {})),
        epochs=None if epochs is None else _int("epochs", epochs, maximum=MAX_COUNT),
        sharpness=sharpness,
        variants=combos,
        design=design,
        device=_device(data.get("device", "auto")),
        deterministic=_check.boolean("deterministic", data.get("deterministic", False)),
    )


def _device(name: Any) -> str:
    try:
        return check_name(name)
    except DeviceError as e:
        raise SpecError(str(e)) from e


def _check_axes(
    i: int, p: ProblemSpec, optimizers: tuple[OptimizerSpec, ...], combos: tuple[Variant, ...]
) -> None:
    """Every axis value fits the problem and the optimizers it meets (the axes' own rules, and
    the rules of where their values go), or a SpecError names both."""
    used = {k: [v.settings[k] for v in combos] for k in combos[0].settings}
    problem = p.problem
    where = f"problems[{i}] ({p.label})"
    for name, values in used.items():
        axis = AXES[name]
        off = all(v == axis.off for v in values)
        if axis.supervised_only and problem.kind != "supervised" and not off:
            raise SpecError(
                f"{name}: problem {p.name!r} (kind {problem.kind}) cannot take the axis "
                f"{name}: only supervised problems have a fixed training set ({where})"
            )
        if axis.where == "option" and name not in problem.axes:
            allowed = ", ".join(sorted(problem.axes - {"batch_size", "data_dir"})) or "none"
            raise SpecError(
                f"{name}: problem {p.name!r} has no place for {name} ({where}); "
                f"its options: {allowed}"
            )
        if axis.where == "option" and name in p.options:
            raise SpecError(f"{name}: also set in {where}.options; set it in one place")
        if axis.fits is not None:
            axis.fits(problem, values, where)
    for j, o in enumerate(optimizers):
        for name in used:
            if AXES[name].clashes is not None:
                AXES[name].clashes(o, f"optimizers[{j}] ({o.label})")


def load(path: str | Path) -> Experiment:
    """Read and validate an experiment file; the experiment's name defaults to the file's stem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as e:
        raise SpecError(f"{path}: cannot read the experiment file: {e}") from e
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{path}: not valid TOML: {e}") from e
    return parse(data, name=path.stem)
