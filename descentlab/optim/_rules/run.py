"""A traced rule run with torch's ops: on one tensor (the readable path) and on lists of
tensors (the foreach path, for devices without a compiled kernel).

Both follow the arithmetic of the generated C++ kernel (:mod:`.cpp`): a scalar node is a Python
float (or, on the foreach path, a float64 vector with one value per tensor), an element node a
tensor of the compute dtype, and a scalar meets the elements rounded to that dtype (a 0-d
tensor of it), as the kernel's ``T(s)`` does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from .graph import OPS, Node, Program

__all__ = ["run_lists", "run_tensor"]

_TORCH = {
    "add": torch.add,
    "sub": torch.sub,
    "mul": torch.mul,
    "div": torch.div,
    "pow": torch.pow,
    "neg": torch.neg,
    "sqrt": torch.sqrt,
    "exp": torch.exp,
    "log": torch.log,
    "abs": torch.abs,
    "sign": torch.sign,
    "maximum": torch.maximum,
    "minimum": torch.minimum,
    "lerp": torch.lerp,
    "where": torch.where,
    "gt": torch.gt,
    "lt": torch.lt,
    "ge": torch.ge,
    "le": torch.le,
}


def _leaf(node: Node, env: dict[str, Any]) -> Any:
    if node.op == "const":
        return node.value
    return env[node.name]


def _walk(
    program: Program,
    env: dict[str, Any],
    scalar: Callable[[str, list[Any]], Any],
    element: Callable[[str, list[Any]], Any],
) -> dict[int, Any]:
    """Every node's value, by ``id``: leaves from ``env``, the rest by ``scalar`` or
    ``element`` (the operation's name and its arguments' values)."""
    values: dict[int, Any] = {}
    for node in program.nodes:
        if not node.args:
            values[id(node)] = _leaf(node, env)
        else:
            args = [values[id(a)] for a in node.args]
            values[id(node)] = (scalar if node.scalar else element)(node.op, args)
    return values


def _python(op: str, args: list[Any]) -> Any:
    return OPS[op][1](*args)


def run_tensor(program: Program, env: dict[str, Any], like: Tensor) -> dict[str, Tensor]:
    """The rule's new values for one tensor; ``env``: the inputs as tensors of ``like``'s dtype
    and device, the hyperparameters and per-tensor scalars as Python floats."""
    function = _FUNCTIONS.get(id(program))
    if function is None:
        function = _FUNCTIONS[id(program)] = _straight(program)
    return function(env, like)


_FUNCTIONS: dict[int, Callable[[dict[str, Any], Tensor], dict[str, Tensor]]] = {}
_KEEP: list[Program] = []  # the programs of _FUNCTIONS (their ids stay theirs)

# element operations with a scalar argument, where torch takes the scalar as it is (rounded to
# the compute dtype, as the kernel's T(s)): (op, which argument is the scalar) -> call
_WITH_NUMBER = {
    ("add", 1): "torch.add({0}, {1})",
    ("add", 0): "torch.add({1}, {0})",
    ("sub", 1): "torch.sub({0}, {1})",
    ("sub", 0): "torch.rsub({1}, {0})",
    ("mul", 1): "torch.mul({0}, {1})",
    ("mul", 0): "torch.mul({1}, {0})",
    ("div", 1): "torch.div({0}, {1})",
    ("pow", 1): "torch.pow({0}, {1})",
    ("pow", 0): "torch.pow({0}, {1})",
    ("gt", 1): "torch.gt({0}, {1})",
    ("lt", 1): "torch.lt({0}, {1})",
    ("ge", 1): "torch.ge({0}, {1})",
    ("le", 1): "torch.le({0}, {1})",
}


# element operations that may write into their first argument (a temporary of the same shape)
_IN_PLACE = ("add", "sub", "mul", "div", "sqrt", "exp", "log", "abs", "neg", "maximum", "minimum")


def _straight(program: Program) -> Callable[[dict[str, Any], Tensor], dict[str, Tensor]]:
    """The program as one straight-line Python function of torch calls (no walk per tensor):
    scalar nodes as Python arithmetic, element nodes as torch ops, numbers passed to torch as
    they are where it takes them, else as 0-d tensors of the compute dtype."""
    lines, names = [], {}
    last = {id(a): i for i, node in enumerate(program.nodes) for a in node.args}
    outputs = {id(n) for n in program.outputs.values()}
    inputs = {n.name: n for n in program.nodes if n.op == "input"}
    direct: dict[int, str] = {}  # output nodes computed straight into their tensor
    for key, node in program.outputs.items():
        old = inputs.get(key)
        if (
            not (node.scalar or node.boolean or node.op in ("input", "const"))
            and id(node) not in direct
            and (old is None or last.get(id(old), -1) <= program.nodes.index(node))
        ):
            direct[id(node)] = key
    # branches that a per-tensor condition picks: their buffers may live on under the
    # `where`'s name, so nothing writes over them in place
    chosen = {
        id(n)
        for n in program.nodes
        if n.op == "where" and n.args[0].scalar and not any(a.scalar for a in n.args[1:])
    }
    picked = {id(a) for n in program.nodes if id(n) in chosen for a in n.args[1:]}
    axpys = _axpys(program, outputs)
    folded = {id(m) for fold in axpys.values() for m in fold.folded}

    def free(first: Node, index: int) -> bool:
        """Whether ``first``'s buffer is free after node ``index``: written over in place."""
        return (
            first.op not in ("input", "const")
            and not (first.scalar or first.boolean)
            and last[id(first)] == index
            and id(first) not in outputs
            and id(first) not in picked
        )

    for index, node in enumerate(program.nodes):
        var = names[id(node)] = f"n{index}"
        args = [names[id(a)] for a in node.args]
        if id(node) in folded:  # computed by its one user, as torch.add's alpha
            continue
        if node.op == "where" and id(node) in chosen:
            # a per-tensor condition picks a branch: no pass over memory
            lines.append(f"{var} = {args[1]} if {args[0]} else {args[2]}")
            continue
        if node.op == "const":
            lines.append(f"{var} = {node.value!r}")
            continue
        if not node.args:
            lines.append(f"{var} = env[{node.name!r}]")
            continue
        if node.scalar:
            lines.append(f"{var} = OPS[{node.op!r}][1]({', '.join(args)})")
            continue
        if id(node) in axpys:
            fold = axpys[id(node)]
            first, n = fold.tensors[0], len(fold.tensors)
            keyword = "alpha" if fold.call == "torch.add" else "value"
            holes = ", ".join(f"{{{i}}}" for i in range(n))
            call = f"{fold.call}({holes}, {keyword}={fold.sign}{{{n}}})"
            scale = "1" if fold.scale is None else names[id(fold.scale)]
            args = [*(names[id(x)] for x in fold.tensors), scale]
            reusable = True
        else:
            numbers = [i for i, a in enumerate(node.args) if a.scalar]
            call = _WITH_NUMBER.get((node.op, numbers[0])) if len(numbers) == 1 else None
            if node.op == "lerp" and numbers == [2]:
                call = "torch.lerp({0}, {1}, {2})"
            if node.op == "where" and numbers in ([], [1], [2]):
                call = "torch.where({0}, {1}, {2})"
            if call is None and not numbers and node.op in _IN_PLACE:
                call = f"torch.{node.op}({', '.join(f'{{{i}}}' for i in range(len(args)))})"
            if call is None:  # the numbers as 0-d tensors of the compute dtype
                args = [f"number({a}, like)" if i in numbers else a for i, a in enumerate(args)]
                call = f"TORCH[{node.op!r}]({', '.join(args)})"
            first = node.args[0]
            reusable = node.op in _IN_PLACE and call.startswith(f"torch.{node.op}({{0}}")
        if reusable and free(first, index):  # its first argument's buffer: written in place
            call = call[:-1] + ", out={0})"
        if id(node) in direct:  # its old value is read no more: written in place
            call = call.replace(", out={0})", ")")[:-1] + f", out=env[{direct[id(node)]!r}])"
        lines.append(f"{var} = " + call.format(*args))
    outputs = ", ".join(f"{k!r}: value({names[id(n)]}, like)" for k, n in program.outputs.items())
    text = "\n".join(
        ["def run(env, like):", *(f"    {line}" for line in lines), f"    return {{{outputs}}}"]
    )
    scope = {"torch": torch, "OPS": OPS, "TORCH": _TORCH, "number": _number, "value": _value}
    exec(compile(text, f"<rule {id(program)}>", "exec"), scope)
    _KEEP.append(program)
    return scope["run"]


