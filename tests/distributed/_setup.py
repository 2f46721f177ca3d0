"""The problem, the optimizers and the single-process reference shared by the distributed tests.

Every mode (DDP, ZeRO, FSDP2) trains the same float64 MLP on the same fixed batch of 16 rows
for ``STEPS`` steps; the reference is one process on the whole batch with a MEAN loss (the
gradient averaging of DDP and FSDP2 then gives the same gradient up to rounding).
"""

from __future__ import annotations

import os
import socket
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import descentlab

__all__ = [
    "NAMES",
    "STEPS",
    "WORLD",
    "batch",
    "hparams",
    "innermost",
    "make_model",
    "rank_result",
    "reference",
    "spawn",
    "switch_steps",
]

WORLD = 2
STEPS = 5
NAMES = [*descentlab.names(), "lookahead(adam)", "noisy(sgdm)"]
# A tolerance far above float64 rounding (the averaged gradient differs from the full-batch one
# in the last bits) and far below any real difference between two algorithms' steps.
RTOL, ATOL = 1e-9, 1e-11


def hparams(name: str) -> dict[str, Any]:
    """Hyperparameters that move the weights visibly in a few steps.

    SWATS gets a ``switch_tol`` that makes it switch to SGD within the run (asserted by the
    tests), Lookahead a ``k`` that synchronises inside the run, GradientNoise a fixed seed.
    """
    _, entry = descentlab.optim.registry.resolve(name)
    extra: dict[str, Any] = {"lr": 5 * entry.lr}
    if entry.name == "swats":
        extra["switch_tol"] = 1e-3  # the second layer switches at step 2, the first not
    if name.startswith("lookahead("):
        extra["k"] = 2
    if name.startswith("noisy("):
        extra.update(generator=7, eta=0.01)
    return extra


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).double()


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(16, 6, generator=gen, dtype=torch.float64)
    y = torch.randn(16, 3, generator=gen, dtype=torch.float64)
    return x, y


def loss_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (model(x) - y).pow(2).mean()


def snapshot(tensors) -> list[torch.Tensor]:
    return [t.detach().clone() for t in tensors]


def innermost(opt: torch.optim.Optimizer) -> torch.optim.Optimizer:
    while hasattr(opt, "base_optimizer"):
        opt = opt.base_optimizer
    return opt


def switch_steps(opt: torch.optim.Optimizer, params: list[torch.Tensor]) -> list[int]:
    """SWATS's per-parameter switch step (0: still Adam); empty for other optimizers."""
    inner = innermost(opt)
    inner = getattr(inner, "optim", inner)  # ZeroRedundancyOptimizer's local optimizer
    return [int(inner.state[p].get("switch_step", 0)) for p in params if p in inner.state]


def reference(name: str, steps: int = STEPS) -> dict[str, list]:
    """Parameters after each step of one process on the whole batch, and SWATS's switch steps."""
    model = make_model()
    opt = descentlab.create(name, model.parameters(), **hparams(name))
    x, y = batch()
    out = []
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(model, x, y).backward()
        opt.step()
        out.append(snapshot(model.parameters()))
    return {"traj": out, "switch": switch_steps(opt, list(model.parameters()))}


def assert_trajectory(got, want, what: str) -> None:
    assert len(got) == len(want), f"{what}: {len(got)} steps, expected {len(want)}"
    for t, (ps, qs) in enumerate(zip(got, want), 1):
        for i, (p, q) in enumerate(zip(ps, qs)):
            torch.testing.assert_close(
                p,
                q,
                rtol=RTOL,
                atol=ATOL,
                msg=lambda m, t=t, i=i: f"{what} step {t} param {i}: {m}",
            )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank: int, job: Callable[[int], dict], port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        results = job(rank)
    finally:
        dist.destroy_process_group()
    torch.save(results, Path(out) / f"rank{rank}.pt")


def spawn(job: Callable[[int], dict], tmp: Path) -> list[dict]:
    """Run ``job(rank)`` in ``WORLD`` gloo processes; return each rank's result dict."""
    mp.spawn(_entry, args=(job, free_port(), str(tmp)), nprocs=WORLD, join=True)
    return [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def guarded(fn: Callable[..., Any], *args: Any) -> Any:
    """Run one optimizer's case; an exception becomes its traceback text (the others go on).

    Both ranks run the same collectives in the same order, so an exception raised on both
    ranks at the same point keeps them in step.
    """
    try:
        return fn(*args)
    except Exception:  # reported per optimizer by the test
        return traceback.format_exc()


def rank_result(runs: list[dict], rank: int, name: str) -> Any:
    """What rank ``rank`` recorded for optimizer ``name``; a failure's traceback fails the test."""
    got = runs[rank][name]
    assert not isinstance(got, str), f"rank {rank} failed:\n{got}"
    return got


def assert_every_rank_matches_reference(runs: list[dict], name: str, mode: str) -> None:
    """Every rank's trajectory of optimizer ``name`` equals the single-process reference."""
    want = reference(name)
    for rank in range(len(runs)):
        got = rank_result(runs, rank, name)
        assert_trajectory(got["traj"], want["traj"], f"{name} {mode} rank {rank}")
