"""The fast paths of a rule optimizer (:class:`descentlab.optim.elementwise.Elementwise`).

* CPU: the C++ kernel printed from the rule (``Rule.cpp``), built once per machine and cached
  (:func:`.cpu.generated`), registered as the ``torch.library`` operator
  ``descentlab::rule_<name>_<digest>`` with the schema of the rule's :class:`Signature` and a
  fake implementation, so that ``torch.compile`` traces a step as one node. Outside a compiled
  graph the kernel is called directly (the dispatcher's checks cost about 2 us per tensor);
* any other device, and ``impl="foreach"``: the rule run over the lists with ``torch._foreach_*``
  ops (:func:`.._rules.run.run_lists`).
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from torch import Tensor

from .._rules.rule import Rule
from .._rules.run import run_lists
from . import warn_once

__all__ = ["Compiled", "Foreach", "select"]


class Foreach:
    """A rule's step over lists with foreach ops (any device)."""

    AMP = False  # the step unscales on the host (see optim._stepping)

    @staticmethod
    def step(
        rule: Rule,
        group: dict[str, Any],
        params: list[Tensor],
        grads: list[Tensor],
        lists: dict[str, list[Tensor]],
        vectors: dict[str, Tensor],
    ) -> None:
        env = {"param": params, "grad": grads, **lists, **rule.hypers(group), **vectors}
        wide = params[0].dtype in (torch.float16, torch.bfloat16)
        if wide:  # the math in float32, as the kernels' opmath
            env.update({k: [t.float() for t in v] for k, v in env.items() if isinstance(v, list)})
        out = run_lists(rule.program(group), env, env["param"])
        for name, values in out.items():
            torch._foreach_copy_(params if name == "param" else lists[name], values)


class Compiled:
    """A rule's generated C++ kernel, called directly or through its operator."""

    AMP = True  # the kernel takes GradScaler's grad_scale and found_inf

    def __init__(self, rule: Rule, module: Any, op: Any) -> None:
        self.module, self.op = module, op

    def step(
        self,
        rule: Rule,
        group: dict[str, Any],
        params: list[Tensor],
        grads: list[Tensor],
        lists: dict[str, list[Tensor]],
        vectors: dict[str, Tensor],
        **amp: Tensor,
    ) -> None:
        flags = {f: bool(group[f]) for f in rule.flags}
        kw = {**lists, **vectors, **rule.hypers(group), **flags, **amp}
        if torch.compiler.is_compiling():
            self.op(params, grads, **kw)
        else:
            self.module.step(params, grads, **kw)


_compiled: dict[int, Compiled] = {}


def compiled(rule: Rule) -> Compiled:
    """The rule's kernel, built (or loaded from the cache) and registered on first use;
    ``RuntimeError`` where it cannot be built."""
    found = _compiled.get(id(rule))
    if found is None:
        from . import cpu

        source = rule.cpp()
        digest = hashlib.sha256(source.encode()).hexdigest()[:10]
        stem = f"rule_{rule.name.lower()}_{digest}"
        module = cpu.generated(stem, source)
        found = _compiled[id(rule)] = Compiled(rule, module, _register(stem, rule, module))
    return found


_LIBRARY: list[torch.library.Library] = []


def _register(stem: str, rule: Rule, module: Any) -> Any:
    """``descentlab::<stem>`` with the rule's schema: the kernel on CPU, nothing when fake."""
    name = f"descentlab::{stem}"
    if not hasattr(torch.ops.descentlab, stem):
        if not _LIBRARY:
            _LIBRARY.append(torch.library.Library("descentlab", "FRAGMENT"))
        _LIBRARY[0].define(rule.signature.schema(stem))

        def kernel(params, grads, *args, **kwargs):
            lists = rule.signature.lists[2:]
            named = dict(zip(lists, args))
            module.step(params, grads, **named, **kwargs)

        torch.library.impl(name, "CPU", lib=_LIBRARY[0])(kernel)
        torch.library.register_fake(name, lambda *args, **kwargs: None, lib=_LIBRARY[0])
    return getattr(torch.ops.descentlab, stem).default


def select(rule: Rule, device: torch.device, *, impl: str, owner: str) -> Any:
    """The path of a bucket on ``device``: the compiled kernel on CPU, else the foreach path
    (``impl="fused"`` raises where no compiled kernel can run; ``"auto"`` warns once)."""
    if impl == "foreach":
        return Foreach
    reason = "no compiled kernel for rules on this device yet"
    if device.type == "cpu":
        try:
            return compiled(rule)
        except RuntimeError as exc:
            reason = str(exc)
    if impl == "fused":
        raise RuntimeError(
            f"{owner}(impl='fused'): no compiled kernel for {device.type} tensors here "
            f"({reason}); use impl='auto', 'foreach' or 'forloop'"
        )
    if device.type == "cpu" or device.type == "cuda":
        warn_once(f"descentlab: {owner} takes the foreach path on {device.type} ({reason})")
    return Foreach
