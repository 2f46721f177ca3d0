"""Schedule-Free AdamW and SGD: no learning-rate schedule, an average of the iterates instead.

Reference: Defazio, Yang, Mehta, Mishchenko, Khaled & Cutkosky 2024, "The Road Less Scheduled"
(NeurIPS 2024; AlgoPerf 2024's self-tuning track), and the authors' ``schedulefree`` package
(``AdamWScheduleFree``, ``SGDScheduleFree``), which the tests follow step by step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from . import _checks as c
from .elementwise import Elementwise, lerp, sqrt

__all__ = ["ScheduleFreeAdamW", "ScheduleFreeSGD", "evaluating", "has_modes"]

_MODES = "optimizer.train() before training steps and optimizer.eval() before evaluating"


class _ScheduleFree(Elementwise):
    """The train/eval modes and the weights of the average, shared by both algorithms.

    The parameters hold :math:`y` (where gradients are taken) in train mode and :math:`x` (the
    average, what to evaluate and deploy) in eval mode; ``z`` is in the state.
    """

    group_entries = {"train_mode": True}
    scalar_state = {"lr_max": -1.0, "weight_sum": 0.0}
    scalar_dtype = torch.float64  # Python floats in the authors' code: ckp1 to 1e-16
    derived = {"decay": lambda h: h.weight_decay != 0}

    @staticmethod
    def _weights(h: Any, t: torch.Tensor, s: Any) -> dict[str, Any]:
        """Warm-up, the largest rate so far, the weight of this step in the average (5) and
        ``c_{t+1}`` (4), per tensor (``t`` = the authors' ``k + 1``)."""
        sched = torch.clamp(t / h.warmup_steps, max=1.0) if h.warmup_steps else 1.0
        lr = h.lr * sched
        lr_max = torch.maximum(s.lr_max, lr + torch.zeros_like(s.lr_max))
        weight = t**h.r * lr_max**h.weight_lr_power  # (5)
        weight_sum = s.weight_sum + weight
        ckp1 = torch.where(weight_sum != 0, weight / weight_sum, 0.0)  # (4)
        return {"lr_max": lr_max, "weight_sum": weight_sum, "lr_t": lr, "ckp1": ckp1}

    def _init_state(self, group, p, state):
        super()._init_state(group, p, state)
        state["z"].copy_(p)  # z_1 = x_1 = y_1

    def step(self, closure=None):
        """One step (in train mode only; see the class's docstring)."""
        if not all(g["train_mode"] for g in self.param_groups):
            raise RuntimeError(f"{type(self).__name__}.step() in eval mode: call {_MODES}")
        return super().step(closure)

    @torch.no_grad()
    def train(self) -> None:
        """Put :math:`y` in the parameters (before training steps)."""
        self._swap(True)

    @torch.no_grad()
    def eval(self) -> None:
        """Put :math:`x`, the average, in the parameters (before evaluating or saving)."""
        self._swap(False)

    def _swap(self, train: bool) -> None:
        for group in self.param_groups:
            if group["train_mode"] == train:
                continue
            beta = self._momentum(group)
            weight = 1 - beta if train else 1 - 1 / beta  # y = (1-b) z + b x, and back
            for p in group["params"]:
                z = self.state[p].get("z") if p in self.state else None
                if z is not None:
                    p.lerp_(z.to(p.device), weight)
            group["train_mode"] = train

    @staticmethod
    def _momentum(group: dict[str, Any]) -> float:
        raise NotImplementedError


_COMMON = {"weight_decay": 0.0, "warmup_steps": 0, "r": 0.0, "weight_lr_power": 2.0}
_CHECKS = {
    "lr": c.nonnegative,
    "weight_decay": c.nonnegative,
    "warmup_steps": c.nonnegative,
    "r": c.nonnegative,
    "weight_lr_power": c.nonnegative,
}


class ScheduleFreeAdamW(_ScheduleFree):
    r"""Schedule-Free AdamW (Defazio et al. 2024, Algorithm 1; the authors' ``AdamWScheduleFree``).

    .. math::
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,\quad
        u_t = g_t / (\sqrt{v_t / (1-\beta_2^t)} + \epsilon) + \lambda y_t        \tag{1}
        x_{t} = (1 - c_{t}) x_{t-1} + c_{t} z_{t-1}                           \tag{2}
        y_{t+1} = (1-\beta_1) z_t + \beta_1 x_t,\quad z_t = z_{t-1} - \gamma_t u_t  \tag{3}
        c_{t} = w_t / \textstyle\sum_{i \le t} w_i,\quad
        w_t = t^r \max_{i\le t}\gamma_i^{p}                                     \tag{4, 5}

    with :math:`\gamma_t` the learning rate times a linear warm-up over ``warmup_steps``.
    Computed as the authors' code does, on :math:`y` without :math:`x`:
    :math:`y \leftarrow \mathrm{lerp}(y, z, c) + \gamma(\beta_1(1-c) - 1) u`,
    :math:`z \leftarrow z - \gamma u`. The decay :math:`\lambda y_t` is taken at :math:`y`,
    after the normalization (the authors'). No learning-rate schedule: ``lr`` is constant.

    Modes: ``opt.eval()`` puts :math:`x` in the parameters and ``opt.train()`` puts
    :math:`y` back; a step in eval mode raises. Unlike the authors' optimizer, a new one is in
    train mode (so a plain training loop works as with torch.optim); evaluate and save
    checkpoints in eval mode. The averaging state (``lr_max``, ``weight_sum``) is per tensor,
    as the step counters (the authors keep one per group): a tensor without a gradient skips
    the step, its average too.
    """

    hyperparameters = {"lr": 0.0025, "betas": (0.9, 0.999), "eps": 1e-8, **_COMMON}
    checks = {**_CHECKS, "betas": c.betas, "eps": c.nonnegative}
    state_tensors = ("z", "exp_avg_sq")

    @staticmethod
    def scalars(h: Any, t: torch.Tensor, s: Any) -> dict[str, Any]:
        """The weights of the average and ``1 - beta2^t``, per tensor."""
        out = _ScheduleFree._weights(h, t, s)
        out["y_step"] = out["lr_t"] * (h.betas[0] * (1 - out["ckp1"]) - 1)
        return {**out, "bc2": 1 - h.betas[1] ** t}

    def update(x, h):
        x.exp_avg_sq = x.exp_avg_sq * h.betas[1] + (1 - h.betas[1]) * x.grad * x.grad
        u = x.grad / (sqrt(x.exp_avg_sq / h.bc2) + h.eps)  # (1)
        if h.decay:
            u = u + h.weight_decay * x.param  # (1), at y
        y = lerp(x.param, x.z, h.ckp1)  # (2)
        x.param = y + h.y_step * u  # (3)
        x.z = x.z - h.lr_t * u  # (3)

    @staticmethod
    def _momentum(group: dict[str, Any]) -> float:
        return group["betas"][0]


class ScheduleFreeSGD(_ScheduleFree):
    r"""Schedule-Free SGD (Defazio et al. 2024; the authors' ``SGDScheduleFree``): the updates of
    :class:`ScheduleFreeAdamW` with :math:`u_t = g_t + \lambda y_t` and ``momentum`` for
    :math:`\beta_1`, which must be in (0, 1)."""

    hyperparameters = {"lr": 1.0, "momentum": 0.9, **_COMMON}
    checks = {**_CHECKS, "momentum": c.number(c.Interval(0.0, 1.0, False, False))}
    state_tensors = ("z",)

    @staticmethod
    def scalars(h: Any, t: torch.Tensor, s: Any) -> dict[str, Any]:
        """The weights of the average, per tensor."""
        out = _ScheduleFree._weights(h, t, s)
        out["y_step"] = out["lr_t"] * (h.momentum * (1 - out["ckp1"]) - 1)
        return out

    def update(x, h):
        u = x.grad + h.weight_decay * x.param if h.decay else x.grad  # at y
        y = lerp(x.param, x.z, h.ckp1)  # (2)
        x.param = y + h.y_step * u  # (3)
        x.z = x.z - h.lr_t * u  # (3)

    @staticmethod
    def _momentum(group: dict[str, Any]) -> float:
        return group["momentum"]


def has_modes(optimizer: Any) -> bool:
    """Whether ``optimizer`` keeps the weights to evaluate apart from those it takes gradients
    at, with ``train()`` and ``eval()`` (Schedule-Free's; torch.optim's have neither)."""
    return callable(getattr(optimizer, "train", None)) and callable(
        getattr(optimizer, "eval", None)
    )


@contextlib.contextmanager
def evaluating(*optimizers: Any) -> Iterator[None]:
    """Within the block the parameters hold what to evaluate (``opt.eval()`` of each optimizer
    that has modes), after it what to train at (``opt.train()``)."""
    swapped = [o for o in optimizers if has_modes(o)]
    for o in swapped:
        o.eval()
    try:
        yield
    finally:
        for o in swapped:
            o.train()
