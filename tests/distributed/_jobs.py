"""What each of the two gloo processes runs: every optimizer in turn inside one spawned job."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.optim import ZeroRedundancyOptimizer
from torch.nn.parallel import DistributedDataParallel

import descentlab
from descentlab.optim import WRAPPERS
from descentlab.optim.registry import _keywords, resolve

from ._setup import (
    NAMES,
    STEPS,
    WORLD,
    batch,
    guarded,
    hparams,
    innermost,
    loss_fn,
    make_model,
    snapshot,
    switch_steps,
)

__all__ = ["RESUME_AT", "ddp_job", "fsdp_job", "zero_job"]

RESUME_AT = 3  # the ZeRO checkpoint is taken after this step and resumed in a fresh run


def _shard(rank: int) -> slice:
    rows = len(batch()[0]) // WORLD
    return slice(rank * rows, (rank + 1) * rows)


def _train(model, opt, x, y, steps: int, full=lambda p: p) -> list[list[torch.Tensor]]:
    out = []
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(model, x, y).backward()
        opt.step()
        out.append(snapshot(full(p) for p in model.parameters()))
    return out


# ------------------------------------------------------------------ DistributedDataParallel
def ddp_job(rank: int) -> dict[str, Any]:
    """Each rank trains a DDP replica on its half of the batch."""
    x, y = batch()
    x, y = x[_shard(rank)], y[_shard(rank)]

    def case(name):
        model = DistributedDataParallel(make_model())
        opt = descentlab.create(name, model.parameters(), **hparams(name))
        return _train(model, opt, x, y, STEPS)

    return {name: guarded(case, name) for name in NAMES}


# ------------------------------------------------------------------ ZeroRedundancyOptimizer
def _zero(name: str, params) -> torch.optim.Optimizer:
    """The name's optimizer class sharded by ZeRO, wrapped by its wrappers (outermost last)."""
    wrappers, entry = resolve(name)
    hp = hparams(name)
    per_wrapper = [
        {k: hp.pop(k) for k in list(hp) if k in _keywords(WRAPPERS[w])} for w in wrappers
    ]
    opt = ZeroRedundancyOptimizer(params, optimizer_class=entry.cls, **{**entry.fixed, **hp})
    for w, kw in zip(reversed(wrappers), reversed(per_wrapper)):
        opt = WRAPPERS[w](opt, **kw)
    return opt


def zero_job(rank: int) -> dict[str, Any]:
    """Every rank sees the whole batch (ZeRO shards the optimizer state, not the data).

    Per name: the uninterrupted run, and a run whose consolidated state dict (rank 0's,
    broadcast to every rank) is loaded after step ``RESUME_AT`` into a fresh model and a fresh
    ZeRO optimizer that finish the run.
    """
    x, y = batch()

    def case(name):
        model = make_model()
        opt = _zero(name, model.parameters())
        whole = _train(model, opt, x, y, STEPS)
        switched = switch_steps(opt, list(model.parameters()))

        model = make_model()
        opt = _zero(name, model.parameters())
        first = _train(model, opt, x, y, RESUME_AT)
        zero = innermost(opt)
        zero.consolidate_state_dict(to=0)
        box = [opt.state_dict() if rank == 0 else None]
        dist.broadcast_object_list(box, src=0)
        fresh = make_model()
        fresh.load_state_dict(model.state_dict())
        opt = _zero(name, fresh.parameters())
        opt.load_state_dict(box[0])
        resumed = first + _train(fresh, opt, x, y, STEPS - RESUME_AT)
        return {"traj": whole, "resumed": resumed, "switch": switched}

    return {name: guarded(case, name) for name in NAMES}


# ------------------------------------------------------------------ FSDP2
def fsdp_job(rank: int) -> dict[str, Any]:
    """FSDP2: every Linear and the whole model are ``fully_shard``-ed (DTensor parameters)."""
    from torch.distributed.fsdp import fully_shard

    x, y = batch()
    x, y = x[_shard(rank)], y[_shard(rank)]

    def case(name):
        model = make_model()
        for layer in model:
            if isinstance(layer, nn.Linear):
                fully_shard(layer)
        fully_shard(model)
        opt = descentlab.create(name, model.parameters(), **hparams(name))
        traj = _train(model, opt, x, y, STEPS, full=lambda p: p.full_tensor())
        return {"traj": traj, "switch": switch_steps(opt, list(model.parameters()))}

    return {name: guarded(case, name) for name in NAMES}
