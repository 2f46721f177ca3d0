"""Lookahead: k steps forward, 1 step back.

Reference: Zhang, Lucas, Hinton & Ba 2019, "Lookahead Optimizer: k steps forward, 1 step back",
Algorithm 1.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import torch

from ..checks import Interval, check_int
from . import _checks as c
from ._wrapper import Wrapper, inner_step
from .base import is_dtensor, kernel_tensor, outside_graph
from .kernels import cpu, foreach, triton_unavailable_reason

__all__ = ["Lookahead"]


class Lookahead(Wrapper):
    r"""Lookahead around any torch optimizer (the "fast" one).

    .. math::
        \phi_0 = \theta_0;\quad \theta \leftarrow \text{inner step}\ (k \text{ times}) \tag{1}
        \phi_{j} = \phi_{j-1} + \alpha(\theta - \phi_{j-1}),\quad \theta \leftarrow \phi_j \tag{2}

    The slow weights :math:`\phi` are created at construction (equal to the initial parameters,
    so the first synchronisation after step :math:`k` already pulls back), kept in this optimizer's
    index-keyed state (they resume into a freshly built model), and synchronised after inner steps
    :math:`k, 2k, \dots`. The inner optimizer's state carries over across synchronisations, as in
    the paper. The wrapper shares the inner optimizer's ``param_groups``, so LR schedulers work.
    A synchronisation reads and writes each value once (the compiled CPU kernel once it is
    built, the Triton kernel on CUDA, for tensors of one device and dtype), else it is a foreach
    lerp and a foreach copy. Under ``torch.compile`` the counting and the synchronisation run
    outside the graph (one graph break).

    Sharding: the synchronisation is elementwise, so it runs on each rank's shard as is (FSDP2:
    the slow weights are DTensors sharded like the parameters). With
    ``ZeroRedundancyOptimizer``, wrap it (``Lookahead(ZeroRedundancyOptimizer(...))``): every
    rank then holds the slow weights of all parameters and synchronises after ZeRO's broadcast.

    Args:
        base_optimizer: the inner optimizer.
        k: inner steps between synchronisations (>= 1).
        alpha: slow-weight step size, in (0, 1].
    """

    key = "lookahead"

    def __init__(
        self, base_optimizer: torch.optim.Optimizer, k: int = 5, alpha: float = 0.5
    ) -> None:
        check_int("k", k, Interval(1.0))
        c.number(Interval(0.0, 1.0, lo_open=True))("alpha", alpha)
        super().__init__(base_optimizer)
        self.k, self.alpha, self.inner_steps = k, float(alpha), 0
        for p in self._params():
            self._init_param(p)

    def _extra_repr(self) -> str:
        return f"k={self.k}, alpha={self.alpha}"

    def _init_param(self, p: torch.Tensor) -> None:
        self.state[p]["slow"] = p.detach().clone()  # (1): phi_0 = theta_0

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One inner step; every k-th also moves the slow weights and resets the fast ones."""
        if torch.compiler.is_compiling():
            self._init_group()
        skipped = self.skipped_steps
        loss = inner_step(self.base_optimizer, closure)
        after = (
            outside_graph(Lookahead._count) if torch.compiler.is_compiling() else Lookahead._count
        )
        after(self, skipped)
        return loss

    def _init_group(self) -> None:
        """What dynamo runs eagerly while it traces ``step``: the counting outside the graph
        (one graph break; torch.optim's step has two)."""
        outside_graph(Lookahead._count)

    def _count(self, skipped: int) -> None:
        """Count the inner step, and synchronise after every k-th."""
        if self.skipped_steps != skipped:
            return  # the inner step was skipped (nonfinite="skip"): not a step here either
        self.inner_steps += 1
        if self.inner_steps % self.k == 0:
            fast = self._params()
            self._synchronise(fast, [self.state[p]["slow"] for p in fast])

    def _synchronise(self, fast: list[torch.Tensor], slow: list[torch.Tensor]) -> None:
        """(2): one pass with a compiled kernel (tensors of one device and dtype: descentlab's
        CPU kernel when built, its Triton kernel on CUDA), else a foreach lerp and copy."""
        kernels = _one_kernel_call([*fast, *slow])
        if kernels is not None:
            kernels.lookahead_sync(slow=slow, fast=fast, alpha=self.alpha)
        elif any(is_dtensor(p) for p in fast):  # DTensor has no rule for _foreach_copy_
            torch._foreach_lerp_(slow, fast, self.alpha)
            for p, s in zip(fast, slow):
                p.copy_(s)
        else:
            foreach.lookahead_sync(slow, fast, alpha=self.alpha)

    def _extra_state(self) -> dict[str, Any]:
        return {"k": self.k, "alpha": self.alpha, "inner_steps": self.inner_steps}

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        self.k, self.alpha = extra["k"], extra["alpha"]
        self.inner_steps = extra["inner_steps"]


def _one_kernel_call(tensors: list[torch.Tensor]) -> ModuleType | None:
    """The compiled kernels that can take all of ``tensors`` in one call, if any."""
    if not tensors:
        return None
    first = tensors[0]
    if not all(
        kernel_tensor(t) and t.dtype is first.dtype and t.device == first.device for t in tensors
    ):
        return None
    if first.device.type == "cpu" and cpu.ready() is not None:
        from .kernels import ops

        return ops
    if first.device.type == "cuda" and triton_unavailable_reason() is None:
        from .kernels import triton

        return triton
    return None
