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
    design = "one-at-a-time"              # or "grid" (default): every combination of the lists

With ``design = "one-at-a-time"`` the first value of every list is the baseline and each other
value is varied alone. Every variant is tuned like an optimizer of its own (the same budget) and
reported as a row ``"<optimizer> [<variant>]"``; the baseline keeps the optimizer's label.
"""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..problems.init import INITS
from ._errors import SpecError

__all__ = ["AXES", "DESIGNS", "Axis", "Variant", "variants"]

DESIGNS = ("grid", "one-at-a-time")
_OFF = "none"


def _number(key: str, value: Any, lo: float, hi: float, *, closed_hi: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and abs(value) <= sys.float_info.max and math.isfinite(value)
    if not ok or not (lo <= value and (value <= hi if closed_hi else value < hi)):
        bracket = "]" if closed_hi else ")"
        raise SpecError(f"{key}: {value!r}; expected a number in [{lo}, {hi}{bracket}")
    return float(value)


def _int(key: str, value: Any, minimum: int = 1, maximum: int = 10**6) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise SpecError(f"{key}: {value!r}; expected an integer >= {minimum} and <= {maximum}")
    return value


def _choice(key: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise SpecError(f"{key}: {value!r}; allowed: {', '.join(map(repr, allowed))}")
    return value


def _fields(key: str, value: Any, allowed: tuple[str, ...], shorthand: str) -> dict[str, Any]:
    """A table value (``{ eta = 0.01 }``), or its shorthand (a bare value for ``shorthand``)."""
    table = dict(value) if isinstance(value, Mapping) else {shorthand: value}
    for k in table:
        if k not in allowed:
            raise SpecError(f"{key}.{k}: unknown key; allowed keys: {', '.join(allowed)}")
    return table


def _fraction(key: str, value: Any) -> float:
    if _number(key, value, 0.0, 1.0, closed_hi=True) == 0:
        raise SpecError(f"{key}: 0; expected a number in (0, 1]")
    return float(value)


def _batch_size(key: str, value: Any) -> int | str:
    if value == "full":
        return value
    if isinstance(value, str):
        raise SpecError(f"{key}: {value!r}; expected an integer >= 1 or 'full'")
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
        raise SpecError(f"{key}: {value!r}; give one of fraction (0 < f < 1) or steps (>= 1)")
    if "steps" in t:
        return {"steps": _int(f"{key}.steps", t["steps"])}
    fraction = _number(f"{key}.fraction", t["fraction"], 0.0, 1.0)
    if fraction == 0:
        raise SpecError(f"{key}.fraction: 0; expected a number in (0, 1), or 'none'")
    return {"fraction": fraction}


def _finetune(key: str, value: Any) -> dict[str, Any] | str:
    if value == _OFF:
        return value
    t = _fields(key, value, ("problem", "options", "epochs", "label"), "problem")
    problem = t.get("problem")
    if not isinstance(problem, str) or not problem:
        raise SpecError(
            f"{key}.problem: {problem!r}; expected the name of the pre-training problem"
        )
    options = t.get("options", {})
    if not isinstance(options, Mapping):
        raise SpecError(f"{key}.options: {options!r}; expected a table such as {{ classes = [0] }}")
    out = {
        "problem": problem,
        "options": dict(options),
        "epochs": _int(f"{key}.epochs", t.get("epochs", 5)),
    }
    label = t.get("label")
    if label is not None:
        if not isinstance(label, str) or not label.strip():
            raise SpecError(f"{key}.label: {label!r}; expected a non-empty string")
        out["label"] = label.strip()
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


@dataclass(frozen=True)
class Axis:
    """One key of an experiment file that trials may vary.

    ``where`` says how a value reaches a trial: ``"batch"`` sets its batch size, ``"option"`` is
    passed to the problem's ``build`` (the problem must list the axis in its ``axes``), and
    ``"trick"`` is applied by the trial runner. ``off`` is the value that changes nothing.
    """

    name: str
    short: str
    parse: Callable[[str, Any], Any]
    where: str
    off: Any
    describe: Callable[[dict[str, Any]], str] | None = None
    supervised_only: bool = False

    def label(self, value: Any) -> str:
        """A short label of a parsed value (``"bs=full"``, ``"init=normal(0.01)"``)."""
        if isinstance(value, dict) and self.describe is not None:
            return self.describe(value)
        return f"{self.short}={_g(value) if isinstance(value, float) else value}"


AXES: dict[str, Axis] = {
    a.name: a
    for a in (
        Axis("batch_size", "bs", _batch_size, "batch", None),
        Axis("shuffle", "shuffle", _shuffle, "trick", "epoch", None, True),
        Axis("curriculum", "curriculum", _curriculum, "trick", _OFF, _label_curriculum, True),
        Axis("init", "init", _init, "trick", "default", _label_init),
        Axis("normalization", "norm", _normalization, "option", None),
        Axis("dropout", "dropout", _dropout, "option", None),
        Axis("weight_decay", "wd", _weight_decay, "trick", 0.0, _label_wd),
        Axis("gradient_noise", "noise", _gradient_noise, "trick", _OFF, _label_noise),
        Axis("warmup", "warmup", _warmup, "trick", _OFF, _label_warmup),
        Axis("finetune", "finetune", _finetune, "trick", _OFF, _label_finetune, True),
    )
}


@dataclass(frozen=True)
class Variant:
    """One combination of axis values: ``settings`` maps an axis to its (parsed) value.

    ``label`` names the values that differ from the experiment's fixed ones ("" for the baseline).
    """

    settings: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""

    def options(self) -> dict[str, Any]:
        """The problem options this variant sets (``normalization``, ``dropout``)."""
        return {k: v for k, v in self.settings.items() if AXES[k].where == "option"}

    def tricks(self) -> dict[str, Any]:
        """What the trial runner applies: the trick axes whose value is not the 'off' one."""
        return {
            k: v for k, v in self.settings.items() if AXES[k].where == "trick" and v != AXES[k].off
        }

    def batch_size(self) -> int | str | None:
        """The batch size this variant sets, if any."""
        return self.settings.get("batch_size")


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
