"""A small GAN on a 2-D mixture of 8 Gaussians on a ring: the lecture's GAN case.

The data is the ring of Metz, Poole, Pfau & Sohl-Dickstein 2017 ("Unrolled Generative Adversarial
Networks"): 8 Gaussians of standard deviation ``std`` centred on a circle of radius 2. The
generator and the discriminator are MLPs (two hidden layers of ``width`` ReLU units; noise of
dimension 8), trained with the non-saturating loss of Goodfellow et al. 2014 ("Generative
Adversarial Nets"), one discriminator step and one generator step per batch, each with its own
optimizer (``param_groups()`` has ``"generator"`` and ``"discriminator"``).

Metrics (Srivastava et al. 2017, "VEEGAN", section 5.1), on ``n_eval`` generated samples:
``mode_coverage``, the fraction of the 8 modes that at least 1% of the samples fall within 3
standard deviations of; and ``high_quality``, the fraction of samples within 3 standard deviations
of some mode. ``loss`` is the discriminator's plus the generator's loss on those samples against
as many fresh real ones. There is no held-out data in a GAN: the ``"train"``, ``"val"`` and
``"test"`` evaluations differ only by their (fixed) draws of noise and real samples.

An epoch is ``steps_per_epoch`` batches of fresh real samples and noise from the task's seeded
generator; ``train_step`` returns the discriminator's plus the generator's loss.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch
from torch import nn
from torch.nn.functional import binary_cross_entropy_with_logits as bce

from ._base import SPLITS, Budget, DrawnEpoch, Problem, Target, seeded_generator
from ._device import autocast, backward_step

__all__ = ["GAN_MOG", "GanTask", "ring_modes"]

_MODES, _RADIUS, _Z = 8, 2.0, 8


def ring_modes(n: int = _MODES, radius: float = _RADIUS) -> torch.Tensor:
    """The ``(n, 2)`` mode centres, evenly spaced on a circle of ``radius``."""
    angle = torch.arange(n, dtype=torch.float64) * (2 * math.pi / n)
    return (radius * torch.stack([angle.cos(), angle.sin()], 1)).float()


def _mlp(inp: int, width: int, out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(inp, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, out)
    )


class GanTask:
    """The built GAN problem (see the module docstring)."""

    def __init__(
        self,
        seed: int,
        *,
        data_dir: str | None,
        batch_size: int,
        std: float = 0.05,
        width: int = 128,
        steps_per_epoch: int = 100,
        n_eval: int = 2000,
    ) -> None:
        del data_dir  # sampled
        torch.manual_seed(seed)
        self.model = nn.ModuleDict(
            {"generator": _mlp(_Z, width, 2), "discriminator": _mlp(2, width, 1)}
        )
        self.modes, self.std = ring_modes(), std
        self.batch_size, self.steps_per_epoch, self.n_eval = batch_size, steps_per_epoch, n_eval
        self.seed, self.generator = seed, seeded_generator(seed)
        self.device, self.amp = torch.device("cpu"), None
        self.train_loader = DrawnEpoch(
            steps_per_epoch,
            lambda: (
                self.sample_real(batch_size, self.generator),
                self.noise(batch_size, self.generator),
            ),
        )

    def sample_real(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` samples of the mixture (drawn on the generator's device)."""
        which = torch.randint(len(self.modes), (n,), generator=generator, device=generator.device)
        noise = torch.randn(n, 2, generator=generator, device=generator.device)
        return self.modes[which] + self.std * noise

    def noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` standard normal noise vectors for the generator."""
        return torch.randn(n, _Z, generator=generator, device=generator.device)

    def to(self, device: torch.device) -> GanTask:
        """Move the networks and the mixture to ``device``, where the batches are then drawn
        (from a generator on it, seeded alike: its numbers differ from the CPU's)."""
        self.device = torch.device(device)
        self.model.to(self.device)
        self.modes = self.modes.to(self.device)
        if self.device.type != "cpu":
            self.generator = seeded_generator(self.seed, self.device)
        return self

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """One optimizer for each network."""
        return {k: list(m.parameters()) for k, m in self.model.items()}

    def epoch_batches(self) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of fresh ``(real, noise)`` batches."""
        return self.train_loader

    def _d_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        d = self.model["discriminator"]
        real_logits, fake_logits = d(real), d(fake.detach())
        return bce(real_logits, torch.ones_like(real_logits)) + bce(
            fake_logits, torch.zeros_like(fake_logits)
        )

    def _g_loss(self, fake: torch.Tensor) -> torch.Tensor:
        logits = self.model["discriminator"](fake)
        return bce(logits, torch.ones_like(logits))  # non-saturating: -log D(G(z))

    def train_step(
        self,
        optimizers: Mapping[str, torch.optim.Optimizer],
        batch: tuple[torch.Tensor, torch.Tensor],
    ) -> float:
        """One discriminator step, then one generator step; returns the sum of both losses."""
        real, z = batch
        d_opt, g_opt = optimizers["discriminator"], optimizers["generator"]
        with autocast(self.amp):
            fake = self.model["generator"](z)
        d_opt.zero_grad(set_to_none=True)
        with autocast(self.amp):
            d_loss = self._d_loss(real, fake)
        backward_step(self.amp, d_loss, d_opt)
        g_opt.zero_grad(set_to_none=True)
        with autocast(self.amp):
            g_loss = self._g_loss(fake)
        backward_step(self.amp, g_loss, g_opt)
        if self.amp is not None:
            self.amp.update()
        return float(d_loss.detach()) + float(g_loss.detach())

    @torch.no_grad()
    def evaluate(self, split: str) -> dict[str, float]:
        """``loss``, ``d_loss``, ``g_loss``, ``mode_coverage`` and ``high_quality`` (see above)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        g = seeded_generator(10_007 * (SPLITS.index(split) + 1) + self.seed, self.device)
        real, z = self.sample_real(self.n_eval, g), self.noise(self.n_eval, g)
        fake = self.model["generator"](z)
        d_loss, g_loss = self._d_loss(real, fake), self._g_loss(fake)
        near = torch.cdist(fake, self.modes) <= 3 * self.std  # (n_eval, modes)
        per_mode = near.sum(0)
        return {
            "loss": float(d_loss + g_loss),
            "d_loss": float(d_loss),
            "g_loss": float(g_loss),
            "mode_coverage": float((per_mode >= 0.01 * self.n_eval).float().mean()),
            "high_quality": float(near.any(1).float().mean()),
        }


GAN_MOG = Problem(
    name="gan-mog",
    description=(
        "GAN (MLP generator and discriminator, 2 hidden layers of 128) on a ring of 8 "
        "Gaussians (radius 2, std 0.05); metric: fraction of modes covered"
    ),
    source=(
        "Ring of Gaussians of Metz et al. 2017 (Unrolled GANs); non-saturating GAN loss "
        "(Goodfellow et al. 2014); mode metrics of Srivastava et al. 2017 (VEEGAN)"
    ),
    kind="gan",
    budget=Budget(epochs=20, batch_size=256),
    target=Target("mode_coverage", 1.0, higher_is_better=True),
    main_metric="mode_coverage",
    higher_is_better=True,
    axes=frozenset({"batch_size", "data_dir", "std", "width", "steps_per_epoch", "n_eval"}),
    factory=GanTask,
)
