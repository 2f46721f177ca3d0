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
from . import kernels as _kernels
from ._wrapper import Wrapper, capturable, inner_step, set_count
from .base import is_dtensor, kernel_tensor
from .kernels import foreach

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
    built, the Triton kernel on CUDA, per device and dtype), else it is a foreach lerp and a
    foreach copy. The count is a host number; under ``torch.compile``, and where the inner
    optimizer is ``capturable`` (CUDA graphs), it is a tensor on the parameters' device and the
    kernels read whether the step is a k-th one there: no graph break, no host sync, and the
    other steps cost one launch that reads the flag and touches nothing.

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
    _transient = ("_traced_buckets",)

    def __init__(
        self, base_optimizer: torch.optim.Optimizer, k: int = 5, alpha: float = 0.5
    ) -> None:
        check_int("k", k, Interval(1.0))
        c.number(Interval(0.0, 1.0, lo_open=True))("alpha", alpha)
        super().__init__(base_optimizer)
        self.k, self.alpha, self.inner_steps = k, float(alpha), 0
        for p in self._params():
            self._init_param(p)
        if capturable(base_optimizer):  # the count on the device (see _count)
            self.inner_steps = self._on_device(self.inner_steps, torch.int64)

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
        if self.skipped_steps == skipped:  # else skipped (nonfinite="skip"): not a step here
            self._count()
        return loss

    def _init_group(self) -> None:
        """What dynamo runs eagerly while it traces ``step``: the count becomes a tensor, and
        each bucket's kernels are chosen here, so that the count and the synchronisation are in
        the graph (no graph break)."""
        self.inner_steps = self._on_device(self.inner_steps, torch.int64)
        self._traced_buckets = self._buckets()

    def _count(self) -> None:
        """Count the inner step, and synchronise after every k-th."""
        if not torch.is_tensor(self.inner_steps):
            self.inner_steps += 1
            if self.inner_steps % self.k == 0:
                self._synchronise(self._buckets(), None)
            return
        self.inner_steps.add_(1)  # on the device: every step, the kernels skip unless k-th
        skip = (self.inner_steps % self.k).ne(0).to(torch.float32)
        traced = torch.compiler.is_compiling()
        self._synchronise(self._traced_buckets if traced else self._buckets(), skip)

    def _buckets(self) -> list[tuple[list[int], ModuleType | None]]:
        """The parameters' positions per (device, dtype), each with the kernels that take them
        in one pass (descentlab's CPU kernels when built, Triton on CUDA, else foreach);
        ``None`` for DTensor shards (per tensor: DTensor has no rule for ``_foreach_copy_``)."""
        params = self._params()
        groups: dict[tuple[torch.device, torch.dtype, bool], list[int]] = {}
        for i, p in enumerate(params):
            groups.setdefault((p.device, p.dtype, kernel_tensor(p)), []).append(i)
        buckets = []
        for (device, _, fits), index in groups.items():
            kernels = foreach
            if not fits and any(is_dtensor(params[i]) for i in index):  # (fits: not one)
                kernels = None
            elif fits:
                kernels = _kernels.select(device, impl="auto", torch_fused=False, compiled=True,
                                 build=False, owner="Lookahead")  # fmt: skip
            buckets.append((index, kernels))
        return buckets

    def _synchronise(
        self, buckets: list[tuple[list[int], ModuleType | None]], skip: torch.Tensor | None
    ) -> None:
        """(2) for each bucket in one pass; nothing where ``skip`` is nonzero (a device flag:
        the steps between the k-th ones of a compiled or capturable count)."""
        fast = self._params()
        for index, kernels in buckets:
            f = [fast[i] for i in index]
            s = [self.state[p]["slow"] for p in f]
            flag = None if skip is None else skip.to(f[0].device, non_blocking=True)
            if kernels is None:
                _per_tensor_sync(s, f, self.alpha, flag)
            else:
                kernels.lookahead_sync(slow=s, fast=f, alpha=self.alpha, found_inf=flag)

    def _extra_state(self) -> dict[str, Any]:
        return {"k": self.k, "alpha": self.alpha, "inner_steps": int(self.inner_steps)}

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        self.k, self.alpha = extra["k"], extra["alpha"]
        self.inner_steps = set_count(self.inner_steps, extra["inner_steps"])


def _per_tensor_sync(
    slow: list[torch.Tensor], fast: list[torch.Tensor], alpha: float, skip: torch.Tensor | None
) -> None:
    """(2) one tensor at a time (DTensor shards); where ``skip`` is nonzero, nothing."""
    for s, f in zip(slow, fast):
        if skip is None:
            f.copy_(s.lerp_(f, alpha))
            continue
        new = torch.where(skip.bool(), s, torch.lerp(s, f, alpha))
        s.copy_(new)
        f.copy_(new)
