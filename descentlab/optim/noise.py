"""Annealed Gaussian gradient noise.

Reference: Neelakantan et al. 2015, "Adding Gradient Noise Improves Learning for Very Deep
Networks", eq. (1)-(2).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ..checks import HyperparameterError
from . import _checks as c
from ._wrapper import Wrapper, inner_step
from .base import is_dtensor, outside_graph

__all__ = ["GradientNoise"]


class GradientNoise(Wrapper):
    r"""Add :math:`N(0, \sigma_t^2)`, :math:`\sigma_t^2 = \eta / (1+t)^\gamma`, to every gradient.

    :math:`t` counts this wrapper's steps from 1. The inner optimizer sees the noisy gradients;
    ``p.grad`` is left as it was after the step (the noise goes into a copy). The noise comes from
    ``generator`` (a ``torch.Generator`` or an int seed), so a run is reproducible, and the
    generator's state is saved in the state dict. Under data parallelism every rank must use the
    same seed so that the replicas add the same noise and stay identical.

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

    def __init__(
        self,
        base_optimizer: torch.optim.Optimizer,
        eta: float = 0.3,
        gamma: float = 0.55,
        generator: torch.Generator | int | None = None,
    ) -> None:
        c.nonnegative("eta", eta)
        c.nonnegative("gamma", gamma)
        if generator is None or (isinstance(generator, int) and not isinstance(generator, bool)):
            seed = 0 if generator is None else generator
            if not -(2**63) <= seed < 2**64:  # what torch.Generator.manual_seed takes
                raise HyperparameterError(f"Invalid generator: seed {seed} is not a 64-bit integer")
            generator = torch.Generator().manual_seed(seed)
        elif not isinstance(generator, torch.Generator):
            raise HyperparameterError(
                f"Invalid generator: {generator!r}; expected a torch.Generator, an int or None"
            )
        super().__init__(base_optimizer)
        self.eta, self.gamma, self.generator, self.noise_steps = eta, gamma, generator, 0

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
        draw = outside_graph(GradientNoise._draw) if torch.compiler.is_compiling() else None
        rng, originals = (draw or GradientNoise._draw)(self)
        try:
            inner_step(self.base_optimizer)
        finally:
            for p, g in originals:
                p.grad = g
        if self.skipped_steps != skipped:
            # the inner step was skipped (nonfinite="skip"): as if this step never happened
            self.noise_steps -= 1
            self.generator.set_state(rng)
        return loss

    def _init_group(self) -> None:
        """What dynamo runs eagerly while it traces ``step``: the draws outside the graph (the
        generator cannot be traced; one graph break, torch.optim's step has two)."""
        outside_graph(GradientNoise._draw)

    def _draw(self) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Add this step's noise to every gradient; the generator's state before, and each
        parameter with its own gradient (restored after the inner step)."""
        rng = self.generator.get_state()
        self.noise_steps += 1
        std = self.std(self.noise_steps)
        originals = []
        for p in self._params():
            if p.grad is None:
                continue
            noise = self._noise(p, std)
            if is_dtensor(p.grad):  # keep this rank's shard of the whole tensor's noise
                from torch.distributed.tensor import distribute_tensor  # imported if a DTensor is

                noise = distribute_tensor(
                    noise, p.grad.device_mesh, p.grad.placements, src_data_rank=None
                )
            originals.append((p, p.grad))
            p.grad = noise.add_(p.grad)
        return rng, originals

    def _noise(self, p: torch.Tensor, std: float) -> torch.Tensor:
        """N(0, std^2) for each real component of ``p`` (a complex ``randn`` would give each
        part variance std^2 / 2): drawn on the real view, as the paper's per-coordinate noise."""
        real = p.dtype.to_real() if p.is_complex() else p.dtype
        shape = (*p.shape, 2) if p.is_complex() else p.shape
        noise = torch.randn(
            shape, generator=self.generator, dtype=real, device=self.generator.device
        )
        noise = noise.to(p.grad.device).mul_(std)
        return torch.view_as_complex(noise) if p.is_complex() else noise

    def _extra_state(self) -> dict[str, Any]:
        return {
            "eta": self.eta,
            "gamma": self.gamma,
            "noise_steps": self.noise_steps,
            "generator": self.generator.get_state(),
        }

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        self.eta, self.gamma = extra["eta"], extra["gamma"]
        self.noise_steps = extra["noise_steps"]
        self.generator.set_state(extra["generator"])
