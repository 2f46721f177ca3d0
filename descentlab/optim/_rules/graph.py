"""An optimizer's elementwise rule, traced once into a small expression graph.

A rule is a function ``update(x, h)`` written as the paper's equations: ``x`` holds one
element's values (``x.param``, ``x.grad`` and the state tensors by name; assigning one gives
its new value), ``h`` the hyperparameters (``h.lr``, ``h.betas[0]``; flags are Python bools, so
``if h.amsgrad:`` picks the equations) and the step-dependent scalars. Called with symbolic
values it records each operation as a :class:`Node`, with the equation tag (``# (3)``) of the
source line that made it. Every path of the optimizer is derived from the graph: the readable
per-tensor path and the foreach fallback interpret it (:mod:`.run`), the C++ kernel is printed
from it (:mod:`.cpp`).

A node is *scalar* when no element value flows into it (``1 - beta1``, ``lr / bc1``): it is
computed once per tensor in float64, as Python computes the readable path's scalars, and enters
the element arithmetic rounded to the compute type, as torch's ops take a Python number.
"""

from __future__ import annotations

import inspect
import linecache
import math
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Node", "Program", "RuleError", "trace"]

_TAG = re.compile(r"#\s*(\(\d+[a-z]?\))")


class RuleError(TypeError):
    """A rule the generator cannot take; the message names the line or the name at fault."""


@dataclass(eq=False)
class Node:
    """One value of a traced rule: an input, a hyperparameter, a constant or an operation."""

    op: str  # "input" | "hyper" | "vector" | "const" | an operation of OPS
    args: tuple[Node, ...] = ()
    name: str = ""  # an input's, hyperparameter's or vector's name
    value: float = 0.0  # a constant's value
    tag: str = ""  # the equation tag of the line that made it, e.g. "(3)"
    scalar: bool = True  # no element value flows into it
    boolean: bool = False  # a comparison (only `where` takes it)

    # arithmetic, as Python numbers and torch tensors do it
    def __add__(self, o: Any) -> Node:
        return _apply("add", self, o)

    def __radd__(self, o: Any) -> Node:
        return _apply("add", o, self)

    def __sub__(self, o: Any) -> Node:
        return _apply("sub", self, o)

    def __rsub__(self, o: Any) -> Node:
        return _apply("sub", o, self)

    def __mul__(self, o: Any) -> Node:
        return _apply("mul", self, o)

    def __rmul__(self, o: Any) -> Node:
        return _apply("mul", o, self)

    def __truediv__(self, o: Any) -> Node:
        return _apply("div", self, o)

    def __rtruediv__(self, o: Any) -> Node:
        return _apply("div", o, self)

    def __pow__(self, o: Any) -> Node:
        return _apply("pow", self, o)

    def __rpow__(self, o: Any) -> Node:
        return _apply("pow", o, self)

    def __neg__(self) -> Node:
        return _apply("neg", self)

    def __pos__(self) -> Node:
        return self

    def __gt__(self, o: Any) -> Node:
        return _apply("gt", self, o)

    def __lt__(self, o: Any) -> Node:
        return _apply("lt", self, o)

    def __ge__(self, o: Any) -> Node:
        return _apply("ge", self, o)

    def __le__(self, o: Any) -> Node:
        return _apply("le", self, o)

    def __bool__(self) -> bool:
        raise RuleError(
            "a rule's value was used as a Python bool (if, and, or, not): the kernels see no "
            "values when they are generated; use where(condition, a, b)"
        )

    def __float__(self) -> float:
        raise RuleError(
            "a rule's value was converted to a Python number (float(), math.*): use the "
            "functions of descentlab.optim.elementwise (sqrt, exp, ...)"
        )

    __int__ = __index__ = __float__  # type: ignore[assignment]
    __hash__ = object.__hash__