class _Fold(NamedTuple):
    """An element node ``a ± s x`` computed by one torch call (see :func:`_axpys`)."""

    call: str  # torch.add (x = b), torch.addcmul (x = b c), torch.addcdiv (x = b / c)
    tensors: list[Node]  # a, b[, c]
    scale: Node | None  # s (None: 1)
    sign: str  # "" or "-"
    folded: list[Node]  # the products it computes, emitted nowhere else


def _axpys(program: Program, outputs: set[int]) -> dict[int, _Fold]:
    """The element nodes ``a ± s b``, ``a ± s (b c)`` (or ``a ± (s b) c``, ``a ± b c``) and
    ``a ± s (b / c)`` (``s`` a scalar, the products used once), by id. One ``torch.add(a, b, alpha=±s)``,
    ``torch.addcmul(a, b, c, value=±s)`` or ``torch.addcdiv`` computes each: a pass over
    memory and a full-size temporary fewer per folded operation (torch may round them as fused
    multiply-adds, or multiply in another order: the paths agree to rounding, as tested)."""
    uses: dict[int, int] = {}
    for node in program.nodes:
        for a in node.args:
            uses[id(a)] = uses.get(id(a), 0) + 1

    def element(n: Node) -> bool:
        return not (n.scalar or n.boolean)

    def once(n: Node) -> bool:  # a temporary read only by the node folding it
        return element(n) and uses.get(id(n)) == 1 and id(n) not in outputs

    def scaled(m: Node) -> tuple[Node, Node] | None:
        """``m = s y`` (in either order), read once: (s, y)."""
        if m.op != "mul" or not once(m) or sum(x.scalar for x in m.args) != 1:
            return None
        s, y = sorted(m.args, key=lambda x: not x.scalar)
        return (s, y) if element(y) else None

    found: dict[int, _Fold] = {}
    for node in program.nodes:
        if node.op not in ("add", "sub") or not element(node):
            continue
        sign = "-" if node.op == "sub" else ""
        for position in (1, 0) if node.op == "add" else (1,):
            m, a = node.args[position], node.args[1 - position]
            if not element(a) or m.op != "mul" or not once(m):
                continue
            pair = scaled(m)
            if pair is not None:
                s, y = pair
                if y.op in ("mul", "div") and once(y) and all(map(element, y.args)):
                    call = "torch.addcmul" if y.op == "mul" else "torch.addcdiv"
                    found[id(node)] = _Fold(call, [a, *y.args], s, sign, [m, y])
                else:
                    found[id(node)] = _Fold("torch.add", [a, y], s, sign, [m])
                break
            if all(map(element, m.args)):  # a ± (s b) c
                for k in (0, 1):
                    inner = scaled(m.args[k])
                    if inner is not None:
                        s, b = inner
                        fold = _Fold(
                            "torch.addcmul", [a, b, m.args[1 - k]], s, sign, [m, m.args[k]]
                        )
                        found[id(node)] = fold
                        break
                if id(node) not in found:  # a ± b c
                    found[id(node)] = _Fold("torch.addcmul", [a, *m.args], None, sign, [m])
                break
    return found


