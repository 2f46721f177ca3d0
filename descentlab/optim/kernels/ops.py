"""The compiled CPU kernels as ``torch.library`` operators (``torch.ops.descentlab.<name>``).

Each kernel of ``csrc/kernels.cpp`` is an opaque ``torch.library.custom_op`` with its mutated
lists declared and a fake implementation, so that ``torch.compile`` of a step traces a call as
one node (no graph break), and the step-dependent scalars and a tensor ``lr`` are graph inputs:
a new step, or an ``lr`` a scheduler changes in place, does not recompile.

The functions of this module take the arguments of :mod:`.foreach` (the same names, by
keyword; ``lr`` and ``decay`` a float or a 0-d tensor). Outside ``torch.compile`` they call the
C++ kernel directly: the dispatcher's checks of an operator cost about 2 us per tensor of its
lists (0.4-0.7 ms a call on 200 tensors, measured), more than the step of a small model.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from . import cpu

__all__ = [
    "AMP",
    "lookahead_sync",
    "momentum_sgd",
    "swats",
    "swats_adam",
]

AMP = True  # every kernel here takes GradScaler's grad_scale and found_inf (see optim.base)
Scalar = float | Tensor
_MAYBE_TENSOR = ("lr", "decay")  # floats or 0-d tensors (momentum_sgd: lr per tensor, 1-D)


def _kernel(name: str, kw: dict[str, Any]) -> Any:
    """Call the C++ kernel ``name`` by keyword, 0-d tensors read as floats (CPU: no sync)."""
    for key in _MAYBE_TENSOR:
        if isinstance(kw.get(key), Tensor) and kw[key].dim() == 0:
            kw[key] = float(kw[key])
    return getattr(cpu.kernels(), name)(**kw)


def _call(op: Any, name: str, kw: dict[str, Any]) -> Any:
    if not torch.compiler.is_compiling():
        return _kernel(name, kw)
    for key in _MAYBE_TENSOR:
        if key in kw and not isinstance(kw[key], Tensor):
            kw[key] = torch.tensor(kw[key], dtype=torch.float64)
    return op(**kw)


def _register(name: str, mutates: tuple[str, ...]):
    """Register the decorated function's signature as ``descentlab::<name>``, whose real
    implementation is the C++ kernel and whose fake one returns nothing."""

    def decorate(fn):
        op = torch.library.custom_op(f"descentlab::{name}", mutates_args=mutates)(fn)
        op.register_fake(lambda *args, **kwargs: None)
        return op

    return decorate


_LISTS = ("params", "grads")  # grads: divided by grad_scale in place when it is given


@_register("momentum_sgd", (*_LISTS, "momentum_buffer"))
def _momentum_sgd(
    params: list[Tensor],
    grads: list[Tensor],
    momentum_buffer: list[Tensor],
    lr: Tensor,
    first: Tensor,
    momentum: float,
    dampening: float,
    nesterov: bool,
    l2_weight_decay: float,
    decay: Tensor,
    maximize: bool,
    grad_scale: Tensor | None = None,
    found_inf: Tensor | None = None,
) -> None:
    _kernel("momentum_sgd", locals())


@torch.library.custom_op("descentlab::swats_adam", mutates_args=(*_LISTS, "exp_avg", "exp_avg_sq"))
def _swats_adam(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avg: list[Tensor],
    exp_avg_sq: list[Tensor],
    coef: Tensor,
    beta1: float,
    beta2: float,
    eps: float,
    l2_weight_decay: float,
    maximize: bool,
    grad_scale: Tensor | None = None,
    found_inf: Tensor | None = None,
) -> Tensor:
    return _kernel("swats_adam", locals())


@_swats_adam.register_fake
def _(params, grads, *args, **kwargs):
    return params[0].new_empty((len(params), 2), dtype=torch.float64)


_SWITCH = ("switch_step", "lam", "sgd_lr", "switch_lr")


@torch.library.custom_op(
    "descentlab::swats",
    mutates_args=(*_LISTS, "exp_avg", "exp_avg_sq", "momentum_buffer", *_SWITCH),
)
def _swats(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avg: list[Tensor],
    exp_avg_sq: list[Tensor],
    momentum_buffer: list[Tensor],
    switch_step: list[Tensor],
    lam: list[Tensor],
    sgd_lr: list[Tensor],
    switch_lr: list[Tensor],
    coef: Tensor,
    bc2: Tensor,
    steps: Tensor,
    lr: Tensor,
    beta1: float,
    beta2: float,
    eps: float,
    l2_weight_decay: float,
    switch_tol: float,
    maximize: bool,
    grad_scale: Tensor | None = None,
    found_inf: Tensor | None = None,
) -> Tensor:
    return _kernel("swats", locals())


@_swats.register_fake
def _(params, grads, *args, **kwargs):
    return params[0].new_empty((len(params), 2), dtype=torch.float64)


def _lookahead_cpu(
    slow: list[Tensor], fast: list[Tensor], alpha: float, found_inf: Tensor | None = None
) -> None:
    if found_inf is None or not found_inf:  # a CPU flag: no sync
        _kernel("lookahead_sync", {"slow": slow, "fast": fast, "alpha": alpha})


_lookahead_sync = _register("lookahead_sync", ("slow", "fast"))(_lookahead_cpu)


# ---------------------------------------------------------------------------- the functions


def momentum_sgd(
    params: list[Tensor],
    grads: list[Tensor],
    momentum_buffer: list[Tensor],
    *,
    lr: Tensor,
    first: Tensor,
    momentum: float,
    dampening: float,
    nesterov: bool,
    l2_weight_decay: float,
    decay: Scalar,
    maximize: bool,
    grad_scale: Tensor | None = None,
    found_inf: Tensor | None = None,
) -> None:
    """SGD with momentum and decoupled decay (see :func:`.foreach.momentum_sgd`)."""
    _call(_momentum_sgd, "momentum_sgd", locals())


def swats_adam(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avg: list[Tensor],
    exp_avg_sq: list[Tensor],
    *,
    coef: Tensor,
    beta1: float,
    beta2: float,
    eps: float,
    l2_weight_decay: float,
    maximize: bool,
    grad_scale: Tensor | None = None,
    found_inf: Tensor | None = None,
) -> Tensor:
    """SWATS's Adam phase; the float64 ``[n, 2]`` dot products (see :func:`.foreach.swats_adam`)."""
    return _call(_swats_adam, "swats_adam", locals())