# name: (arity, Python's function on numbers); every operation a rule may use
OPS: dict[str, tuple[int, Callable[..., float]]] = {
    "add": (2, lambda a, b: a + b),
    "sub": (2, lambda a, b: a - b),
    "mul": (2, lambda a, b: a * b),
    "div": (2, lambda a, b: a / b),
    "pow": (2, lambda a, b: a**b),
    "neg": (1, lambda a: -a),
    "sqrt": (1, math.sqrt),
    "exp": (1, math.exp),
    "log": (1, math.log),
    "abs": (1, abs),
    "sign": (1, lambda a: float((a > 0) - (a < 0))),
    "maximum": (2, max),
    "minimum": (2, min),
    "lerp": (3, lambda a, b, w: a + w * (b - a) if abs(w) < 0.5 else b - (b - a) * (1 - w)),
    "where": (3, lambda c, a, b: a if c else b),
    "gt": (2, lambda a, b: a > b),
    "lt": (2, lambda a, b: a < b),
    "ge": (2, lambda a, b: a >= b),
    "le": (2, lambda a, b: a <= b),
}
_COMPARISONS = ("gt", "lt", "ge", "le")


def _apply(op: str, *args: Any) -> Any:
    """``op`` on Nodes or numbers: a new Node, or a number when every argument is one."""
    if not any(isinstance(a, Node) for a in args):
        return OPS[op][1](*(float(a) for a in args))
    nodes = tuple(_node(a, op) for a in args)
    if op == "where":
        if not nodes[0].boolean:
            raise RuleError(f"where's first argument must be a comparison, got {nodes[0].op}")
        if nodes[1].boolean or nodes[2].boolean:
            raise RuleError("where's values must be numbers, not comparisons")
    elif any(n.boolean for n in nodes):
        raise RuleError(f"a comparison used in {op}: only where(condition, a, b) takes one")
    return Node(
        op,
        nodes,
        tag=_tracer.tag(),
        scalar=all(n.scalar for n in nodes),
        boolean=op in _COMPARISONS,
    )


def _node(value: Any, op: str) -> Node:
    if isinstance(value, Node):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RuleError(f"{op} takes numbers and the rule's values, not {type(value).__name__}")
    return Node("const", value=float(value))


@dataclass
class Program:
    """A rule traced for one setting of its flags."""

    flags: dict[str, bool]
    outputs: dict[str, Node]  # what the rule assigns: "param" and state names, in order
    inputs: list[str]  # the element inputs it reads ("param", "grad", state names)
    hypers: list[str]  # the float hyperparameters it reads (tuples as name_0, name_1, ...)
    vectors: list[str]  # the per-tensor scalars it reads
    nodes: list[Node] = field(default_factory=list)  # every operation, in order of use

    def __post_init__(self) -> None:
        seen: set[int] = set()
        for out in self.outputs.values():
            self._visit(out, seen)

    def _visit(self, node: Node, seen: set[int]) -> None:
        stack = [(node, False)]
        while stack:
            n, done = stack.pop()
            if id(n) in seen:
                continue
            if done:
                seen.add(id(n))
                self.nodes.append(n)
                continue
            stack.append((n, True))
            stack.extend((a, False) for a in reversed(n.args) if id(a) not in seen)


class _Tracer:
    """Finds the rule's own line for each node (its equation tag)."""

    code: Any = None

    def tag(self) -> str:
        frame = sys._getframe(2)
        while frame is not None and frame.f_code is not self.code:
            frame = frame.f_back
        if frame is None:
            return ""
        found = _TAG.search(linecache.getline(frame.f_code.co_filename, frame.f_lineno))
        return found.group(1) if found else ""


_tracer = _Tracer()


