"""The axes of an experiment besides the optimizer: what helps optimization.

The lecture ends with what helps optimization beyond the optimizer: batch size, shuffling,
curriculum learning, initialization, normalization, dropout, weight decay, gradient noise,
warm-up and fine-tuning. Each is a top-level key of an experiment file. A single value applies
to every trial; a list of values makes the key an axis, varied next to the optimizers::

    batch_size = [32, 1, "full"]          # an integer, or "full": full-batch gradient descent
    shuffle = ["epoch", "once", "none"]   # reshuffle every epoch, shuffle once, fixed order
    curriculum = ["none", { score = "reference", start = 0.25, epochs = 5, pacing = "linear" }]
    init = ["default", "zeros", { scheme = "normal", std = 0.01 }, "kaiming_normal"]
    normalization = ["none", "batch", "layer"]   # where the problem's model has a place
    dropout = [0.0, 0.3]
    weight_decay = [0, { value = 1e-4, coupling = "l2" }, { value = 1e-4, coupling = "decoupled" }]
    gradient_noise = ["none", { eta = 0.01, gamma = 0.55 }]
    warmup = ["none", 0.05]               # a fraction of the run's steps, or a count of steps
    finetune = ["none", { problem = "digits-mlp", options = { classes = [0, 1, 2, 3, 4] },
                          epochs = 10, label = "pretrained on 0-4" }]
    precision = ["float32", "bf16", "fp16"]   # autocast; fp16 scales the loss (GradScaler)
    design = "one-at-a-time"              # or "grid" (default): every combination of the lists

With ``design = "one-at-a-time"`` the first value of every list is the baseline and each other
value is varied alone. Every variant is tuned like an optimizer of its own (the same budget) and
reported as a row ``"<optimizer> [<variant>]"``; the baseline keeps the optimizer's label.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..checks import Checks
from ..problems.init import INITS
from ..store import PRECISIONS
from . import tricks as tr
from ._errors import SpecError

__all__ = ["AXES", "DESIGNS", "PHASES", "Axis", "Variant", "axis_options", "hooks", "variants"]

DESIGNS = ("grid", "one-at-a-time")
PHASES = ("model", "data", "weights", "wrap", "optimizer", "schedule")
"""When hooks run, in this order: ``model`` (the task is built: change its model), ``data`` (its
training order), ``weights`` (start from other weights), ``wrap`` (wrap each optimizer),
``optimizer`` (hook into the wrapped optimizer), ``schedule`` (change the learning-rate schedule).
Within a phase, hooks run in the order of :data:`AXES`; a hook that several axes share runs once."""
_OFF = "none"
_check = Checks(SpecError)


def _number(key: str, value: Any, lo: float, hi: float, *, closed_hi: bool = False) -> float:
    return _check.number(key, value, lo, hi, hi_open=not closed_hi)


def _int(key: str, value: Any, minimum: int = 1, maximum: int = 10**6) -> int:
    return _check.integer(key, value, minimum=minimum, maximum=maximum)


_choice = _check.choice
_fields = _check.fields


def _fraction(key: str, value: Any) -> float:
    if _number(key, value, 0.0, 1.0, closed_hi=True) == 0:
        raise _check.fail(key, value, "expected a number in (0, 1]")
    return float(value)


def _batch_size(key: str, value: Any) -> int | str:
    if value == "full":
        return value
    if isinstance(value, str):
        raise _check.fail(key, value, "expected an integer >= 1 or 'full'")
    return _int(key, value)


def _shuffle(key: str, value: Any) -> str:
    return _choice(key, value, ("epoch", "once", "none"))


def _curriculum(key: str, value: Any) -> dict[str, Any] | str:
    if value == _OFF:
        return value
    t = _fields(key, value, ("score", "start", "epochs", "pacing"), "score")
    return {
        "score": _choice(f"{key}.score", t.get("score", "reference"), ("reference", "problem")),
        "start": _fraction(f"{key}.start", t.get("start", 0.25)),
        "epochs": _int(f"{key}.epochs", t.get("epochs", 5)),
        "pacing": _choice(f"{key}.pacing", t.get("pacing", "linear"), ("linear", "step")),
    }


def _init(key: str, value: Any) -> dict[str, Any] | str:
    if value == "default":
        return value
    t = _fields(key, value, ("scheme", "std", "value"), "scheme")
    scheme = _choice(f"{key}.scheme", t.get("scheme"), INITS[1:])
    out: dict[str, Any] = {"scheme": scheme}
    if scheme == "normal":
        out["std"] = _number(f"{key}.std", t.get("std", 0.01), 0.0, math.inf)
    elif "std" in t:
        raise SpecError(f"{key}.std: only the 'normal' scheme takes std")
    if scheme == "constant":
        out["value"] = _number(f"{key}.value", t.get("value", 0.1), -math.inf, math.inf)
    elif "value" in t:
        raise SpecError(f"{key}.value: only the 'constant' scheme takes value")
    return out


def _normalization(key: str, value: Any) -> str:
    return _choice(key, value, ("none", "batch", "layer"))


def _precision(key: str, value: Any) -> str:
    return _choice(key, value, PRECISIONS)


def _dropout(key: str, value: Any) -> float:
    return _number(key, value, 0.0, 1.0)


def _weight_decay(key: str, value: Any) -> dict[str, Any] | float:
    if value == 0 and not isinstance(value, bool):
        return 0.0
    t = _fields(key, value, ("value", "coupling"), "value")
    return {
        "value": _number(f"{key}.value", t.get("value"), 0.0, math.inf),
        "coupling": _choice(f"{key}.coupling", t.get("coupling", "l2"), ("l2", "decoupled")),
    }


def _gradient_noise(key: str, value: Any) -> dict[str, Any] | str:
    if value == _OFF:
        return value
    t = _fields(key, value, ("eta", "gamma"), "eta")
    return {
        "eta": _number(f"{key}.eta", t.get("eta"), 0.0, math.inf),
        "gamma": _number(f"{key}.gamma", t.get("gamma", 0.55), 0.0, math.inf),
    }


def _warmup(key: str, value: Any) -> dict[str, Any] | str:
    if value == _OFF:
        return value
    t = _fields(
        key, value, ("fraction", "steps"), "steps" if isinstance(value, int) else "fraction"
    )
    if len(t) != 1:
        raise _check.fail(key, value, "give one of fraction (0 < f < 1) or steps (>= 1)")
    if "steps" in t:
        return {"steps": _int(f"{key}.steps", t["steps"])}
    fraction = _number(f"{key}.fraction", t["fraction"], 0.0, 1.0)
    if fraction == 0:
        raise _check.fail(f"{key}.fraction", 0, "expected a number in (0, 1), or 'none'")
    return {"fraction": fraction}


def _finetune(key: str, value: Any) -> dict[str, Any] | str:
    if value == _OFF:
        return value
    t = _fields(key, value, ("problem", "options", "epochs", "label"), "problem")
    problem = t.get("problem")
    if not isinstance(problem, str) or not problem:
        raise _check.fail(
            f"{key}.problem", problem, "expected the name of the pre-training problem"
        )
    out = {
        "problem": problem,
        "options": _check.table(f"{key}.options", t.get("options", {})),
        "epochs": _int(f"{key}.epochs", t.get("epochs", 5)),
    }
    if t.get("label") is not None:
        out["label"] = _check.string(f"{key}.label", t["label"])
    return out


def _g(x: float) -> str:
    return f"{x:g}"


def _label_curriculum(v: dict[str, Any]) -> str:
    return f"curriculum={v['score']} {_g(v['start'])}->1 in {v['epochs']} ({v['pacing']})"


def _label_init(v: dict[str, Any]) -> str:
    extra = v.get("std", v.get("value"))
    return f"init={v['scheme']}" + ("" if extra is None else f"({_g(extra)})")


def _label_wd(v: dict[str, Any]) -> str:
    return f"wd={_g(v['value'])} {v['coupling']}"


def _label_noise(v: dict[str, Any]) -> str:
    return f"noise={_g(v['eta'])},{_g(v['gamma'])}"


def _label_warmup(v: dict[str, Any]) -> str:
    return f"warmup={v['steps']} steps" if "steps" in v else f"warmup={_g(100 * v['fraction'])}%"


def _label_finetune(v: dict[str, Any]) -> str:
    if "label" in v:
        return f"finetune={v['label']}"
    options = ",".join(f"{k}={o}" for k, o in sorted(v["options"].items()))
    return f"finetune={v['problem']}" + (f"[{options}]" if options else "")


Hook = Callable[[tr.Context], None]
ProblemRule = Callable[[Any, list[Any], str], None]  # (problem, values used, where) -> SpecError
OptimizerRule = Callable[[Any, str], None]  # (OptimizerSpec, its key) -> SpecError


@dataclass(frozen=True)
class Axis:
    """One key of an experiment file that trials may vary: how it parses, applies and clashes.

    ``where`` says how a value reaches a trial: ``"trial"`` sets the trial's field of the same
    name (:class:`~descentlab.store.Trial`: its batch size, its precision), ``"option"`` is
    passed to the problem's ``build`` (the problem must list the axis in its ``axes``), and
    ``"trick"`` is applied by the trial runner through ``hooks`` (by phase, see
    :data:`PHASES`). ``off`` is the value that changes nothing (a trick at ``off`` never reaches
    a trial). ``supervised_only``: any other value needs a supervised problem. ``fits`` and
    ``clashes`` are the axis's own rules: a SpecError when a problem cannot take the values, or
    an optimizer already does what the axis does.
    """

    name: str
    short: str
    parse: Callable[[str, Any], Any]
    where: str
    off: Any
    describe: Callable[[dict[str, Any]], str] | None = None
    supervised_only: bool = False
    hooks: Mapping[str, Hook] = field(default_factory=dict)
    fits: ProblemRule | None = None
    clashes: OptimizerRule | None = None

    def label(self, value: Any) -> str:
        """A short label of a parsed value (``"bs=full"``, ``"init=normal(0.01)"``)."""
        if isinstance(value, dict) and self.describe is not None:
            return self.describe(value)
        return f"{self.short}={_g(value) if isinstance(value, float) else value}"


def _trick(name: str, short: str, parse: Callable[[str, Any], Any], off: Any, **kw: Any) -> Axis:
    return Axis(name, short, parse, "trick", off, **kw)


_WD = "the weight_decay axis applies it to every optimizer (L2 or decoupled)"
AXES: dict[str, Axis] = {
    a.name: a
    for a in (
        Axis("batch_size", "bs", _batch_size, "trial", None, fits=tr.full_batch_fits),
        _trick("shuffle", "shuffle", _shuffle, "epoch", supervised_only=True,
               hooks={"data": tr.order}),
        _trick("curriculum", "curriculum", _curriculum, _OFF, describe=_label_curriculum,
               supervised_only=True, hooks={"data": tr.order}),
        _trick("init", "init", _init, "default", describe=_label_init,
               hooks={"model": tr.initialize}),
        Axis("normalization", "norm", _normalization, "option", None),
        Axis("dropout", "dropout", _dropout, "option", None),
        _trick("weight_decay", "wd", _weight_decay, 0.0, describe=_label_wd,
               hooks={"optimizer": tr.decay}, clashes=tr.hparam_clash("weight_decay", _WD)),
        _trick("gradient_noise", "noise", _gradient_noise, _OFF, describe=_label_noise,
               hooks={"wrap": tr.noise},
               clashes=tr.wrapper_clash("gradient_noise", "noisy", "adds gradient noise")),
        _trick("warmup", "warmup", _warmup, _OFF, describe=_label_warmup,
               hooks={"schedule": tr.warmup}, clashes=tr.schedule_clash("warmup")),
        _trick("finetune", "finetune", _finetune, _OFF, describe=_label_finetune,
               supervised_only=True, hooks={"weights": tr.finetune}, fits=tr.finetune_fits),
        Axis("precision", "precision", _precision, "trial", "float32"),
    )
}  # fmt: skip


def hooks(tricks: Mapping[str, Any], phase: str) -> list[Hook]:
    """The hooks of ``phase`` that the axes in ``tricks`` bring, in table order, each once."""
    out: list[Hook] = []
    for name, axis in AXES.items():
        hook = axis.hooks.get(phase)
        if name in tricks and hook is not None and hook not in out:
            out.append(hook)
    return out


def axis_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The problem options in ``options`` that axes set (``normalization``, ``dropout``)."""
    return {k: v for k, v in options.items() if k in AXES and AXES[k].where == "option"}


