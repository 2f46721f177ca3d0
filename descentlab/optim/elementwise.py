"""Optimizers written as one elementwise rule: the paper's equations once, every path derived.

Subclass :class:`Elementwise` with the hyperparameters, the state tensors and the rule
``update(x, h)``; the readable per-tensor path, the fused CPU kernel (C++ generated from the
rule, built once per machine and cached), its ``torch.library`` operator (for
``torch.compile``), the foreach path for other devices, GradScaler, the non-finite policy,
state dicts and hyperparameter checks all come from the base classes. ``docs/custom.md``
walks through Lion::

    class Lion(Elementwise):
        hyperparameters = {"lr": 1e-4, "betas": (0.9, 0.99), "weight_decay": 0.0}
        state_tensors = ("exp_avg",)

        def update(x, h):
            c = lerp(x.exp_avg, x.grad, 1 - h.betas[0])  # (1)
            x.param = x.param * (1 - h.lr * h.weight_decay) - h.lr * sign(c)  # (2)
            x.exp_avg = lerp(x.exp_avg, x.grad, 1 - h.betas[1])  # (3)

The rule is traced when the class is defined, once per setting of its flags (bool
hyperparameters, and ``maximize``, which negates ``x.grad`` before the rule): a rule that reads
an unknown name, leaves a state tensor unassigned, or uses an operation the generator cannot
translate raises :class:`RuleError` there, naming the line.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any, ClassVar

import torch

from ..checks import HyperparameterError, Interval
from . import _checks as c
from . import _checks as checks  # the checks a rule's class may name
from ._rules.graph import Node, RuleError, _apply
from ._rules.rule import BUILTIN, DECAY_FLAGS, Rule
from ._rules.run import run_tensor
from .base import OPTIONS, Optimizer, split_options, zeros
from .kernels import _scalars, cpu, rules

__all__ = [
    "DECAY_FLAGS",
    "Elementwise",
    "RuleError",
    "abs",
    "checks",
    "clamp",
    "exp",
    "lerp",
    "log",
    "maximum",
    "minimum",
    "sign",
    "sqrt",
    "where",
]

Value = Node | float


def sqrt(x: Value) -> Value:
    """Square root."""
    return _apply("sqrt", x)


def exp(x: Value) -> Value:
    """Exponential."""
    return _apply("exp", x)


def log(x: Value) -> Value:
    """Natural logarithm."""
    return _apply("log", x)


def abs(x: Value) -> Value:
    """Absolute value."""
    return _apply("abs", x)


def sign(x: Value) -> Value:
    """-1, 0 or 1, as ``torch.sign``."""
    return _apply("sign", x)


def maximum(a: Value, b: Value) -> Value:
    """The larger of two values (NaN if either is), as ``torch.maximum``."""
    return _apply("maximum", a, b)


def minimum(a: Value, b: Value) -> Value:
    """The smaller of two values (NaN if either is), as ``torch.minimum``."""
    return _apply("minimum", a, b)


def clamp(x: Value, lo: Value, hi: Value) -> Value:
    """``x`` kept within ``[lo, hi]``."""
    return minimum(maximum(x, lo), hi)


def lerp(start: Value, end: Value, weight: Value) -> Value:
    """``start + weight (end - start)``, rounded as ``torch.lerp``."""
    return _apply("lerp", start, end, weight)


def where(condition: Node, a: Value, b: Value) -> Value:
    """``a`` where ``condition`` (a comparison) holds, else ``b``."""
    return _apply("where", condition, a, b)


_ANY_REAL = c.number(Interval())


def _tuple_of(n: int) -> Callable[[str, Any], Any]:
    """A check for ``n`` finite reals (a hyperparameter such as ``betas``)."""

    def check(name: str, value: Any) -> Any:
        if not isinstance(value, (tuple, list)) or len(value) != n:
            raise HyperparameterError(f"Invalid {name}: {value!r}; expected {n} numbers")
        for i, item in enumerate(value):
            _ANY_REAL(f"{name}[{i}]", item)
        return value

    return check


class Elementwise(Optimizer):
    """An optimizer defined by an elementwise rule (see the module's docstring).

    Class attributes a subclass sets:

    * ``hyperparameters``: names and defaults, in the constructor's order (numbers, pairs of
      numbers such as ``betas``, and bools, which are flags);
    * ``checks``: a check per hyperparameter (``descentlab.optim._checks``); numbers without
      one must be finite reals;
    * ``state_tensors``: the per-element state, created as zeros;
    * ``per_tensor``: hyperparameters the kernels take as tensors (``lr``, so that a tensor
      ``lr`` changed by a scheduler needs no host read and no recompile);
    * ``derived``: flags computed from a group's values (``{"l2": lambda h: h.weight_decay
      != 0}``), read in the rule as ``h.l2``;
    * ``state_when``: state tensors that exist only where a flag is set (``{"grad_avg":
      "centered"}``; torch.optim's state dicts have them only then);
    * ``update(x, h)``: the rule; ``scalars(h, t)`` (optional): step-dependent scalars, a
      dict of values computed with tensor ops from the vector ``t`` of step counts (one per
      tensor), read in the rule as ``h.<name>``;
    * ``scalar_state``: per-tensor scalars kept in the state (0-d tensors of ``scalar_dtype``,
      float32 by default, e.g. NAdam's ``{"mu_product": 1.0}``); ``scalars(h, t, s)`` then
      reads them as ``s.<name>`` (vectors of that dtype) and returns their new values under
      the same names;
    * ``group_entries``: entries of every parameter group that are not hyperparameters
      (Schedule-Free's ``{"train_mode": True}``), with their defaults.
    """

    hyperparameters: ClassVar[dict[str, Any]] = {}
    checks: ClassVar[dict[str, Callable[[str, Any], Any]]] = {}
    state_tensors: ClassVar[tuple[str, ...]] = ()
    per_tensor: ClassVar[tuple[str, ...]] = ("lr",)
    derived: ClassVar[dict[str, Callable[[Any], bool]]] = {}
    state_when: ClassVar[dict[str, str]] = {}
    scalar_state: ClassVar[dict[str, float]] = {}
    scalar_dtype: ClassVar[torch.dtype] = torch.float32
    group_entries: ClassVar[dict[str, Any]] = {}
    _rule: ClassVar[Rule]
    _compiled = True

    update: ClassVar[Callable[[Any, Any], None]]

    @staticmethod
    def scalars(h: Any, t: torch.Tensor) -> dict[str, Any]:
        """Step-dependent per-tensor scalars (override); ``t``: the step counts."""
        return {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "update" not in cls.__dict__:
            if "__init__" in cls.__dict__:  # a variant with a constructor of its own (SGDW)
                shown = list(inspect.signature(cls.__init__).parameters.values())[1:]
                cls.__signature__ = inspect.Signature(shown)  # type: ignore[attr-defined]
            return
        update = cls.__dict__["update"]
        update = update.__func__ if isinstance(update, staticmethod) else update
        cls.update = staticmethod(update)
        cls._rule = Rule.define(
            cls.__name__,
            update,
            hyperparameters=cls.hyperparameters,
            state=cls.state_tensors,
            per_tensor=cls.per_tensor,
            scalars=cls.scalars,
            reserved=(*OPTIONS, "params"),
            derived=cls.derived,
            state_when=cls.state_when,
            scalar_state=cls.scalar_state,
            scalar_dtype=cls.scalar_dtype,
        )
        cls._scalar_dtypes = dict.fromkeys(cls.scalar_state, cls.scalar_dtype)  # kept on load
        ours = cls.__module__.startswith("descentlab.")  # built into the kernels' extension
        if ours and BUILTIN.setdefault(cls._rule.name, cls._rule) is not cls._rule:
            raise RuleError(f"two of descentlab's rules are named {cls._rule.name}")
        checks = {
            n: _tuple_of(len(v)) if isinstance(v, tuple) else _ANY_REAL
            for n, v in cls._rule.defaults.items()
            if not isinstance(v, bool)
        }
        checks.update({f: c.flag for f in cls._rule.flags if f not in cls._rule.derived})
        cls._checks = {**checks, **cls.checks}
        signature = _signature(cls._rule.defaults)

        def __init__(self, params: Iterable[Any], *args: Any, **kwargs: Any) -> None:
            Elementwise.__init__(self, params, *args, **kwargs)

        # what inspect.signature(cls.__init__) shows: the CLI, the lab's default lr and the
        # defaults a loaded state dict's groups take read it
        this = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
        __init__.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[this, *signature.parameters.values()]
        )
        __init__.__qualname__ = f"{cls.__qualname__}.__init__"
        cls.__init__ = __init__  # type: ignore[method-assign]
        cls.__signature__ = signature  # type: ignore[attr-defined]

    def __init__(self, params: Iterable[Any], *args: Any, **kwargs: Any) -> None:
        defaults = dict(self._rule.defaults)
        names = list(defaults)
        if len(args) > len(names):
            raise TypeError(
                f"{type(self).__name__} takes {len(names)} hyperparameters by position "
                f"({', '.join(names)}), got {len(args)}"
            )
        for name, value in zip(names, args):
            if name in kwargs:
                raise TypeError(f"{type(self).__name__} got {name!r} twice")
            defaults[name] = value
        for name in [k for k in kwargs if k in defaults]:
            defaults[name] = kwargs.pop(name)
        options = split_options(kwargs)
        super().__init__(params, {**defaults, **self.group_entries}, **options)

    def _init_state(self, group: dict[str, Any], p: torch.Tensor, state: dict[str, Any]) -> None:
        for key, value in self.scalar_state.items():  # 0-d on the device, as torch's
            state[key] = torch.tensor(value, dtype=self.scalar_dtype, device=p.device)
        zeros(state, p, *self._rule.present(group))

    def _reference(self, group, p, g, state, t):
        rule = self._rule
        key = (id(group), t)  # within one group's loop of one step (see Stepping.step)
        memo = self.__dict__.get("_readable")
        if memo is not None and memo[0] == key and not rule.scalar_state:
            setting, scalars = memo[1], memo[2]  # the group's values do not change in a step
        else:
            setting = rule.setting(group)
            scalars = {**setting.hypers, **rule.numbers(group, t, state)}
            self._readable = (key, setting, scalars)
        program = setting.readable  # g arrives negated under maximize
        tensors = {"param": p, "grad": g, **{n: state[n] for n in setting.present}}
        for piece in _pieces(tensors):
            for name, value in run_tensor(program, {**piece, **scalars}, piece["param"]).items():
                if value is not piece[name]:  # (most outputs are computed in place)
                    piece[name].copy_(value)

    def _fused(self, group, params, grads, states, kernels, **amp):
        if kernels is None and not torch.compiler.is_compiling():  # (torch's: no fake kernel)
            _scalars.add_one(states)  # torch's kernels read the incremented counters
            self._torch_step(group, params, grads, states, **amp)
            return
        t = _scalars.advance(states)
        self._rule_step(group, params, grads, states, kernels or rules.Foreach, t, amp)

    def _torch_step(self, group, params, grads, states, **amp) -> None:
        """torch's fused kernel for the group, where :meth:`_torch_fused` says it has the
        rule's math (override with it)."""
        raise NotImplementedError

    def _rule_step(self, group, params, grads, states, kernels, t, amp):
        """The fast path's step at the step counts ``t`` (the counters already advanced)."""
        setting = self._rule.setting(group)
        vectors = self._rule.step_vectors(group, t, states, amp.get("found_inf"))
        present = setting.present
        lists = {n: [s[n] for s in states] if n in present else [] for n in self.state_tensors}
        kernels.step(self._rule, setting, params, grads, lists, vectors, **amp)

    def _kernels(self, group: dict[str, Any], device: torch.device) -> ModuleType | Any:
        """The rule's kernels; ``None`` (torch's fused kernel, :meth:`_torch_step`) where torch
        has the group's math and runs on CUDA, or on a CPU where descentlab's kernels are not
        built (an algorithm torch has does not make a process wait for a build)."""
        torch_has = self.impl != "foreach" and self._torch_fused(group)
        if torch_has and (device.type == "cuda" or (device.type == "cpu" and cpu.ready() is None)):
            return None
        return rules.select(self._rule, device, impl=self.impl, owner=type(self).__name__)


_PIECE = 1 << 18  # elements: the readable path's temporaries stay in the cache (L2)


def _pieces(tensors: dict[str, torch.Tensor]) -> Iterable[dict[str, torch.Tensor]]:
    """The tensors of one readable step, cut into pieces of :data:`_PIECE` elements (flat
    views) where all are plain contiguous tensors of one size: each operation of the rule then
    runs over a piece in the cache, not over the whole tensor in memory (an elementwise rule
    gives the same values either way). Otherwise the tensors whole."""
    p = tensors["param"]
    n = p.numel()
    if n <= 2 * _PIECE or not all(
        type(x) in (torch.Tensor, torch.nn.Parameter) and x.is_contiguous() and x.numel() == n
        for x in tensors.values()
    ):
        return [tensors]
    flat = {k: x.view(-1) for k, x in tensors.items()}
    return ({k: x[i : i + _PIECE] for k, x in flat.items()} for i in range(0, n, _PIECE))


def _signature(defaults: dict[str, Any]) -> inspect.Signature:
    """``(params, <hyperparameters>, *, impl, nonfinite, capturable)`` for help() and IDEs."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    params = [inspect.Parameter("params", kind)]
    params += [inspect.Parameter(n, kind, default=v) for n, v in defaults.items()]
    keyword = inspect.Parameter.KEYWORD_ONLY
    options = {"impl": "auto", "nonfinite": "ignore", "capturable": False}
    params += [inspect.Parameter(n, keyword, default=v) for n, v in options.items()]
    return inspect.Signature(params)