class _Elements:
    """The ``x`` of a rule: one element's values by name; assignments give the new ones."""

    def __init__(self, names: Iterable[str], writable: Iterable[str], grad: Node) -> None:
        values = {n: Node("input", name=n, scalar=False) for n in names}
        values["grad"] = grad
        object.__setattr__(self, "_values", values)
        object.__setattr__(self, "_writable", tuple(writable))
        object.__setattr__(self, "_read", set())
        object.__setattr__(self, "_out", {})

    def __getattr__(self, name: str) -> Node:
        if name not in self._values:
            raise RuleError(f"the rule reads x.{name}; x has {', '.join(self._values)}")
        self._read.add(name)
        return self._values[name]

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in self._writable:
            raise RuleError(f"the rule assigns x.{name}; it may assign {', '.join(self._writable)}")
        node = _node(value, f"x.{name} =")
        if node.boolean:
            raise RuleError(f"x.{name} is assigned a comparison; use where(condition, a, b)")
        self._values[name] = node
        self._out[name] = node


class _Hyper:
    """The ``h`` of a rule: hyperparameters (flags as bools) and per-tensor scalars."""

    def __init__(self, defaults: dict[str, Any], vectors: Iterable[str], flags: dict) -> None:
        self._defaults, self._vectors, self._flags = defaults, tuple(vectors), flags
        self.hypers: list[str] = []
        self.read_vectors: list[str] = []

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self._flags:
            return self._flags[name]
        if name in self._vectors:
            if name not in self.read_vectors:
                self.read_vectors.append(name)
            return Node("vector", name=name)
        if name not in self._defaults:
            known = sorted({*self._defaults, *self._vectors, *self._flags})
            raise RuleError(f"the rule reads h.{name}, which is none of {', '.join(known)}")
        value = self._defaults[name]
        if isinstance(value, tuple):
            names = [f"{name}_{i}" for i in range(len(value))]
            self.hypers += [n for n in names if n not in self.hypers]
            return tuple(Node("hyper", name=n) for n in names)
        if name not in self.hypers:
            self.hypers.append(name)
        return Node("hyper", name=name)


def trace(
    update: Callable[[Any, Any], None],
    *,
    state: tuple[str, ...],
    defaults: dict[str, Any],
    vectors: tuple[str, ...],
    flags: dict[str, bool],
) -> Program:
    """``update`` traced with the ``flags`` given; :class:`RuleError` naming the line at fault
    for anything the generator cannot translate."""
    maximize = flags.get("maximize", False)
    grad = Node("input", name="grad", scalar=False)
    x = _Elements(("param", "grad", *state), ("param", *state), -grad if maximize else grad)
    numbers = {k: v for k, v in defaults.items() if k not in flags and k not in vectors}
    h = _Hyper(numbers, vectors, flags)
    _tracer.code = update.__code__
    try:
        update(x, h)
    except RuleError as exc:
        raise RuleError(f"{_where(update, exc)}: {exc}") from None
    except Exception as exc:  # an operation on the symbolic values that has no translation
        raise RuleError(
            f"{_where(update, exc)}: {type(exc).__name__}: {exc} (a rule may use + - * / ** "
            "and the functions of descentlab.optim.elementwise)"
        ) from None
    finally:
        _tracer.code = None
    if "param" not in x._out:
        raise RuleError(f"{update.__qualname__} never assigns x.param")
    missing = [s for s in state if s not in x._out]
    if missing:
        raise RuleError(f"{update.__qualname__} never assigns x.{', x.'.join(missing)}")
    inputs = [n for n in ("param", "grad", *state) if n in x._read or n == "param"]
    return Program(dict(flags), dict(x._out), inputs, h.hypers, h.read_vectors)


def _where(update: Callable[..., Any], exc: BaseException) -> str:
    """'file:line (the source line)' of the rule's frame in ``exc``'s traceback."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code is update.__code__:
            line = tb.tb_lineno
        tb = tb.tb_next
    if line is None:
        return update.__qualname__
    text = linecache.getline(update.__code__.co_filename, line).strip()
    return f"{update.__qualname__}, {inspect.getsourcefile(update)}:{line} ({text})"