def _number(value: float, like: Tensor) -> Tensor:
    """A scalar as the element arithmetic takes it: rounded to the compute dtype (a condition:
    a bool)."""
    dtype = torch.bool if isinstance(value, bool) else like.dtype
    return torch.tensor(value, dtype=dtype, device=like.device)


def _value(value: Any, like: Tensor) -> Tensor:
    if isinstance(value, Tensor):
        return value if value.shape == like.shape else value.expand_as(like)
    return _number(value, like).expand_as(like)


# foreach ops for (list, list), (list, number) and (list, list of 0-d tensors)
_FOREACH = {
    "add": torch._foreach_add,
    "sub": torch._foreach_sub,
    "mul": torch._foreach_mul,
    "div": torch._foreach_div,
    "neg": torch._foreach_neg,
    "sqrt": torch._foreach_sqrt,
    "exp": torch._foreach_exp,
    "log": torch._foreach_log,
    "abs": torch._foreach_abs,
    "sign": torch._foreach_sign,
    "maximum": torch._foreach_maximum,
    "minimum": torch._foreach_minimum,
}


def run_lists(program: Program, env: dict[str, Any], like: list[Tensor]) -> dict[str, list[Tensor]]:
    """The rule's new values for lists of tensors of one dtype and device; ``env``: the inputs
    as lists, the hyperparameters as Python floats, the per-tensor scalars as 1-D float64
    tensors (one value per tensor, computed on as float64 vectors)."""
    dtype = like[0].dtype

    def scalar(op: str, args: list[Any]) -> Any:
        vector = next((a for a in args if isinstance(a, Tensor)), None)
        if vector is None:
            return _python(op, args)
        # a per-tensor vector (float64): the scalars of every tensor at once
        return _TORCH[op](
            *(
                a
                if isinstance(a, Tensor)
                else torch.tensor(a, dtype=vector.dtype, device=vector.device)
                for a in args
            )
        )

    def element(op: str, args: list[Any]) -> list[Tensor]:
        return _list_op(op, [_each(a, dtype) if isinstance(a, Tensor) else a for a in args], like)

    values = _walk(program, env, scalar, element)
    out = {}
    for k, n in program.outputs.items():
        v = values[id(n)]
        if isinstance(v, list) and not isinstance(v, _PerTensor):
            out[k] = v
        else:
            out[k] = [_value(x, t) for x, t in zip(_per(v, like), like)]
    return out


