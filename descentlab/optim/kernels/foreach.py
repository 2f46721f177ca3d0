"""The foreach path: every fast kernel written with ``torch._foreach_*`` ops, for any device.

Where neither descentlab's compiled CPU kernels nor a GPU kernel applies (MPS, XPU, a CUDA
machine without Triton), the optimizers take these functions: each op runs over the whole list
of tensors, so a step costs a few dozen launches whatever the number of tensors, where the
readable path costs a few per tensor. They take exactly the arguments of the compiled kernels
(``csrc/kernels.cpp``, the Triton kernels), by keyword:

* lists of parameters, gradients and state tensors of one device and dtype, updated in place
  (``p.grad`` is never changed: ``maximize`` and L2 work on copies);
* per-tensor scalars as 1-D float64 tensors on the parameters' device (from :mod:`._scalars`),
  which reach the foreach ops as 0-d tensors: nothing is read on the host;
* hyperparameters as floats, and ``lr`` (or a factor derived from it) as a float or a 0-d tensor.

The equation tags ``(n)`` are those of each algorithm's docstring and ``_reference``. The order
of the arithmetic follows the readable path; results agree up to rounding (tested).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "lookahead_sync",
    "momentum_sgd",
    "noise_add",
    "swats_adam",
]

Scalar = float | Tensor


def _each(values: Tensor) -> tuple[Tensor, ...]:
    """A per-tensor scalar vector as the 0-d tensors that foreach ops broadcast."""
    return values.unbind()


def _gradients(
    params: list[Tensor], grads: list[Tensor], *, weight_decay: float, maximize: bool
) -> list[Tensor]:
    """The gradients the update reads: negated (``maximize``) and with L2 added, as new tensors."""
    if maximize:
        grads = torch._foreach_neg(grads)
        if weight_decay != 0:
            torch._foreach_add_(grads, params, alpha=weight_decay)
    elif weight_decay != 0:
        grads = torch._foreach_add(grads, params, alpha=weight_decay)
    return grads


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
) -> None:
    """SGD with (Nesterov) momentum and decoupled decay (SGD, SGDW, SWATS's SGD phase).

    ``lr``: per tensor; ``first``: 1 where the buffer takes its first step (b_1 = g_1), else 0;
    ``momentum_buffer`` empty without momentum.
    """
    g = _gradients(params, grads, weight_decay=l2_weight_decay, maximize=maximize)
    d = g
    if momentum_buffer:
        # b = mu b + (1 - tau) g, or b = g on a first step: per-tensor weights of one expression
        torch._foreach_mul_(momentum_buffer, _each(momentum * (1 - first)))
        torch._foreach_addcmul_(momentum_buffer, g, _each((1 - dampening) * (1 - first) + first))
        # (2)
        d = torch._foreach_add(g, momentum_buffer, alpha=momentum) if nesterov else momentum_buffer
    if isinstance(decay, Tensor) or decay != 1.0:
        torch._foreach_mul_(params, decay)
    torch._foreach_addcmul_(params, d, _each(-lr))  # (3)


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
) -> Tensor:
    """SWATS's Adam phase, (1)-(2); ``coef``: ``-lr sqrt(1 - beta2^t) / (1 - beta1^t)``.

    Returns the float64 ``[n, 2]`` tensor of ``p_k . g_k`` and ``p_k . p_k`` per tensor, summed on
    the device (a sum of the positive and of the negative products, in float64).
    """
    g = _gradients(params, grads, weight_decay=l2_weight_decay, maximize=maximize)
    torch._foreach_lerp_(exp_avg, g, 1 - beta1)  # (1)
    torch._foreach_mul_(exp_avg_sq, beta2)
    torch._foreach_addcmul_(exp_avg_sq, g, g, value=1 - beta2)
    denom = torch._foreach_sqrt(exp_avg_sq)
    torch._foreach_add_(denom, eps)
    step = torch._foreach_div(exp_avg, denom)
    torch._foreach_mul_(step, _each(coef))  # (2): p_k, in the parameters' dtype
    torch._foreach_add_(params, step)
    products = torch._foreach_mul(step, g)
    up = torch._foreach_powsum(torch._foreach_clamp_min(products, 0.0), 1, dtype=torch.float64)
    down = torch._foreach_powsum(torch._foreach_clamp_max(products, 0.0), 1, dtype=torch.float64)
    pp = torch._foreach_powsum(step, 2, dtype=torch.float64)
    return torch.stack([torch.stack(up) - torch.stack(down), torch.stack(pp)], dim=1)


def lookahead_sync(
    slow: list[Tensor], fast: list[Tensor], *, alpha: float, found_inf: Tensor | None = None
) -> None:
    """Lookahead's synchronisation (2): ``phi += alpha (theta - phi)``, ``theta = phi``; where
    the device flag ``found_inf`` is nonzero, nothing (both are kept as they were)."""
    if found_inf is None:
        torch._foreach_lerp_(slow, fast, alpha)
        torch._foreach_copy_(fast, slow)
        return
    new = torch._foreach_lerp(slow, fast, alpha)
    keep = found_inf.bool()
    torch._foreach_copy_(slow, [torch.where(keep, s, n) for s, n in zip(slow, new)])
    torch._foreach_copy_(fast, [torch.where(keep, f, n) for f, n in zip(fast, new)])


def noise_add(noise: list[Tensor], grads: list[Tensor], *, std: float) -> list[Tensor]:
    """GradientNoise's ``g + std * N(0, 1)``, written into ``noise`` (the draws) and returned."""
    torch._foreach_mul_(noise, std)
    torch._foreach_add_(noise, grads)
    return noise
