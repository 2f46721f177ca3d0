"""The C++ kernel and the ``torch.library`` schema of a rule, printed from its traced graphs.

One source per rule: for each setting of its flags, a loop over one chunk of one tensor (the
element nodes, each a ``const T`` local with the rule's equation tag; every input read once,
every output written once) and, in the entry point, the scalar nodes computed once per chunk in
double. The entry point takes the lists, the per-tensor scalar vectors, the hyperparameters and
the flags by name, shares the chunks of all tensors between threads (``csrc/runtime.h``) and
picks the loop by the flags; its argument list and the operator's schema both come from
:class:`Signature`, so the two cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from .graph import Node, Program

__all__ = ["Signature", "Unit", "bundle", "module", "unit"]

_INFIX = {
    "add": "+",
    "sub": "-",
    "mul": "*",
    "div": "/",
    "gt": ">",
    "lt": "<",
    "ge": ">=",
    "le": "<=",
}
_CALL = {
    "pow": "std::pow",
    "sqrt": "std::sqrt",
    "exp": "std::exp",
    "log": "std::log",
    "abs": "std::abs",
    "sign": "sign_of",
    "maximum": "maximum",
    "minimum": "minimum",
    "lerp": "torch_lerp",
}


@dataclass(frozen=True)
class Signature:
    """A rule kernel's arguments, by name: written once for the C++ entry point, its Python
    binding and the operator's schema."""

    lists: tuple[str, ...]  # "params", "grads", then the state tensors
    vectors: tuple[str, ...]  # per-tensor float64 scalars
    hypers: tuple[str, ...]  # float hyperparameters
    flags: tuple[str, ...]  # bool hyperparameters (one loop per setting)

    def schema(self, name: str) -> str:
        """The ``torch.library`` schema: every list mutated (GradScaler unscales ``grads``)."""
        lists = [f"Tensor({chr(97 + i)}!)[] {n}" for i, n in enumerate(self.lists)]
        rest = [
            *(f"Tensor {n}" for n in self.vectors),
            *(f"float {n}" for n in self.hypers),
            *(f"bool {n}" for n in self.flags),
            "Tensor? grad_scale=None",
            "Tensor? found_inf=None",
        ]
        return f"{name}({', '.join(lists)}, *, {', '.join(rest)}) -> ()"


def _literal(value: float) -> str:
    return f"double({value.hex()})" if value == value else "NAN"


class _Printer:
    """C++ expressions for the nodes of one program."""

    def __init__(self, program: Program) -> None:
        self.program = program
        self.names: dict[int, str] = {}
        self.constants: list[Node] = []  # scalar nodes the loop takes as arguments

    def name(self, node: Node, *, element: bool) -> str:
        if node.op == "const":
            return f"T({_literal(node.value)})" if element else _literal(node.value)
        if node.scalar and element:  # computed per chunk, passed to the loop
            if node not in self.constants:
                self.constants.append(node)
            return f"c{self.constants.index(node)}"
        return self.names[id(node)]

    def expression(self, node: Node, *, element: bool) -> str:
        args = [self.name(a, element=element) for a in node.args]
        if node.op in _INFIX:
            return f"{args[0]} {_INFIX[node.op]} {args[1]}"
        if node.op == "neg":
            return f"-{args[0]}"
        if node.op == "where":
            return f"{args[0]} ? {args[1]} : {args[2]}"
        return f"{_CALL[node.op]}({', '.join(args)})"

    def scalars(self) -> list[str]:
        """The per-chunk double computations of the scalar nodes the loop needs."""
        needed: set[int] = set()
        for c in self.constants:
            stack = [c]
            while stack:
                n = stack.pop()
                if id(n) not in needed:
                    needed.add(id(n))
                    stack.extend(n.args)
        lines = []
        for node in self.program.nodes:
            if id(node) not in needed or node.op == "const":
                continue
            if node.op == "hyper":
                self.names[id(node)] = f"H_{node.name}"
            elif node.op == "vector":
                self.names[id(node)] = f"V_{node.name}_values[t]"
            else:
                var = f"s{len(self.names)}"
                self.names[id(node)] = var
                kind = "bool" if node.boolean else "double"
                lines.append(f"const {kind} {var} = {self.expression(node, element=False)};")
        return lines


