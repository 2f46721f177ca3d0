"""Annealed Gaussian gradient noise.

Reference: Neelakantan et al. 2015, "Adding Gradient Noise Improves Learning for Very Deep
Networks", eq. (1)-(2).
"""

from __future__ import annotations

import functools
import math
import weakref
from collections.abc import Callable
from types import ModuleType
from typing import Any

import torch

from ..checks import HyperparameterError
from . import _checks as c
from . import kernels as _kernels
from ._wrapper import Wrapper, capturable, inner_step, set_count
from .base import is_dtensor, kernel_tensor, outside_graph

__all__ = ["GradientNoise"]


class GradientNoise(Wrapper):
    r"""Add :math:`N(0, \sigma_t^2)`, :math:`\sigma_t^2 = \eta / (1+t)^\gamma`, to every gradient.

    :math:`t` counts this wrapper's steps from 1. The inner optimizer sees the noisy gradients;
    ``p.grad`` is left as it was after the step (the noise goes into a copy). The noise comes from
    ``generator`` (a ``torch.Generator`` or an int seed), so a run is reproducible, and the
    generator's state is saved in the state dict. Under data parallelism every rank must use the
    same seed so that the replicas add the same noise and stay identical.

    Speed: a seed makes the generator on the parameters' device where that is CUDA, and there
    one draw covers all the gradients' values and one Triton pass adds them (for real gradients
    of one dtype on the generator's device; the stream is then not that of per-tensor draws).
    Otherwise each gradient gets its own draw (from a CPU generator, then copied to its
    device). The count ``t`` is a host number; under ``torch.compile``, and where the inner
    optimizer is ``capturable``, it is a tensor on the parameters' device and the draws are one
    opaque operator: no graph break, no host sync. (To capture a step in a CUDA graph, give a
    CUDA generator and register it with ``CUDAGraph.register_generator_state``.)

    Sharding: the noise of a parameter is drawn for its whole (global) shape from the shared
    generator, whatever the sharding, and each rank keeps its own shard of it (FSDP2's DTensor
    gradients); a sharded run therefore adds exactly the noise of an unsharded one. The cost:
    every rank draws the full tensor's noise, one parameter at a time (memory of the largest
    parameter, time of an unsharded draw), and no communication.

    Args:
        base_optimizer: the inner optimizer.
        eta: noise scale (the paper tries 0.01, 0.3, 1.0).
        gamma: annealing exponent (the paper's 0.55).
        generator: a ``torch.Generator``, an int seed, or None (seed 0).
    """

    key = "gradient_noise"
    _transient = ("_traced", "_before")

    def __init__(
        self,
        base_optimizer: torch.optim.Optimizer,
        eta: float = 0.3,
        gamma: float = 0.55,
        generator: torch.Generator | int | None = None,
    ) -> None:
        c.nonnegative("eta", eta)
        c.nonnegative("gamma", gamma)
        seed = None
        if generator is None or (isinstance(generator, int) and not isinstance(generator, bool)):
            seed = 0 if generator is None else generator
            if not -(2**63) <= seed < 2**64:  # what torch.Generator.manual_seed takes
                raise HyperparameterError(f"Invalid generator: seed {seed} is not a 64-bit integer")
        elif not isinstance(generator, torch.Generator):
            raise HyperparameterError(
                f"Invalid generator: {generator!r}; expected a torch.Generator, an int or None"
            )
        super().__init__(base_optimizer)
        if seed is not None:
            params = self._params()
            cuda = params[0].device if params and params[0].device.type == "cuda" else None
            generator = torch.Generator(device=cuda or "cpu").manual_seed(seed)
        self.eta, self.gamma, self.generator, self.noise_steps = eta, gamma, generator, 0
        if capturable(base_optimizer):  # the count, and so the std, on the device
            self.noise_steps = self._on_device(self.noise_steps, torch.float64)

    def _extra_repr(self) -> str:
        return f"eta={self.eta}, gamma={self.gamma}"

    def std(self, t: int) -> float:
        """The noise standard deviation at step ``t`` (from 1)."""
        return math.sqrt(self.eta * (1 + t) ** -self.gamma)  # underflows to 0, never overflows

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Evaluate ``closure``, add the noise to every gradient, and take the inner step."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if torch.compiler.is_compiling():
            self._init_group()
        skipped = self.skipped_steps
        params = [p for p in self._params() if p.grad is not None]
        grads = [p.grad for p in params]
        self.noise_steps += 1  # in place where it is a tensor
        for p, noisy in zip(params, self._draw(grads, self._std())):
            p.grad = noisy
        try:
            inner_step(self.base_optimizer)
        finally:
            for p, g in zip(params, grads):
                p.grad = g
        if self.skipped_steps != skipped:
            # the inner step was skipped (nonfinite="skip"): as if this step never happened
            self.noise_steps -= 1
            self.generator.set_state(self._before)
        return loss

    def _init_group(self) -> None:
        """What dynamo runs eagerly while it traces ``step``: the count becomes a tensor and
        the draws one opaque operator (the generator cannot be traced), chosen here: no graph
        break. With DTensor gradients the draws run outside the graph (one break)."""
        self.noise_steps = self._on_device(self.noise_steps, torch.float64)
        grads = [p.grad for p in self._params() if p.grad is not None]
        _OWNERS[id(self)] = self
        self._traced = (
            outside_graph(GradientNoise._noisy)
            if any(is_dtensor(g) for g in grads)
            else functools.partial(_traced_draw, id(self), self._flat_kernels(grads) is not None)
        )

    def _std(self) -> float | torch.Tensor:
        """This step's standard deviation: a float, or a device tensor with a device count."""
        if torch.is_tensor(self.noise_steps):
            return (self.eta * (1 + self.noise_steps) ** -self.gamma).sqrt()
        return self.std(int(self.noise_steps))

    def _draw(self, grads: list[torch.Tensor], std: float | torch.Tensor) -> list[torch.Tensor]:
        """The noisy gradients (``grads`` are left as they are)."""
        if torch.compiler.is_compiling():
            return self._traced(grads, std)
        return self._noisy(grads, std)

    def _noisy(self, grads: list[torch.Tensor], std: float | torch.Tensor) -> list[torch.Tensor]:
        """``g + std z`` for each gradient; the generator's state before is kept in
        ``_before`` (restored if the inner step is skipped). One draw over all the values and
        one kernel pass where the gradients are on one CUDA device with the generator (see
        :mod:`.kernels.triton.noise`), else a draw per gradient."""
        self._before = self.generator.get_state()
        kernels = self._flat_kernels(grads)
        if kernels is not None:
            return kernels.noise_views(self._flat_noise(grads, std, kernels), grads)
        noisy = []
        for g in grads:
            noise = self._noise(g, std)
            if is_dtensor(g):  # keep this rank's shard of the whole tensor's noise
                from torch.distributed.tensor import distribute_tensor  # imported if a DTensor is

                noise = distribute_tensor(noise, g.device_mesh, g.placements, src_data_rank=None)
            noisy.append(noise.add_(g))
        return noisy

    def _flat_noise(
        self, grads: list[torch.Tensor], std: float | torch.Tensor, kernels: ModuleType
    ) -> torch.Tensor:
        """The flat buffer of all the noisy gradients' values: one draw, one kernel pass."""
        total = sum(g.numel() for g in grads)
        z = torch.randn(total, generator=self.generator, dtype=grads[0].dtype,
                        device=grads[0].device)  # fmt: skip
        kernels.noise_add(noise=z, grads=grads, std=std)
        return z

    def _flat_kernels(self, grads: list[torch.Tensor]) -> ModuleType | None:
        """The Triton kernels, where ``grads`` are real, of one dtype, on the generator's
        device, and that device's kernels have the one-pass noise (CUDA); else ``None``."""
        if not grads:
            return None
        first = grads[0]
        if (
            first.is_complex()
            or first.device != self.generator.device
            or not all(
                kernel_tensor(g) and (g.device, g.dtype) == (first.device, first.dtype)
                for g in grads
            )
        ):
            return None
        kernels = _kernels.select(first.device, impl="auto", torch_fused=False, compiled=True,
                         build=False, owner="GradientNoise")  # fmt: skip
        return kernels if hasattr(kernels, "noise_views") else None

    def _noise(self, g: torch.Tensor, std: float | torch.Tensor) -> torch.Tensor:
        """N(0, std^2) for each real component of ``g`` (a complex ``randn`` would give each
        part variance std^2 / 2): drawn on the real view, as the paper's per-coordinate noise."""
        real = g.dtype.to_real() if g.is_complex() else g.dtype
        shape = (*g.shape, 2) if g.is_complex() else g.shape
        noise = torch.randn(
            shape, generator=self.generator, dtype=real, device=self.generator.device
        )
        noise = noise.to(g.device).mul_(std)
        return torch.view_as_complex(noise) if g.is_complex() else noise

    def _extra_state(self) -> dict[str, Any]:
        return {
            "eta": self.eta,
            "gamma": self.gamma,
            "noise_steps": int(self.noise_steps),
            "generator": self.generator.get_state(),
        }

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        self.eta, self.gamma = extra["eta"], extra["gamma"]
        self.noise_steps = set_count(self.noise_steps, extra["noise_steps"])
        self.generator.set_state(extra["generator"])


