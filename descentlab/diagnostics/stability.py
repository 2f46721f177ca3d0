r"""The edge of stability: sharpness against the optimizer's stability threshold, over training.

For a quadratic with Hessian H, gradient descent with learning rate eta diverges along the top
eigenvector once lambda_max(H) > 2/eta. Cohen et al. 2021 found that full-batch GD on neural
networks raises the sharpness lambda_max(H) until it reaches 2/eta and then hovers there
("progressive sharpening", then the "edge of stability"). Cohen et al. 2022 found the same for
adaptive methods with the preconditioned sharpness lambda_max(P^-1 H), where P is the
preconditioner of the update ``theta -= eta P^-1 m``, against the threshold of the momentum rule.

.. math::
    \lambda_{\max}(H) < \frac{2 + 2\mu}{(1 - d)\,\eta}
        \text{ (GD, SGD with momentum } \mu \text{, dampening } d)                        \tag{1}
    \lambda_{\max}(H) < \frac{2 + 2\mu}{(1 + 2\mu)\,\eta} \text{ (Nesterov, } d = 0)     \tag{2}
    P_t = (1 - \beta_1^t)\,\big(\mathrm{diag}\sqrt{v_t / (1 - \beta_2^t)} + \epsilon\big),
    \quad \lambda_{\max}(P_t^{-1} H) < \frac{2 + 2\beta_1}{(1 - \beta_1)\,\eta}
        \text{ (Adam)}                                                                    \tag{3}

(1) with mu = 0 is GD's 2/eta; (1) with d = mu is an exponential moving average of the
gradients, Adam's momentum, whence (3)'s threshold (38/eta at beta1 = 0.9). (3)'s P folds Adam's
bias correction of m into the preconditioner, as Cohen et al. 2022 (their Table 1) do; the factor
1 - beta1^t is 1 to within 0.5 % after 50 steps at beta1 = 0.9. P^-1 H is not symmetric; its
eigenvalues are those of the symmetric P^-1/2 H P^-1/2, on which the power iteration runs.

References:
    Cohen, Kaur, Li, Kolter & Talwalkar 2021, "Gradient Descent on Neural Networks Typically
    Occurs at the Edge of Stability" (ICLR); Cohen, Ghorbani, Krishnan, Agarwal, Medapati,
    Badura, Suo, Cardoze, Nado, Dahl & Gilmer 2022, "Adaptive Gradient Methods at the Edge of
    Stability" (arXiv:2207.14484).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from ..optim import SGD, Adam
from ._effective_lr import inner
from ._loss import Batches, LossFn, evaluation, full_loss, trainable
from .sharpness import hessian_vector_product, power_iteration, random_vector

__all__ = [
    "StabilityRecord",
    "StabilityTracker",
    "adam_preconditioner",
    "ema_threshold",
    "preconditioned_sharpness",
    "stability_threshold",
    "track_stability",
]

_ADAMS = (Adam, torch.optim.Adam, torch.optim.AdamW)  # descentlab's AdamW subclasses Adam
_SGDS = (SGD, torch.optim.SGD)


def ema_threshold(lr: float, beta1: float) -> float:
    """(3)'s threshold ``(2 + 2 beta1) / ((1 - beta1) lr)``: 2/lr at beta1 = 0, 38/lr at 0.9."""
    return (2 + 2 * beta1) / ((1 - beta1) * lr)


def stability_threshold(optimizer: torch.optim.Optimizer) -> float:
    """The sharpness above which ``optimizer``'s update diverges on a quadratic: (1)-(3).

    GD and SGD with momentum read ``lr``, ``momentum``, ``dampening``, ``nesterov`` of the first
    param group ((1), (2)); Adam and AdamW give (3)'s threshold, which bounds the
    *preconditioned* sharpness. Other optimizers raise ``TypeError``.
    """
    base = inner(optimizer)
    group = base.param_groups[0]
    lr = float(group["lr"])
    if isinstance(base, _ADAMS):
        return ema_threshold(lr, float(group["betas"][0]))
    if isinstance(base, _SGDS):
        mu, d = float(group.get("momentum", 0.0)), float(group.get("dampening", 0.0))
        if group.get("nesterov", False):
            return (2 + 2 * mu) / ((1 + 2 * mu) * lr)  # (2)
        return (2 + 2 * mu) / ((1 - d) * lr)  # (1)
    raise TypeError(f"no stability threshold known for {type(base).__name__}; SGD or Adam only")


