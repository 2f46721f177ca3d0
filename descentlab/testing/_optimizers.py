"""Building the optimizer under test, its fast paths, and its reference."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from ._data import Groups, with_hparams

Factory = Callable[..., torch.optim.Optimizer]
# reference(param, grad, state, step, **group_hparams): one tensor's update, in place on param and
# state (or returning the new parameter)
ReferenceFn = Callable[..., "torch.Tensor | None"]

# descentlab's readable path first; the others must equal it
_IMPLS = ("forloop", "foreach", "fused", "auto")


def name_of(factory: Any) -> str:
    """A class's name, also through ``functools.partial``."""
    while isinstance(factory, functools.partial):
        factory = factory.func
    return getattr(factory, "__name__", None) or type(factory).__name__


def is_optimizer_class(obj: Any) -> bool:
    """An optimizer class, or a ``functools.partial`` of one (a reference that steps groups)."""
    while isinstance(obj, functools.partial):
        obj = obj.func
    return isinstance(obj, type) and issubclass(obj, torch.optim.Optimizer)


def refusal(factory: Factory, dtype: torch.dtype = torch.float32, **options: Any) -> str | None:
    """Why ``factory`` cannot build and step an optimizer with these keywords, or None
    (probed on one parameter of ``dtype``)."""
    p = torch.nn.Parameter(torch.zeros(2, dtype=dtype))
    try:
        opt = factory([p], **options)
        p.grad = torch.ones_like(p)
        opt.step()
    except (TypeError, ValueError, RuntimeError, NotImplementedError) as e:
        return f"{type(e).__name__}: {e}"
    return None


def default_paths(factory: Factory) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """The ways to run ``factory``, the readable one first, and those it refused (with why).

    descentlab's ``impl=`` (forloop, foreach, fused, auto); else torch.optim's ``foreach=`` and
    ``fused=`` where the class takes them; else the class as it is.
    """
    if refusal(factory, impl="forloop") is None:
        candidates = {f"impl={i!r}": {"impl": i} for i in _IMPLS}
    else:
        candidates = {"default": {}}
        if refusal(factory, foreach=False) is None:
            candidates = {"foreach=False": {"foreach": False}, "foreach=True": {"foreach": True}}
        candidates["fused=True"] = {"fused": True}
    paths, refused = {}, {}
    for name, options in candidates.items():
        why = refusal(factory, **options)
        if why is None:
            paths[name] = options
        else:
            refused[name] = why
    return paths, refused


class FunctionReference:
    """A per-tensor reference function driven like an optimizer: ``state`` and ``step()``.

    The hyperparameters come from the optimizer under test's groups at every step (so a
    scheduler's lr reaches both); only those the function names are passed, unless it takes
    ``**kwargs``.
    """

    def __init__(
        self, fn: ReferenceFn, groups: Groups, hparams: Callable[[], Sequence[Mapping[str, Any]]]
    ) -> None:
        self.fn, self.groups, self.hparams = fn, groups, hparams
        self.state: dict[torch.Tensor, dict[str, Any]] = {}
        self.steps: dict[torch.Tensor, int] = {}
        sig = inspect.signature(fn).parameters.values()
        takes_all = any(p.kind is p.VAR_KEYWORD for p in sig)
        self.names = None if takes_all else {p.name for p in sig}

    @torch.no_grad()
    def step(self) -> None:
        for params, group in zip(self.groups, self.hparams(), strict=True):
            hp = {k: v for k, v in group.items() if k != "params"}
            if self.names is not None:
                hp = {k: v for k, v in hp.items() if k in self.names}
            for p in params:
                if p.grad is None:
                    continue
                t = self.steps[p] = self.steps.get(p, 0) + 1
                out = self.fn(p, p.grad, self.state.setdefault(p, {}), t, **hp)
                if out is not None and out is not p:
                    p.copy_(out)


def build_reference(
    reference: Factory | ReferenceFn,
    groups: Groups,
    hparams: Sequence[Mapping[str, Any]],
    tested: torch.optim.Optimizer,
) -> Any:
    """An optimizer (a class or a partial of one) or a per-tensor function, on ``groups``."""
    if is_optimizer_class(reference):
        return reference(with_hparams(groups, hparams))
    return FunctionReference(reference, groups, lambda: tested.param_groups)
