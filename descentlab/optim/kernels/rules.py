"""The fast paths of a rule optimizer (:class:`descentlab.optim.elementwise.Elementwise`).

* CPU: the C++ kernel printed from the rule (``Rule.cpp``), built once per machine and cached
  (:func:`.cpu.generated`); CUDA: the Triton kernels printed from it (``Rule.triton``), one
  multi-tensor launch for the whole blocks and one for the tails (:mod:`.triton._table`).
  Both implement one ``torch.library`` operator, ``descentlab::rule_<name>_<digest>``, whose
  schema comes from the rule's :class:`Signature` (so the two cannot disagree on what they
  mutate), with a fake implementation, so that ``torch.compile`` traces a step as one node.
  Outside a compiled graph the kernel is called directly (the dispatcher's checks cost about
  2 us per tensor);
* any other device, and ``impl="foreach"``: the rule run over the lists with ``torch._foreach_*``
  ops (:func:`.._rules.run.run_lists`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .._rules.rule import BUILTIN, Rule, Setting
from .._rules.run import run_lists
from . import warn_once

__all__ = ["Compiled", "Foreach", "select"]


class Foreach:
    """A rule's step over lists with foreach ops (any device)."""

    AMP = False  # the step unscales on the host (see optim._stepping)

    @staticmethod
    def step(
        rule: Rule,
        setting: Setting,
        params: list[Tensor],
        grads: list[Tensor],
        lists: dict[str, list[Tensor]],
        vectors: dict[str, Tensor],
    ) -> None:
        env = {"param": params, "grad": grads, **lists, **setting.hypers, **vectors}
        wide = params[0].dtype in (torch.float16, torch.bfloat16)
        if wide:  # the math in float32, as the kernels' opmath
            env.update({k: [t.float() for t in v] for k, v in env.items() if isinstance(v, list)})
        out = run_lists(setting.program, env, env["param"])
        for name, values in out.items():
            torch._foreach_copy_(params if name == "param" else lists[name], values)


class Compiled:
    """A rule's generated kernel (C++ on CPU, Triton on CUDA), called directly or, under
    ``torch.compile``, through its operator."""

    AMP = True  # the kernels take GradScaler's grad_scale and found_inf

    def __init__(self, run: Any, op: Any) -> None:
        self.run, self.op = run, op

    def step(
        self,
        rule: Rule,
        setting: Setting,
        params: list[Tensor],
        grads: list[Tensor],
        lists: dict[str, list[Tensor]],
        vectors: dict[str, Tensor],
        **amp: Tensor,
    ) -> None:
        kw = {**lists, **vectors, **setting.hypers, **setting.flags, **amp}
        if torch.compiler.is_compiling():
            self.op(params, grads, **kw)
        else:
            self.run(params, grads, **kw)


_compiled: dict[tuple[int, str], Compiled] = {}


def compiled(rule: Rule, device: str = "cpu") -> Compiled:
    """The rule's kernel for ``device`` ("cpu": C++, "cuda": Triton), built (or loaded from
    the cache) and registered on first use; ``RuntimeError`` where it cannot be had."""
    key = (id(rule), device)
    if device == "cpu" and BUILTIN.get(rule.name) is rule:
        from . import cpu

        reason = cpu.unavailable_reason()  # remembered: as cheap as the lookup below
        if reason is not None:
            raise RuntimeError(reason)
    found = _compiled.get(key)
    if found is None:
        run = _cpu(rule) if device == "cpu" else _triton(rule)
        op = _operator(rule)
        _implement(rule.stem, "CPU" if device == "cpu" else "CUDA", rule, run)
        found = _compiled[key] = Compiled(run, op)
    return found


def _cpu(rule: Rule) -> Any:
    from . import cpu

    if BUILTIN.get(rule.name) is rule:  # built with the hand-written kernels
        return getattr(cpu.kernels(), rule.unit.name)
    return getattr(cpu.generated(rule.stem, rule.cpp()), rule.unit.name)


def _triton(rule: Rule) -> Any:
    from . import triton_unavailable_reason

    reason = triton_unavailable_reason()
    if reason is not None:
        raise RuntimeError(reason)
    from .triton import _table

    kernels = _load_module(rule.stem, rule.triton()).KERNELS
    signature = rule.signature

    def run(params, grads, *, grad_scale=None, found_inf=None, **kw):
        if not params:
            return
        states = [kw.pop(n) for n in signature.lists[2:]]
        device = params[0].device
        hyper = _table.hyper([kw[n] for n in signature.hypers] or [0.0], device)
        vectors = [_table.scalars(kw[n], len(params), n) for n in signature.vectors]
        matrix = torch.stack(vectors) if vectors else hyper
        combo = sum(1 << i for i, f in enumerate(signature.flags) if kw[f])
        _table.run(
            kernels[combo], [params, grads, *states], hyper, grad_scale, found_inf,
            matrix, len(params),
        )  # fmt: skip

    return run


def _load_module(stem: str, source: str) -> Any:
    """Import generated Python ``source`` (Triton reads a kernel's source from its file)."""
    import importlib.util
    import os
    import tempfile
    from pathlib import Path

    root = Path(os.environ.get("DESCENTLAB_CACHE", Path.home() / ".cache" / "descentlab"))
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError:
        root = Path(tempfile.gettempdir()) / "descentlab"
        root.mkdir(parents=True, exist_ok=True)
    path = root / f"{stem}.py"
    if not path.exists() or path.read_text() != source:
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(source)
        os.replace(partial, path)  # never a half-written module for another process
    spec = importlib.util.spec_from_file_location(f"descentlab_generated.{stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_LIBRARY: list[torch.library.Library] = []
_IMPLEMENTED: set[tuple[str, str]] = set()


def _operator(rule: Rule) -> Any:
    """``descentlab::<stem>``, its schema from the rule's signature (written nowhere else)."""
    if not hasattr(torch.ops.descentlab, rule.stem):
        if not _LIBRARY:
            _LIBRARY.append(torch.library.Library("descentlab", "FRAGMENT"))
        _LIBRARY[0].define(rule.signature.schema(rule.stem))
        torch.library.register_fake(
            f"descentlab::{rule.stem}", lambda *args, **kwargs: None, lib=_LIBRARY[0]
        )
    return getattr(torch.ops.descentlab, rule.stem).default


def _implement(stem: str, key: str, rule: Rule, run: Any) -> None:
    """The operator's implementation for dispatch key ``key`` ("CPU" or "CUDA")."""
    if (stem, key) in _IMPLEMENTED:
        return
    lists = rule.signature.lists[2:]

    def kernel(params, grads, *states, **kwargs):
        run(params, grads, **dict(zip(lists, states)), **kwargs)

    torch.library.impl(f"descentlab::{stem}", key, lib=_LIBRARY[0])(kernel)
    _IMPLEMENTED.add((stem, key))


def select(rule: Rule, device: torch.device, *, impl: str, owner: str) -> Any:
    """The path of a bucket on ``device``: the compiled kernel on CPU, else the foreach path
    (``impl="fused"`` raises where no compiled kernel can run; ``"auto"`` warns once)."""
    if impl == "foreach":
        return Foreach
    reason = f"no compiled kernel for {device.type}"
    if device.type in ("cpu", "cuda"):
        try:
            return compiled(rule, device.type)
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