@dataclass(frozen=True)
class Variant:
    """One combination of axis values: ``settings`` maps an axis to its (parsed) value.

    ``label`` names the values that differ from the experiment's fixed ones ("" for the baseline).
    """

    settings: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""

    def options(self) -> dict[str, Any]:
        """The problem options this variant sets (``normalization``, ``dropout``)."""
        return axis_options(self.settings)

    def tricks(self) -> dict[str, Any]:
        """What the trial runner applies: the trick axes whose value is not the 'off' one."""
        return {
            k: v for k, v in self.settings.items() if AXES[k].where == "trick" and v != AXES[k].off
        }

    def fields(self) -> dict[str, Any]:
        """The fields of the trial this variant sets (``batch_size``, ``precision``)."""
        return {k: v for k, v in self.settings.items() if AXES[k].where == "trial"}


def _values(key: str, value: Any) -> list[Any]:
    axis = AXES[key]
    if not isinstance(value, list):
        return [axis.parse(key, value)]
    if not value:
        raise SpecError(f"{key}: []; expected a value or a non-empty list of values")
    parsed = [axis.parse(f"{key}[{i}]", v) for i, v in enumerate(value)]
    labels = [axis.label(v) for v in parsed]
    for label in labels:
        if labels.count(label) > 1:
            raise SpecError(f"{key}: {label!r} appears twice; the values of an axis must differ")
    return parsed


def variants(data: Mapping[str, Any], design: str = "grid") -> tuple[Variant, ...]:
    """Parse the axis keys of an experiment document into its variants (at least one).

    A scalar value is fixed for every trial (and not in the labels); list values are crossed
    (``"grid"``) or varied one at a time from the first value of each (``"one-at-a-time"``).
    """
    _choice("design", design, DESIGNS)
    values = {k: _values(k, data[k]) for k in AXES if k in data}
    varied = [k for k, v in values.items() if isinstance(data[k], list)]
    base = {k: v[0] for k, v in values.items()}
    if design == "grid":
        combos = [
            {**base, **dict(zip(varied, combo))}
            for combo in itertools.product(*(values[k] for k in varied))
        ]
    else:
        combos = [base] + [{**base, k: v} for k in varied for v in values[k][1:]]

    def label(settings: dict[str, Any]) -> str:
        shown = [AXES[k].label(settings[k]) for k in varied]
        if design == "one-at-a-time":
            shown = [AXES[k].label(settings[k]) for k in varied if settings[k] != base[k]]
        return ", ".join(shown)

    return tuple(Variant(c, label(c)) for c in combos)