def adam_preconditioner(
    optimizer: torch.optim.Optimizer, params: list[torch.Tensor]
) -> list[torch.Tensor]:
    """(3)'s diagonal ``P_t`` per parameter, from an Adam/AdamW state after at least one step.

    Reads ``exp_avg_sq`` (``max_exp_avg_sq`` with AMSGrad), ``step``, ``betas`` and ``eps`` of
    descentlab's or torch's Adam and AdamW (wrappers such as Lookahead are unwrapped).
    """
    base = inner(optimizer)
    if not isinstance(base, _ADAMS):
        raise TypeError(f"the preconditioner is read from Adam or AdamW, not {type(base).__name__}")
    group_of = {id(p): g for g in base.param_groups for p in g["params"]}
    out = []
    for p in params:
        state, group = base.state.get(p, {}), group_of.get(id(p))
        if group is None or "step" not in state:
            raise ValueError("every parameter needs an optimizer state: take a step first")
        b1, b2 = group["betas"]
        t = int(state["step"])
        v = state["max_exp_avg_sq"] if group.get("amsgrad") else state["exp_avg_sq"]
        out.append((1 - b1**t) * (v.detach() / (1 - b2**t)).sqrt().add(group["eps"]))  # (3)
    return out


def preconditioned_sharpness(
    model: nn.Module,
    loss_fn: LossFn,
    loader: Batches,
    preconditioner: list[torch.Tensor],
    *,
    iters: int = 50,
    tol: float = 1e-4,
    seed: int = 0,
    init: list[torch.Tensor] | None = None,
) -> tuple[float, int, list[torch.Tensor]]:
    """``lambda_max(P^-1 H)`` for a diagonal ``P`` (one tensor per trainable parameter).

    Power iteration on ``P^-1/2 H P^-1/2`` (same eigenvalues, symmetric). ``P = 1`` gives the
    plain top Hessian eigenvalue. ``init`` warm-starts from a previous eigenvector.

    Returns:
        ``(eigenvalue of largest magnitude, iterations used, eigenvector of P^-1/2 H P^-1/2)``.
    """
    params = trainable(model)
    scale = [q.rsqrt() for q in preconditioner]

    def matvec(u: list[torch.Tensor]) -> list[torch.Tensor]:
        hu = hessian_vector_product(model, loss_fn, loader, [s * x for s, x in zip(scale, u)])
        return [s * h for s, h in zip(scale, hu)]

    v = random_vector(params, seed) if init is None else [x.clone() for x in init]
    return power_iteration(matvec, v, iters=iters, tol=tol)


@dataclass(frozen=True)
class StabilityRecord:
    """One measurement after an optimizer step.

    ``sharpness`` is lambda_max(H) (largest magnitude); for Adam, ``preconditioned`` is
    lambda_max(P^-1 H) (NaN otherwise); ``threshold`` is :func:`stability_threshold` (the
    bound on ``sharpness`` for SGD, on ``preconditioned`` for Adam).
    """

    step: int
    loss: float
    lr: float
    sharpness: float
    preconditioned: float
    threshold: float
    iterations: int

    def as_dict(self) -> dict[str, Any]:
        """A flat dict (for a results table)."""
        return asdict(self)