def _loop(index: int, program: Program, lists: tuple[str, ...]) -> tuple[str, _Printer]:
    printer = _Printer(program)
    body = []
    for name in program.inputs:
        printer.names[id(_input(program, name))] = f"x_{name}"
    for node in program.nodes:
        if node.scalar or node.op == "input":
            continue
        var = f"e{len(printer.names)}"
        kind = "bool" if node.boolean else "T"
        tag = f"  // {node.tag}" if node.tag else ""
        body.append(f"    const {kind} {var} = {printer.expression(node, element=True)};{tag}")
        printer.names[id(node)] = var
    loads = [f"    const T x_{n} = T(X_{n}[i]);" for n in program.inputs]
    stores = [
        f"    X_{n}[i] = S({printer.name(node, element=True)});"
        for n, node in program.outputs.items()
    ]
    used = [n for n in lists if n in program.inputs or n in program.outputs]
    pointers = [f"{'' if n in program.outputs else 'const '}S* __restrict__ X_{n}" for n in used]
    constants = [f"{'bool' if c.boolean else 'T'} c{i}" for i, c in enumerate(printer.constants)]
    head = ", ".join([*pointers, "int64_t begin", "int64_t end", *constants])
    text = "\n".join(
        [
            "template <typename S, typename T>",
            f"void loop_{index}({head}) {{",
            "  for (int64_t i = begin; i < end; ++i) {",
            *loads,
            *body,
            *stores,
            "  }",
            "}",
        ]
    )
    return text, printer


def _input(program: Program, name: str) -> Node:
    for node in program.nodes:
        if node.op == "input" and node.name == name:
            return node
    return Node("input", name=name, scalar=False)  # read only for its store (never: inputs)


@dataclass(frozen=True)
class Unit:
    """A rule's kernel as C++: its code (in a namespace of its own) and the line that binds its
    entry point into a Python module ``m`` under ``name``."""

    name: str
    code: str
    binding: str
    declaration: str  # its entry point's, for the source that binds it