def swats(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avg: list[Tensor],
    exp_avg_sq: list[Tensor],
    momentum_buffer: list[Tensor],
    switch_step: list[Tensor],
    lam: list[Tensor],
    sgd_lr: list[Tensor],
    switch_lr: list[Tensor],
    *,
    coef: Tensor,
    bc2: Tensor,
    steps: Tensor,
    lr: Scalar,
    beta1: float,
    beta2: float,
    eps: float,
    l2_weight_decay: float,
    switch_tol: float,
    maximize: bool,
    grad_scale: Tensor | None = None,
    found_inf: Tensor | None = None,
) -> Tensor:
    """One SWATS step, both phases and the switch, the state in 0-d float64 tensors (as
    :func:`.triton.swats`); the ``[n, 2]`` dot products (zeros in the SGD phase)."""
    return _call(_swats, "swats", locals())


def lookahead_sync(
    slow: list[Tensor], fast: list[Tensor], *, alpha: float, found_inf: Tensor | None = None
) -> None:
    """Lookahead's synchronisation in one pass (see :func:`.foreach.lookahead_sync`)."""
    if torch.compiler.is_compiling():
        _lookahead_sync(slow, fast, alpha, found_inf)
    else:
        _lookahead_cpu(slow, fast, alpha, found_inf)