class StabilityTracker:
    """Measures the sharpness every ``every`` optimizer steps (attach with :func:`track_stability`).

    Each measurement warm-starts the power iteration from the previous eigenvector, so a slowly
    moving top eigenvector costs a few Hessian-vector products (full-data passes) per measurement.

    Attributes:
        records: the :class:`StabilityRecord` list, in step order.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        model: nn.Module,
        loss_fn: LossFn,
        loader: Batches,
        *,
        every: int = 1,
        iters: int = 20,
        tol: float = 1e-3,
        seed: int = 0,
    ) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        stability_threshold(optimizer)  # an optimizer without a known threshold fails here
        self.optimizer, self.model, self.loss_fn, self.loader = optimizer, model, loss_fn, loader
        self.every, self.iters, self.tol, self.seed = every, iters, tol, seed
        self.adaptive = isinstance(inner(optimizer), _ADAMS)
        self.records: list[StabilityRecord] = []
        self._steps = 0
        self._vectors: dict[str, list[torch.Tensor]] = {}
        self._handle: Any = None

    def attach(self) -> StabilityTracker:
        """Register the step post-hook (idempotent)."""
        if self._handle is None:
            self._handle = self.optimizer.register_step_post_hook(self._post)
        return self

    def detach(self) -> None:
        """Remove the hook; the records stay."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def __enter__(self) -> StabilityTracker:
        return self.attach()

    def __exit__(self, *exc: object) -> None:
        self.detach()

    def _eig(self, key: str, preconditioner: list[torch.Tensor]) -> tuple[float, int]:
        eig, it, v = preconditioned_sharpness(
            self.model,
            self.loss_fn,
            self.loader,
            preconditioner,
            iters=self.iters,
            tol=self.tol,
            seed=self.seed,
            init=self._vectors.get(key),
        )
        self._vectors[key] = v
        return eig, it

    def measure(self) -> StabilityRecord:
        """Measure now (the hook calls this every ``every`` steps) and append the record."""
        with evaluation(self.model):
            params = trainable(self.model)
            with torch.no_grad():
                loss = float(full_loss(self.model, self.loss_fn, self.loader))
            sharp, it = self._eig("hessian", [torch.ones_like(p) for p in params])
            pre = float("nan")
            if self.adaptive:
                pre, it2 = self._eig("adam", adam_preconditioner(self.optimizer, params))
                it += it2
        lr = float(inner(self.optimizer).param_groups[0]["lr"])
        record = StabilityRecord(
            self._steps, loss, lr, sharp, pre, stability_threshold(self.optimizer), it
        )
        self.records.append(record)
        return record

    def _post(self, optimizer, args, kwargs) -> None:
        self._steps += 1
        if self._steps % self.every == 0:
            self.measure()

    def rows(self) -> list[dict[str, Any]]:
        """The records as dicts."""
        return [r.as_dict() for r in self.records]

    def series(self, field: str) -> tuple[list[int], list[float]]:
        """``(steps, values)`` of one :class:`StabilityRecord` field."""
        return [r.step for r in self.records], [getattr(r, field) for r in self.records]


def track_stability(
    optimizer: torch.optim.Optimizer,
    model: nn.Module,
    loss_fn: LossFn,
    loader: Batches,
    *,
    every: int = 1,
    iters: int = 20,
    tol: float = 1e-3,
    seed: int = 0,
) -> StabilityTracker:
    """Start measuring the edge of stability after ``optimizer``'s steps; returns the tracker.

    Args:
        optimizer: SGD (with or without momentum) or Adam/AdamW, descentlab's or torch's.
        model, loss_fn, loader: the model and the data whose full loss's Hessian is measured
            (a fixed, re-iterable list of batches: the full batch for full-batch training).
        every: measure after every ``every``-th step.
        iters, tol, seed: the power iteration (warm-started after the first measurement).

    Example::

        with track_stability(opt, model, loss_fn, [(x, y)], every=10) as tracker:
            for _ in range(1000):
                opt.zero_grad(); loss_fn(model(x), y).backward(); opt.step()
        steps, sharp = tracker.series("sharpness")  # compare with tracker.records[-1].threshold
    """
    return StabilityTracker(
        optimizer, model, loss_fn, loader, every=every, iters=iters, tol=tol, seed=seed
    ).attach()
