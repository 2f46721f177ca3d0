"""Policy gradient on CartPole: the lecture's reinforcement-learning case.

REINFORCE with a learned baseline (Williams 1992, "Simple statistical gradient-following
algorithms for connectionist reinforcement learning"; the baseline as in Sutton & Barto 2018,
section 13.4) on Gymnasium's ``CartPole-v1`` (Barto, Sutton & Anderson 1983). Gymnasium is an
optional extra: ``pip install 'descentlab[rl]'``.

The model holds a policy (4-``width``-2, tanh, softmax over the two actions) and a separate value
network (4-``width``-1); one optimizer trains both (``param_groups()`` is ``{"model": ...}``).
One training step plays ``episodes`` episodes with the current policy (the environments are
stepped in lockstep, so the networks see one batch per time step), computes the discounted
returns-to-go :math:`G_t` (``gamma = 0.99``), scaled by :math:`1 - \\gamma` so that they lie in
[0, 1], and minimises

.. math::
    -\\frac{1}{N}\\sum_t \\log\\pi(a_t|s_t)\\,\\hat A_t + \\frac{1}{2N}\\sum_t (V(s_t) - G_t)^2,
    \\qquad \\hat A_t = \\operatorname{normalise}(G_t - V(s_t))

(advantages standardised over the batch, a common variance reduction). ``train_step`` returns
that loss. An epoch is ``steps_per_epoch`` such steps; a batch is the list of environment seeds of
its episodes, drawn from the task's seeded generator, as are the sampled actions.

``evaluate(split)`` plays ``n_eval`` episodes with the stochastic policy on fixed environment
seeds and a fixed action generator per split (``"train"``, ``"val"`` and ``"test"`` differ only
by those draws) and reports ``return`` (the mean undiscounted episode return, at most 500),
``loss`` (the training loss on those episodes) and ``value_loss``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import torch
from torch import nn

from ._base import SPLITS, Budget, DrawnEpoch, Problem, Target, seeded_generator

__all__ = ["CARTPOLE_PG", "CartPoleTask"]

_GAMMA, _ENV = 0.99, "CartPole-v1"


def _gymnasium():
    try:
        import gymnasium
    except ImportError as e:
        raise ImportError(
            "cartpole-pg needs Gymnasium, an optional extra: pip install 'descentlab[rl]' "
            "(or pip install gymnasium)"
        ) from e
    return gymnasium


class CartPoleTask:
    """The built ``cartpole-pg`` problem (see the module docstring)."""

    def __init__(
        self,
        seed: int,
        *,
        data_dir: str | None,
        batch_size: int,
        width: int = 64,
        steps_per_epoch: int = 10,
        n_eval: int = 10,
    ) -> None:
        del data_dir  # simulated
        episodes = batch_size
        gym = _gymnasium()
        self.envs = [gym.make(_ENV) for _ in range(max(episodes, n_eval))]
        torch.manual_seed(seed)
        self.model = nn.ModuleDict(
            {
                "policy": nn.Sequential(nn.Linear(4, width), nn.Tanh(), nn.Linear(width, 2)),
                "value": nn.Sequential(nn.Linear(4, width), nn.Tanh(), nn.Linear(width, 1)),
            }
        )
        self.episodes, self.steps_per_epoch, self.n_eval = episodes, steps_per_epoch, n_eval
        self.seed, self.generator = seed, seeded_generator(seed)
        self.train_loader = DrawnEpoch(
            steps_per_epoch,
            lambda: torch.randint(2**31 - 1, (episodes,), generator=self.generator).tolist(),
        )

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Policy and value network, trained by one optimizer."""
        return {"model": list(self.model.parameters())}

    def epoch_batches(self) -> Iterable[list[int]]:
        """One epoch of episode-seed batches."""
        return self.train_loader

    def _play(self, env_seeds: list[int], actions: torch.Generator):
        """Play one episode per seed in lockstep; return per-step tensors and episode returns."""
        envs = self.envs[: len(env_seeds)]
        obs = [env.reset(seed=s)[0] for env, s in zip(envs, env_seeds)]
        alive = list(range(len(envs)))
        states, chosen, rewards, owner = [], [], [], []
        while alive:
            s = torch.from_numpy(np.stack([obs[i] for i in alive])).float()
            with torch.no_grad():
                probs = torch.softmax(self.model["policy"](s), -1)
            a = torch.multinomial(probs, 1, generator=actions).squeeze(1)
            still = []
            for k, i in enumerate(alive):
                obs[i], r, terminated, truncated, _ = envs[i].step(int(a[k]))
                states.append(s[k])
                chosen.append(a[k])
                rewards.append(float(r))
                owner.append(i)
                if not (terminated or truncated):
                    still.append(i)
            alive = still
        # discounted return-to-go per step, computed backwards within each episode
        returns, running = [0.0] * len(rewards), [0.0] * len(envs)
        for j in range(len(rewards) - 1, -1, -1):
            running[owner[j]] = rewards[j] + _GAMMA * running[owner[j]]
            returns[j] = running[owner[j]]
        totals = torch.zeros(len(envs)).index_add_(0, torch.tensor(owner), torch.tensor(rewards))
        return torch.stack(states), torch.stack(chosen), torch.tensor(returns), totals

    def _loss(self, states, chosen, returns) -> tuple[torch.Tensor, torch.Tensor]:
        target = (1 - _GAMMA) * returns  # in [0, 1]
        value = self.model["value"](states).squeeze(1)
        advantage = (target - value).detach()
        advantage = (advantage - advantage.mean()) / (advantage.std(unbiased=False) + 1e-8)
        logp = torch.log_softmax(self.model["policy"](states), -1)
        logp = logp.gather(1, chosen.unsqueeze(1)).squeeze(1)
        value_loss = 0.5 * ((value - target) ** 2).mean()
        return -(logp * advantage).mean() + value_loss, value_loss

    def to(self, device: torch.device) -> CartPoleTask:
        """The CPU only: the environment steps on the host, one small policy call per step."""
        if torch.device(device).type != "cpu":
            raise ValueError(
                f"cartpole-pg runs on the CPU only (its environment steps on the host), not {device}"
            )
        return self

    def train_step(
        self, optimizers: Mapping[str, torch.optim.Optimizer], batch: list[int]
    ) -> float:
        """Play the batch's episodes, then one policy-gradient step; returns the loss."""
        states, chosen, returns, _ = self._play(batch, self.generator)
        opt = optimizers["model"]
        opt.zero_grad(set_to_none=True)
        loss, _ = self._loss(states, chosen, returns)
        loss.backward()
        opt.step()
        return float(loss.detach())

    def evaluate(self, split: str) -> dict[str, float]:
        """``return``, ``loss`` and ``value_loss`` over ``n_eval`` fixed episodes of ``split``."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        base = 1_000_003 * (SPLITS.index(split) + 1)  # fixed, disjoint seeds per split
        env_seeds = [base + i for i in range(self.n_eval)]
        states, chosen, returns, totals = self._play(env_seeds, seeded_generator(base))
        with torch.no_grad():
            loss, value_loss = self._loss(states, chosen, returns)
        return {
            "loss": float(loss),
            "value_loss": float(value_loss),
            "return": float(totals.mean()),
        }


CARTPOLE_PG = Problem(
    name="cartpole-pg",
    description=(
        "REINFORCE with a learned baseline on Gymnasium's CartPole-v1 (policy and value MLPs "
        "with 64 tanh units; batch = episodes per step); needs the 'rl' extra"
    ),
    source=(
        "Williams 1992 (REINFORCE); Sutton & Barto 2018 s13.4 (baseline); Gymnasium CartPole-v1 "
        "(Barto, Sutton & Anderson 1983)"
    ),
    kind="rl",
    budget=Budget(epochs=10, batch_size=8),
    target=Target("return", 475.0, higher_is_better=True),
    main_metric="return",
    higher_is_better=True,
    axes=frozenset({"batch_size", "data_dir", "width", "steps_per_epoch", "n_eval"}),
    factory=CartPoleTask,
)
