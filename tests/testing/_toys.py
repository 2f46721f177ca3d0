"""A readable Adam, as an optimizer author would write one, and variants broken in one place each.

Each broken class is what a check of ``check_optimizer`` must catch; the tests name the check.
"""

from __future__ import annotations

from typing import Any

import torch


def adam_reference(param, grad, state, step, lr, betas, eps):
    """Kingma & Ba 2015, Algorithm 1, for one tensor."""
    b1, b2 = betas
    if not state:
        state["exp_avg"], state["exp_avg_sq"] = torch.zeros_like(param), torch.zeros_like(param)
    m, v = state["exp_avg"], state["exp_avg_sq"]
    m.mul_(b1).add_(grad, alpha=1 - b1)
    v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
    m_hat, v_hat = m / (1 - b1**step), v / (1 - b2**step)
    param.sub_(lr * m_hat / (v_hat.sqrt() + eps))


class ToyAdam(torch.optim.Optimizer):
    """Adam with its step counter as a tensor (so it compiles and runs on meta)."""

    def __init__(self, params: Any, lr: Any = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    self._init(p, state)
                self._update(p, p.grad, state, group)

    def _init(self, p: torch.Tensor, state: dict[str, Any]) -> None:
        # in the parameter's dtype: a float32 counter's bias corrections are off by 4e-9
        state["step"] = torch.zeros((), dtype=p.dtype, device=p.device)
        state["exp_avg"], state["exp_avg_sq"] = torch.zeros_like(p), torch.zeros_like(p)

    def _update(self, p, g, state, group) -> None:
        (b1, b2), eps = group["betas"], group["eps"]
        state["step"] += 1
        t = state["step"]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m.lerp_(g, 1 - b1)
        v.mul_(b2).addcmul_(g, g, value=1 - b2)
        denom = (v / (1 - b2**t)).sqrt() + self._eps(eps)
        p.sub_(group["lr"] * (m / self._correction(b1, t)) / denom)

    def _correction(self, beta: float, t: torch.Tensor) -> Any:
        return 1 - beta**t

    def _eps(self, eps: float) -> float:
        return eps


class FastPathDiffers(ToyAdam):
    """descentlab's ``impl=``: ``"foreach"`` adds eps under the square root (a kernel's typo)."""

    def __init__(self, params: Any, impl: str = "forloop", **hparams: Any) -> None:
        if impl not in ("forloop", "foreach"):
            raise ValueError(f"impl must be 'forloop' or 'foreach', not {impl!r}")
        self.impl = impl
        super().__init__(params, **hparams)

    def __getstate__(self) -> dict[str, Any]:
        return {**super().__getstate__(), "impl": self.impl}

    def _eps(self, eps: float) -> float:
        return eps if self.impl == "forloop" else eps**0.5 * 1e-2


class NoBiasCorrection(ToyAdam):
    """Forgets the first moment's bias correction."""

    def _correction(self, beta: float, t: torch.Tensor) -> Any:
        return 1.0


class GradInPlace(ToyAdam):
    """Adds an L2 decay to ``p.grad`` in place (breaks clipping, logging and GradScaler)."""

    def _update(self, p, g, state, group) -> None:
        super()._update(p, g.add_(p, alpha=1e-2), state, group)


class DropsAKey(ToyAdam):
    """Its ``state_dict`` leaves out the second moment."""

    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()  # its entries are the live state's dicts: copy them
        sd["state"] = {
            i: {k: v for k, v in entry.items() if k != "exp_avg_sq"}
            for i, entry in sd["state"].items()
        }
        return sd


class ReadsTheStep(ToyAdam):
    """Reads its step counter on the host (a sync per tensor and step on a GPU)."""

    def _update(self, p, g, state, group) -> None:
        if int(state["step"].item()) >= 0:
            super()._update(p, g, state, group)


class FloatStep(ToyAdam):
    """Keeps its step counter as a Python float: a compiled step recompiles every step."""

    def _init(self, p: torch.Tensor, state: dict[str, Any]) -> None:
        super()._init(p, state)
        state["step"] = 0.0


class CapturesLR(ToyAdam):
    """Reads the lr its group was built with, not the current one (a scheduler cannot drive it)."""

    def __init__(self, params: Any, **hparams: Any) -> None:
        super().__init__(params, **hparams)
        for group in self.param_groups:
            group["built_lr"] = group["lr"]

    def _update(self, p, g, state, group) -> None:
        super()._update(p, g, state, {**group, "lr": group["built_lr"]})


class StepsWithoutGrad(ToyAdam):
    """Treats a missing gradient as zero: the moments decay and the parameter moves."""

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                if not state:
                    self._init(p, state)
                g = p.grad if p.grad is not None else torch.zeros_like(p)
                self._update(p, g, state, group)


class Float32State(ToyAdam):
    """Creates its moments in float32 whatever the parameter's dtype."""

    def _init(self, p: torch.Tensor, state: dict[str, Any]) -> None:
        super()._init(p, state)
        state["exp_avg_sq"] = torch.zeros(p.shape, dtype=torch.float32)

    def _update(self, p, g, state, group) -> None:
        super()._update(p, g, state, group)
        state["exp_avg_sq"] = state["exp_avg_sq"].float()


class LosesACounter(ToyAdam):
    """Counts its steps in an attribute that torch's ``__getstate__`` does not keep."""

    def __init__(self, params: Any, **hparams: Any) -> None:
        super().__init__(params, **hparams)
        self.calls = 0

    def step(self, closure: Any = None) -> None:
        self.calls += 1
        super().step(closure)