def unit(name: str, title: str, programs: list[Program], sig: Signature) -> Unit:
    """The C++ of a rule: one loop per program (setting of the flags) and the entry point
    ``<name>::step``."""
    lists = tuple(("param", "grad", *sig.lists[2:]))
    loops: dict[str, int] = {}  # a loop's text (unnamed) -> its index
    texts: list[str] = []
    cases: dict[str, list[int]] = {}  # a case's body -> its flag settings (one loop each)
    for program in programs:
        text, printer = _loop(len(texts), program, lists)
        # a setting whose loop is another's (a flag read by no operation) takes that loop
        index = loops.setdefault(text.replace(f"loop_{len(texts)}(", "loop("), len(texts))
        if index == len(texts):
            texts.append(text)
        scalars = printer.scalars()
        used = [n for n in lists if n in program.inputs or n in program.outputs]
        args = [f"ptr<scalar_t>({_list(n, sig)}, t)" for n in used]
        args += [
            "b",
            "e",
            *(
                printer.names[id(c)]
                if c.boolean
                else f"T({printer.names[id(c)]})"
                if id(c) in printer.names
                else f"T({_literal(c.value)})"
                for c in printer.constants
            ),
        ]
        combo = sum(1 << i for i, f in enumerate(sig.flags) if program.flags.get(f))
        body = "\n".join(
            [
                "        for_chunks(L_params, [&](int64_t, int64_t t, int64_t b, int64_t e) {",
                *(f"          {line}" for line in scalars),
                f"          loop_{index}<scalar_t, T>({', '.join(args)});",
                "        });",
                "        break;",
            ]
        )
        cases.setdefault(body, []).append(combo)
    params = [
        *(f"const TensorList& L_{n}" for n in sig.lists),
        *(f"const Scalars& V_{n}" for n in sig.vectors),
        *(f"double H_{n}" for n in sig.hypers),
        *(f"bool F_{n}" for n in sig.flags),
        "const Optional& grad_scale",
        "const Optional& found_inf",
    ]
    others = ", ".join(f"&L_{n}" for n in sig.lists[1:])
    checks = [f"  check_state(L_params, L_{n});" for n in sig.lists[2:]]
    values = [
        f'  const double* V_{n}_values = values(V_{n}, L_params, "{n}");' for n in sig.vectors
    ]
    combo = " | ".join(f"(F_{f} ? {1 << i} : 0)" for i, f in enumerate(sig.flags)) or "0"
    arguments = [
        *(f'arg("{n}")' for n in sig.lists),
        "py::kw_only()",
        *(f'arg("{n}")' for n in (*sig.vectors, *sig.hypers, *sig.flags)),
        'arg("grad_scale") = py::none()',
        'arg("found_inf") = py::none()',
    ]
    code = "\n".join(
        [
            f"// The rule of {title}.",
            f"namespace {name} {{",
            "",
            "using namespace descentlab;",
            "",
            *(f"{loop}\n" for loop in texts),
            f"void step({', '.join(params)}) {{",
            f"  check_lists(L_params, {{{others}}});",
            *checks,
            "  if (L_params.empty() || skip_step(L_grads, grad_scale, found_inf)) return;",
            *values,
            f"  const int combo = {combo};",
            "  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, L_params[0].scalar_type(),"
            f' "{title}", [&] {{',
            "    using T = at::opmath_type<scalar_t>;",
            "    switch (combo) {",
            *(
                "\n".join([*(f"      case {c}:" for c in combos), body])
                for body, combos in cases.items()
            ),
            "      default:",
            '        TORCH_CHECK(false, "descentlab: no loop for these flags");',
            "    }",
            "  });",
            "}",
            "",
            f"}}  // namespace {name}",
            "",
        ]
    )
    binding = (
        f'  m.def("{name}", &{name}::step, "{title}\'s step over lists of tensors", '
        f"{', '.join(arguments)});"
    )
    declaration = (
        f"namespace {name} {{\nusing namespace descentlab;\nvoid step({', '.join(params)});\n}}"
    )
    return Unit(name, code, binding, declaration)


_HEAD = [
    "// Generated by descentlab from optimizers' rules: do not edit.",
    '#include "runtime.h"',
    "",
]


def module(units: list[Unit]) -> str:
    """A C++ extension of its own for ``units`` (a rule defined outside descentlab)."""
    return "\n".join(
        [
            "#include <torch/extension.h>",
            *_HEAD,
            *(u.code for u in units),
            "PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {",
            "  using py::arg;",
            *(u.binding for u in units),
            "}",
            "",
        ]
    )


def bundle(units: list[Unit], parts: int = 1) -> tuple[list[str], str]:
    """descentlab's own rules in the hand-written kernels' extension, built with it in one
    build: the sources of their loops, shared out over ``parts`` translation units of about
    equal size that the build compiles in parallel (with ATen's headers only: torch's
    extension header alone takes half a minute to compile), and the header that
    ``csrc/kernels.cpp`` includes to bind them (``descentlab::bind_rules``)."""
    shares: list[list[Unit]] = [[] for _ in range(max(1, min(parts, len(units))))]
    for u in sorted(units, key=lambda u: -len(u.code)):  # the largest first, to the smallest
        min(shares, key=lambda share: sum(len(x.code) for x in share)).append(u)
    sources = [
        "\n".join([*_HEAD, *(u.code for u in sorted(share, key=lambda u: u.name))])
        for share in shares
    ]
    ordered = sorted(units, key=lambda u: u.name)
    header = "\n".join(
        [
            "// Generated by descentlab from optimizers' rules: do not edit.",
            "#pragma once",
            "",
            *(u.declaration for u in ordered),
            "",
            "namespace descentlab {",
            "",
            "inline void bind_rules(pybind11::module_& m) {",
            "  using py::arg;",
            *(u.binding for u in ordered),
            "}",
            "",
            "}  // namespace descentlab",
            "",
        ]
    )
    return sources, header


def _list(name: str, sig: Signature) -> str:
    return "L_" + {"param": "params", "grad": "grads"}.get(name, name)
