"""SWATS: start with Adam, switch to SGD with momentum once its projected rate settles.

Reference: Keskar & Socher 2017, "Improving Generalization Performance by Switching from Adam to
SGD", Algorithm 1.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from . import _checks as c
from ._plan import Plan
from .base import (
    Optimizer,
    hyperparameters,
    is_dtensor,
    outside_graph,
    split_options,
    weight_decay,
    zeros,
)
from .kernels import _scalars

__all__ = ["SWATS", "adam_coefficient"]


class SWATS(Optimizer):
    r"""SWATS (Keskar & Socher 2017, Algorithm 1), switching per parameter tensor.

    Adam phase, at step :math:`k`:

    .. math::
        m_k = \beta_1 m_{k-1} + (1-\beta_1) g_k,\quad a_k = \beta_2 a_{k-1} + (1-\beta_2) g_k^2 \tag{1}
        p_k = -\eta \tfrac{\sqrt{1-\beta_2^k}}{1-\beta_1^k} \tfrac{m_k}{\sqrt{a_k} + \epsilon},\quad
        \theta_k = \theta_{k-1} + p_k                                                          \tag{2}
        \text{if } p_k^\top g_k \ne 0:\ \gamma_k = \tfrac{p_k^\top p_k}{-p_k^\top g_k},\quad
        \lambda_k = \beta_2 \lambda_{k-1} + (1-\beta_2)\gamma_k                                 \tag{3}
        \text{switch if } k > 1 \text{ and } |\lambda_k/(1-\beta_2^k) - \gamma_k| < \text{switch\_tol};
        \ \Lambda = \lambda_k/(1-\beta_2^k)                                                    \tag{4}

    SGD phase: :math:`v_k = \beta_1 v_{k-1} + g_k,\ \theta_k = \theta_{k-1} - (1-\beta_1)\Lambda
    \tfrac{\eta_k}{\eta_s} v_k`, where :math:`\eta_s` is the learning rate at the switch, so a
    schedule scales the SGD rate by the same factor it scales Adam's (with a constant rate this is
    Algorithm 1 exactly; :math:`\Lambda` is never written into ``group["lr"]``).

    Conventions (decided here; implementations differ): the switch test runs per parameter tensor,
    as in the paper's per-layer experiments; ``switch_tol`` is absolute and defaults to the
    paper's :math:`\epsilon = 10^{-9}` (raise it to switch sooner); the momentum buffer starts at
    zero at the switch and is never rescaled. The state exposes ``switch_step`` (0 during the
    Adam phase, else the step :math:`k` of the switch), ``sgd_lr`` (:math:`\Lambda`) and
    ``switch_lr`` (:math:`\eta_s`), as 0-d float64 tensors on the parameter's device (the compiled
    kernels test and switch there: no host read on a GPU, no recompile under ``torch.compile``)
    and as numbers in the state dict. ``weight_decay`` is L2.

    Sharding: the dot products of (3) are over the whole tensor. Under FSDP2 (DTensor
    parameters, sharded along dim 0) each rank sums its shard's products and the partial sums are
    all-reduced (``DTensor.full_tensor`` of a scalar: one all-reduce of one number per tensor and
    step during the Adam phase), so every rank takes the same switch decision as an unsharded run.
    Under ``ZeroRedundancyOptimizer`` a tensor lives whole on one rank and nothing is reduced.
    """

    _checks = {
        "lr": c.nonnegative,
        "betas": c.betas,
        "eps": c.nonnegative,
        "weight_decay": c.nonnegative,
        "switch_tol": c.nonnegative,
        "maximize": c.flag,
    }

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float | torch.Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-9,
        weight_decay: float = 0.0,
        switch_tol: float = 1e-9,
        *,
        maximize: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(params, hyperparameters(locals()), **split_options(options))

    _compiled = True

    def _init_state(self, group, p, state):
        zeros(state, p, "exp_avg", "exp_avg_sq", "momentum_buffer")
        state.update(switch_step=0, lam=0.0, sgd_lr=0.0, switch_lr=0.0)  # see _planned

    def _reference(self, group, p, g, state, t):
        lr, (b1, b2) = group["lr"], group["betas"]
        g = weight_decay(group, p, g)
        if state["switch_step"]:  # SGD phase
            buf = state["momentum_buffer"].mul_(b1).add_(g)
            p.add_(buf, alpha=-(1 - b1) * float(state["sgd_lr"]) * lr / float(state["switch_lr"]))
            return
        m = state["exp_avg"].lerp_(g, 1 - b1)  # (1)
        a = state["exp_avg_sq"].mul_(b2).addcmul_(g, g, value=1 - b2)
        step = a.sqrt().add_(group["eps"])
        torch.div(m, step, out=step).mul_(adam_coefficient(group, _scalars.at(t)).item())  # (2)
        p.add_(step)
        self._projection(group, state, t, step, g)

    @classmethod
    def _projection(
        cls, group: dict, state: dict, t: int, p_k: torch.Tensor, g: torch.Tensor
    ) -> None:
        """Equations (3)-(4) on the tensors of the readable path."""
        cls._switch(group, state, t, _dot(p_k, g), _dot(p_k, p_k))

    @staticmethod
    def _switch(group: dict, state: dict, t: int, pg: float, pp: float) -> None:
        """Equations (3)-(4) from p_k.g_k and p_k.p_k: update the rate estimate, switch if settled."""
        if pg == 0:
            return
        b2 = group["betas"][1]
        gamma = pp / -pg  # (3)
        lam = b2 * float(state["lam"]) + (1 - b2) * gamma
        _set(state, "lam", lam)
        estimate = lam / (1 - b2**t)
        if t > 1 and abs(estimate - gamma) < group["switch_tol"]:  # (4)
            # switch_lr is the lr's value (a tensor lr changed in place must not move it)
            for key, value in zip(_SWITCH_STATE, (t, lam, estimate, float(group["lr"]))):
                _set(state, key, value)
            state["momentum_buffer"].zero_()

    def _planned(self, plan: Plan) -> None:
        """The switch state where each path reads it, whoever wrote it (``load_state_dict``,
        ``ZeroRedundancyOptimizer``'s numbers): 0-d float64 tensors on the parameter's device for
        the compiled kernels (the switch test runs there), numbers for the foreach and readable
        paths (which test it on the host)."""
        for bucket in plan.buckets:
            on_device = hasattr(bucket.kernels, "swats")
            for p, state in zip(bucket.params, bucket.states):
                _switch_state_on(state, p.device if on_device else None)
        for _, state in plan.slow:
            _switch_state_on(state, None)

    def _state_dict(self) -> dict[str, Any]:
        """The switch state as numbers whatever the path (one host read per tensor on a GPU)."""
        sd = super()._state_dict()
        sd["state"] = {k: _switch_state_as_numbers(e) for k, e in sd["state"].items()}
        return sd

    def _check_param_state(self, entry: Any, index: Any, p: torch.Tensor, group: dict) -> None:
        """As every optimizer's, the switch state saved as numbers or as 0-d tensors."""
        if isinstance(entry, dict):
            entry = {
                k: float(v) if k in _SWITCH_STATE and torch.is_tensor(v) and v.numel() == 1 else v
                for k, v in entry.items()
            }
        super()._check_param_state(entry, index, p, group)

    def _fused(self, group, params, grads, states, kernels, **amp):
        t = _scalars.advance(states)
        b1, wd = group["betas"][0], group["weight_decay"]
        if hasattr(kernels, "swats"):  # both phases and the switch test on the device
            b2 = group["betas"][1]
            kernels.swats(
                params=params,
                grads=grads,
                exp_avg=[s["exp_avg"] for s in states],
                exp_avg_sq=[s["exp_avg_sq"] for s in states],
                momentum_buffer=[s["momentum_buffer"] for s in states],
                **{key: [s[key] for s in states] for key in _SWITCH_STATE},
                coef=adam_coefficient(group, t),
                bc2=1 - b2**t,
                steps=t,
                lr=group["lr"],
                beta1=b1,
                beta2=b2,
                eps=group["eps"],
                l2_weight_decay=wd,
                switch_tol=group["switch_tol"],
                maximize=group["maximize"],
                **amp,
            )
            return
        adam = [i for i, s in enumerate(states) if not s["switch_step"]]
        sgd = [i for i, s in enumerate(states) if s["switch_step"]]
        if sgd:  # SGD phase: v = b1 v + g, p -= (1 - b1) Lambda (lr / lr_s) v
            rates = [
                (1 - b1) * float(states[i]["sgd_lr"]) / float(states[i]["switch_lr"]) for i in sgd
            ]
            kernels.momentum_sgd(
                params=[params[i] for i in sgd],
                grads=[grads[i] for i in sgd],
                momentum_buffer=[states[i]["momentum_buffer"] for i in sgd],
                lr=torch.tensor(rates, dtype=t.dtype).to(t.device) * group["lr"],
                first=t.new_zeros(len(sgd)),
                momentum=b1,
                dampening=0.0,
                nesterov=False,
                l2_weight_decay=wd,
                decay=1.0,
                maximize=group["maximize"],
                **amp,
            )
        if not adam:
            return
        steps = t[adam] if sgd else t
        dots = kernels.swats_adam(
            params=[params[i] for i in adam],
            grads=[grads[i] for i in adam],
            exp_avg=[states[i]["exp_avg"] for i in adam],
            exp_avg_sq=[states[i]["exp_avg_sq"] for i in adam],
            coef=adam_coefficient(group, steps),
            beta1=b1,
            beta2=group["betas"][1],
            eps=group["eps"],
            l2_weight_decay=wd,
            maximize=group["maximize"],
            **amp,
        )
        switches = (
            outside_graph(SWATS._switches) if torch.compiler.is_compiling() else SWATS._switches
        )
        switches(self, group, [states[i] for i in adam], steps, dots)

    def _switches(self, group: dict, states: list[dict], steps: torch.Tensor, dots: torch.Tensor):
        """(3)-(4) per tensor from the dot products the kernel reduced in float64: a host read
        of them (the one this path makes; outside the graph under torch.compile)."""
        for state, t, (pg, pp) in zip(states, steps.tolist(), dots.tolist()):
            self._switch(group, state, int(t), pg, pp)


SWATS._host_work = (SWATS._switches,)

_SWITCH_STATE = ("switch_step", "lam", "sgd_lr", "switch_lr")


def _switch_state_on(state: dict[str, Any], device: torch.device | None) -> None:
    """Keep ``state``'s switch state as 0-d float64 tensors on ``device``, or as numbers."""
    for key in _SWITCH_STATE:
        value = state[key]
        if device is None:
            if torch.is_tensor(value):
                state[key] = int(value) if key == "switch_step" else float(value)
        elif not (
            torch.is_tensor(value)
            and value.dtype is torch.float64
            and value.device == device
            and value.dim() == 0
        ):
            state[key] = torch.tensor(float(value), dtype=torch.float64, device=device)


def _set(state: dict[str, Any], key: str, value: float) -> None:
    """Write one switch-state value where it lives: into its tensor, or as a number."""
    if torch.is_tensor(state[key]):
        state[key].fill_(value)
    else:
        state[key] = int(value) if key == "switch_step" else value


def _switch_state_as_numbers(entry: Any) -> Any:
    """A saved state entry with its switch state as numbers (a copy where that changes it)."""
    if not isinstance(entry, dict) or not any(torch.is_tensor(entry.get(k)) for k in _SWITCH_STATE):
        return entry
    entry = dict(entry)
    _switch_state_on(entry, None)
    return entry


def _dot(a: torch.Tensor, b: torch.Tensor) -> float:
    """The dot product of two tensors of one shape, over all shards when they are DTensors."""
    if is_dtensor(a):
        # Shard(0) DTensors cannot be flattened (a view across unevenly sized shards); the sum of
        # the products is a Partial scalar that full_tensor() all-reduces.
        return (a * b).sum().full_tensor().item()
    return torch.dot(a.reshape(-1), b.reshape(-1)).item()


def adam_coefficient(group: dict[str, Any], t: torch.Tensor) -> torch.Tensor:
    """The coefficient of SWATS's Adam step (2): ``-lr sqrt(1 - beta2^t) / (1 - beta1^t)``."""
    b1, b2 = group["betas"]
    return -group["lr"] * (1 - b2**t).sqrt() / (1 - b1**t)