class _PerTensor(list):
    """One 0-d tensor per tensor of the call: a per-tensor scalar, as foreach ops broadcast it."""


def _each(vector: Tensor, dtype: torch.dtype) -> _PerTensor:
    """A per-tensor vector as 0-d tensors of the compute dtype (conditions stay bools)."""
    return _PerTensor((vector if vector.dtype is torch.bool else vector.to(dtype)).unbind())


def _per(value: Any, like: list[Tensor]) -> list[Any]:
    return value if isinstance(value, list) else [value] * len(like)


def _list_op(op: str, args: list[Any], like: list[Tensor]) -> list[Tensor]:
    """One element operation over the lists: a foreach op where torch has one, else per tensor."""
    lists = [isinstance(a, list) and not isinstance(a, _PerTensor) for a in args]
    fn = _FOREACH.get(op)
    if fn is not None and lists[0]:
        if len(args) == 1:
            return list(fn(args[0]))
        other = args[1]
        if isinstance(other, float) or lists[1] or op not in ("maximum", "minimum"):
            return list(fn(args[0], other))
    if op in ("add", "mul") and lists[1] and not lists[0]:
        return _list_op(op, [args[1], args[0]], like)  # commutative: the list first
    if op == "lerp" and lists[0] and lists[1] and not isinstance(args[2], list):
        return list(torch._foreach_lerp(args[0], args[1], args[2]))
    columns = [_per(a, like) for a in args]
    return [
        _TORCH[op](*(a if isinstance(a, Tensor) else _number(a, t) for a in row))
        for t, *row in zip(like, *columns)
    ]
