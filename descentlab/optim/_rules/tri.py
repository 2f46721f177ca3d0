"""The Triton kernels of a rule, printed from its traced graphs (one kernel per setting of the
flags), for the multi-tensor launcher of ``kernels/triton/_table.py``.

A kernel takes the launcher's arguments (the address table with one column per list of the
rule's :class:`.cpp.Signature`, the work item, the float64 hyperparameter vector ``H``,
GradScaler's ``grad_scale`` and ``found_inf``), then ``V``, the per-tensor scalars as a float64
``[vectors, tensors]`` matrix, and ``NT``, the number of tensors. Its scalar nodes are computed
once per program in float64 and its element nodes in the compute type, as the C++ kernel does;
the gradient is unscaled and stored back under GradScaler, as torch's fused kernels leave it.
"""

from __future__ import annotations

from .cpp import Signature
from .graph import Node, Program

__all__ = ["source"]

_INFIX = {"add": "+", "sub": "-", "mul": "*", "gt": ">", "lt": "<", "ge": ">=", "le": "<="}
_ELEMENT = {
    "div": "j.div({0}, {1})",
    "pow": "libdevice.pow({0}, {1})",
    "neg": "-{0}",
    "sqrt": "j.sqrt({0})",
    "exp": "tl.exp({0})",
    "log": "tl.log({0})",
    "abs": "tl.abs({0})",
    "sign": "tl.where({0} > 0, 1.0, tl.where({0} < 0, -1.0, 0.0)).to(CT)",
    "maximum": "tl.where(({0} > {1}) | ({0} != {0}), {0}, {1})",
    "minimum": "tl.where(({0} < {1}) | ({0} != {0}), {0}, {1})",
    "where": "tl.where({0}, {1}, {2})",
}
_SCALAR = {
    **_ELEMENT,
    "div": "{0} / {1}",
    "sqrt": "tl.sqrt({0})",
    "sign": "tl.where({0} > 0, 1.0, tl.where({0} < 0, -1.0, 0.0)).to(tl.float64)",
}


class _Printer:
    def __init__(self, program: Program, sig: Signature) -> None:
        self.program, self.sig = program, sig
        self.names: dict[int, str] = {}

    def name(self, node: Node, *, element: bool) -> str:
        if node.op == "const":
            kind = "CT" if element else "tl.float64"
            return f"tl.full((), {node.value!r}, {kind})"
        name = self.names[id(node)]
        return f"{name}.to(CT)" if element and node.scalar and not node.boolean else name

    def expression(self, node: Node, *, element: bool) -> str:
        args = [self.name(a, element=element) for a in node.args]
        if node.op in _INFIX:
            return f"{args[0]} {_INFIX[node.op]} {args[1]}"
        if node.op == "lerp":
            if node.args[2].scalar:  # torch's branch on the weight: a scalar branch in Triton
                return f"j.lerp({args[0]}, {args[1]}, {args[2]})"
            a, b, w = args
            return f"tl.where(tl.abs({w}) < 0.5, {a} + {w} * ({b} - {a}), {b} - ({b} - {a}) * (1 - {w}))"
        table = _ELEMENT if element else _SCALAR
        return table[node.op].format(*args)

    def lines(self) -> tuple[list[str], list[str]]:
        """The per-program scalar lines and the per-block element lines."""
        scalars, elements = [], []
        for node in self.program.nodes:
            if node.op == "const":
                continue
            if node.op == "input":
                self.names[id(node)] = f"x_{node.name}"
            elif node.op == "hyper":
                self.names[id(node)] = f"H_{node.name}"
            elif node.op == "vector":
                self.names[id(node)] = f"V_{node.name}"
            elif node.scalar:
                var = self.names[id(node)] = f"s{len(self.names)}"
                scalars.append(f"{var} = {self.expression(node, element=False)}")
            else:
                var = self.names[id(node)] = f"e{len(self.names)}"
                tag = f"  # {node.tag}" if node.tag else ""
                elements.append(f"{var} = {self.expression(node, element=True)}{tag}")
        return scalars, elements


def _kernel(index: int, program: Program, sig: Signature) -> str:
    printer = _Printer(program, sig)
    scalars, elements = printer.lines()
    lists = ("param", "grad", *sig.lists[2:])
    head = [
        f"    X_{name} = j.address(row, {k}, DT, FULL)"
        for k, name in enumerate(lists)
        if name in program.inputs or name in program.outputs or name == "grad"
    ]
    head += [
        f"    H_{n} = tl.load(H + {k})" for k, n in enumerate(sig.hypers) if n in program.hypers
    ]
    head += [
        f"    V_{n} = tl.load(V + {k} * NT + t)"
        for k, n in enumerate(sig.vectors)
        if n in program.vectors
    ]
    loads = []
    for name in program.inputs:
        loads.append(f"        x_{name} = tl.load(X_{name} + i, mask=m).to(CT)")
        if name == "grad":
            loads += [
                "        if HAS_SCALE:  # unscaled, and stored back as torch's fused kernels do",
                "            x_grad = j.div(x_grad, scale)",
                "            tl.store(X_grad + i, x_grad.to(DT), mask=m)",
            ]
    if "grad" not in program.inputs:  # GradScaler's unscale still happens
        loads += [
            "        if HAS_SCALE:",
            "            g = j.div(tl.load(X_grad + i, mask=m).to(CT), scale)",
            "            tl.store(X_grad + i, g.to(DT), mask=m)",
        ]
    stores = [
        f"        tl.store(X_{n} + i, ({printer.name(node, element=True)}).to(DT), mask=m)"
        for n, node in program.outputs.items()
    ]
    return "\n".join(
        [
            "@triton.jit",
            f"def kernel_{index}(TABLE, WT, WS, WE, H, GRAD_SCALE, FOUND_INF, V, NT,",
            "             L: tl.constexpr, HAS_SCALE: tl.constexpr, HAS_INF: tl.constexpr,",
            "             DT: tl.constexpr, CT: tl.constexpr, FULL: tl.constexpr,",
            "             BLOCK: tl.constexpr):",
            "    t, start, end, row = j.item(TABLE, WT, WS, WE, FOUND_INF, L, HAS_INF, FULL, BLOCK)",
            *head,
            *(f"    {line}" for line in scalars),
            "    scale = j.load_scale(GRAD_SCALE, HAS_SCALE, CT)",
            "    for off in range(start, end, BLOCK):",
            "        i = off + tl.arange(0, BLOCK)",
            "        m = j.mask(i, end, FULL)",
            *loads,
            *(f"        {line}" for line in elements),
            *stores,
            "",
        ]
    )


def source(title: str, programs: list[Program], sig: Signature) -> str:
    """The Python module of a rule's Triton kernels: ``KERNELS[combo]`` by flag setting."""
    kernels, table = [], []
    for index, program in enumerate(programs):
        kernels.append(_kernel(index, program, sig))
        combo = sum(1 << i for i, f in enumerate(sig.flags) if program.flags.get(f))
        table.append(f"    {combo}: kernel_{index},")
    return "\n".join(
        [
            f'"""Generated by descentlab from the rule of {title}: do not edit."""',
            "# fmt: off",
            "import triton",
            "import triton.language as tl",
            "from triton.language.extra import libdevice",
            "",
            "from descentlab.optim.kernels.triton import _jit as j",
            "",
            *kernels,
            "",
            "KERNELS = {",
            *table,
            "}",
            "",
        ]
    )