_OWNERS: weakref.WeakValueDictionary[int, GradientNoise] = weakref.WeakValueDictionary()


@torch.library.custom_op("descentlab::gradient_noise", mutates_args=())
def _noise_op(
    grads: list[torch.Tensor], std: torch.Tensor, owner: int, flat: bool
) -> list[torch.Tensor]:
    """The draws of GradientNoise ``owner`` as one opaque operator (``torch.compile``): the
    noisy gradients, or (``flat``) the one flat buffer of them."""
    wrapper = _OWNERS[owner]
    if not flat:
        return wrapper._noisy(grads, std)
    wrapper._before = wrapper.generator.get_state()
    return [wrapper._flat_noise(grads, std, wrapper._flat_kernels(grads))]


@_noise_op.register_fake
def _(grads: list[torch.Tensor], std: torch.Tensor, owner: int, flat: bool) -> list[torch.Tensor]:
    if flat:
        return [grads[0].new_empty(sum(g.numel() for g in grads))]
    return [torch.empty_like(g) for g in grads]


def _traced_draw(
    owner: int, flat: bool, grads: list[torch.Tensor], std: torch.Tensor
) -> list[torch.Tensor]:
    """The noisy gradients through :func:`_noise_op` (views of its buffer where ``flat``)."""
    out = _noise_op(grads, std, owner, flat)
    if not flat:
        return out
    sizes = [g.numel() for g in grads]
    return [z.view(g.shape) for z, g in zip(out[0].split(sizes), grads)]
