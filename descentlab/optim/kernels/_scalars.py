"""Step-dependent scalars of the fast paths, computed with tensor ops from the step counters.

Every fast path (the CPU kernels, the Triton kernels, the foreach path) takes the per-tensor
scalars of a step (bias corrections, NAdam's step sizes, RAdam's rectification, AdaBound's
bounds) as 1-D float64 tensors, one value per parameter tensor, on the parameters' device. They
are computed here from the step counters with a handful of vector ops: nothing reads a device
value on the host (no sync), and under ``torch.compile`` the step and everything derived from it
stay tensors, so a new step (or a tensor ``lr`` changed in place) does not recompile.

The arithmetic is the algorithms' own (their docstrings' equations), in float64 as the readable
path computes it in Python floats. ``lr`` may be a float or a 0-d tensor throughout.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = [
    "adabound",
    "adagrad",
    "adam",
    "add_one",
    "advance",
    "at",
    "decay",
    "first_steps",
    "nadam",
    "radam",
    "scalar_dtype",
    "swats",
]

Scalar = float | torch.Tensor


def scalar_dtype(device: torch.device) -> torch.dtype:
    """float64, except where the device has none (MPS): then float32."""
    return torch.float32 if device.type == "mps" else torch.float64


def advance(states: list[dict[str, Any]]) -> torch.Tensor:
    """Add one to each tensor's step counter; the new steps as one 1-D vector.

    One C++ call for CPU counters (when the kernels are built), else two ops whatever the number
    of tensors (``_foreach_add_`` and ``stack``); the vector lives where the counters do.
    """
    steps = [s["step"] for s in states]
    module = _cpu_kernels(steps[0])
    if module is not None:
        return module.advance_steps(steps)
    torch._foreach_add_(steps, 1)
    return torch.stack(steps).to(scalar_dtype(steps[0].device))


def add_one(states: list[dict[str, Any]]) -> None:
    """Add one to each tensor's step counter (for torch's fused kernels, which read them)."""
    steps = [s["step"] for s in states]
    module = _cpu_kernels(steps[0])
    if module is not None:
        module.advance_steps(steps)
    else:
        torch._foreach_add_(steps, 1)


def _cpu_kernels(step: torch.Tensor) -> Any:
    """The compiled CPU kernels for CPU step counters outside ``torch.compile``, when built:
    one C++ loop for all counters (``torch._foreach_add_`` on 0-d CPU tensors dispatches per
    tensor: 0.9 ms for 198 counters, measured), else None."""
    if not step.is_cpu or torch.compiler.is_compiling():
        return None
    from . import cpu

    return cpu.ready()


def at(t: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """One step count as the vector these functions take (the readable path's scalars)."""
    device = torch.device(device)
    return torch.tensor([float(t)], dtype=scalar_dtype(device), device=device)


def decay(group: dict[str, Any]) -> tuple[float, Scalar]:
    """The group's weight decay as ``(l2, factor)``: L2's coefficient added to the gradient and
    the decoupled factor ``1 - lr wd`` applied to the weights (0 and 1 where unused)."""
    wd = group["weight_decay"]
    if wd != 0 and group.get("decoupled_weight_decay", False):
        return 0.0, 1 - group["lr"] * wd
    return wd, 1.0


def first_steps(t: torch.Tensor) -> torch.Tensor:
    """Which tensors take their first step (a momentum buffer's b_1 = g_1), as 0/1 values."""
    return (t == 1).to(t.dtype)


def adam(group: dict[str, Any], t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Adam's bias corrections ``1 - beta1^t`` and ``1 - beta2^t``."""
    b1, b2 = group["betas"]
    return 1 - b1**t, 1 - b2**t


def adagrad(group: dict[str, Any], t: torch.Tensor) -> torch.Tensor:
    """Adagrad's decayed learning rate (1): ``lr / (1 + (t - 1) lr_decay)``."""
    return group["lr"] / (1 + (t - 1) * group["lr_decay"])


def nadam(
    group: dict[str, Any],
    t: torch.Tensor,
    mu_product: list[torch.Tensor],
    found_inf: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """NAdam's momentum schedule (1): advance each ``mu_product`` (float32, as torch keeps it) in
    place (not where GradScaler's ``found_inf`` is set: that step changes nothing), and return
    the two step sizes of (3) per tensor."""
    b1, psi, lr = group["betas"][0], group["momentum_decay"], group["lr"]
    mu = b1 * (1.0 - 0.5 * 0.96 ** (t * psi))  # (1)
    mu_next = b1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))
    if found_inf is not None:
        mu = torch.where(found_inf.to(mu.device) != 0, 1.0, mu)
    module = _cpu_kernels(mu_product[0]) if mu_product[0].dtype == torch.float32 else None
    if module is not None:
        prod = module.scale_scalars(mu_product, mu)
    else:
        torch._foreach_mul_(mu_product, mu.to(mu_product[0].dtype).unbind())
        prod = torch.stack(mu_product).to(t.dtype)
    return -lr * (1.0 - mu) / (1.0 - prod), -lr * mu_next / (1.0 - prod * mu_next)


def radam(
    group: dict[str, Any], t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """RAdam's ``1 - beta1^t``, the rectification r_t of (2) (-1 where rho_t <= 5: an SGD step)
    and ``sqrt(1 - beta2^t)``."""
    b1, b2 = group["betas"]
    rho_inf = 2 / (1 - b2) - 1
    bc2 = 1 - b2**t
    rho = rho_inf - 2 * t * b2**t / bc2  # (1)
    # (rho - 4) (rho - 2) < 0 only where rho <= 5 is thrown away: clamp so no NaN is computed
    ratio = (rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho)
    rect = torch.where(rho > 5.0, ratio.clamp(min=0).sqrt(), -1.0)  # (2)
    return 1 - b1**t, rect, bc2.sqrt()


def adabound(
    group: dict[str, Any], t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """AdaBound's step size of (4) before clipping and the bounds (3)."""
    lr, (b1, b2) = group["lr"], group["betas"]
    final_lr = group["final_lr"] * lr / group["base_lr"]  # (2)
    lower = final_lr * (1 - 1 / (group["gamma"] * t + 1))  # (3)
    upper = final_lr * (1 + 1 / (group["gamma"] * t))
    return lr * (1 - b2**t).sqrt() / (1 - b1**t), lower, upper


def swats(group: dict[str, Any], t: torch.Tensor) -> torch.Tensor:
    """The coefficient of SWATS's Adam step (2): ``-lr sqrt(1 - beta2^t) / (1 - beta1^t)``."""
    b1, b2 = group["betas"]
    return -group["lr"] * (1 - b2**t).sqrt() / (1 - b1**t)
