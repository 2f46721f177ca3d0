"""Checkpoints resume to the uninterrupted trajectory, bit for bit; bad files give clear errors."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest
import torch
from torch import nn

import descentlab
from descentlab.checkpoint import CheckpointError, load, save

TOTAL = 10
SAVE_AT = (1, 4, 7)  # resume after these steps
NAMES = ["adam", "sgdm", "swats", "lookahead(adam)", "noisy(sgdm)"]
# SWATS switches its tensors at steps 2-4, so the checkpoints cover both of its phases.
HPARAMS = {"swats": {"switch_tol": 0.03}, "lookahead(adam)": {"k": 3}}

X = torch.randn(64, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
Y = X @ torch.linspace(-1, 1, 5, dtype=torch.float64) + 0.1


def build(name: str, seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Dropout(0.2), nn.Linear(16, 1)).double()
    opt = descentlab.create(name, model.parameters(), lr=0.02, **HPARAMS.get(name, {}))
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
    return model, opt, sched, torch.Generator().manual_seed(seed + 1)


def train(model, opt, sched, gen, steps: range, saves: dict | None = None) -> list[torch.Tensor]:
    """A loop that draws on every RNG a checkpoint restores; the parameters after each step."""
    out = []
    for step in steps:
        idx = torch.randint(0, len(X), (8,), generator=gen)  # the loader's generator
        jitter = float(np.random.normal(scale=0.01))  # NumPy's global RNG
        scale = 1 + random.uniform(-0.1, 0.1)  # Python's
        opt.zero_grad()
        pred = model(X[idx] * scale).squeeze(-1)  # dropout: torch's global RNG
        loss = (pred - Y[idx] - jitter).pow(2).mean()
        loss.backward()
        opt.step()
        sched.step()
        out.append(torch.cat([p.detach().reshape(-1) for p in model.parameters()]))
        if saves is not None and step + 1 in saves:
            save(
                saves[step + 1],
                model=model,
                optimizer=opt,
                scheduler=sched,
                generator=gen,
                step=step + 1,
                extra={"note": "test"},
            )
    return out


def _seed_globals(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@pytest.mark.parametrize("name", NAMES)
def test_resume_at_any_step_reproduces_the_trajectory(tmp_path, name):
    _seed_globals(0)
    paths = {k: tmp_path / f"step{k}.pt" for k in SAVE_AT}
    whole = train(*build(name), range(TOTAL), saves=paths)
    if name == "swats":  # the run crosses the switch, so the checkpoints hold both phases
        model, opt, sched, _ = build(name)
        load(paths[SAVE_AT[-1]], model=model, optimizer=opt, scheduler=sched)
        assert any(s["switch_step"] for s in opt.state.values())
    for k in SAVE_AT:
        _seed_globals(123)  # the globals are wherever a new process would have them
        model, opt, sched, gen = build(name, seed=99)  # a different initialization, overwritten
        ckpt = load(paths[k], model=model, optimizer=opt, scheduler=sched, generator=gen)
        assert (ckpt.step, ckpt.extra) == (k, {"note": "test"})
        resumed = train(model, opt, sched, gen, range(k, TOTAL))
        for t, (a, b) in enumerate(zip(resumed, whole[k:]), k + 1):
            assert torch.equal(a, b), f"{name} resumed after step {k} differs at step {t}"


def test_resume_needs_every_rng_state(tmp_path):
    """The test above can fail: without the RNG states the resumed run differs."""
    _seed_globals(0)
    path = tmp_path / "c.pt"
    whole = train(*build("adam"), range(6), saves={3: path})
    model, opt, sched, gen = build("adam", seed=99)
    load(path, model=model, optimizer=opt, scheduler=sched, generator=gen)
    random.seed(5)  # only Python's RNG is off
    resumed = train(model, opt, sched, gen, range(3, 6))
    assert not torch.equal(resumed[-1], whole[-1])


def test_write_is_atomic(tmp_path, monkeypatch):
    model, opt, sched, _ = build("adam")
    path = save(tmp_path / "c.pt", model=model, optimizer=opt, scheduler=sched, step=1)
    before = path.read_bytes()

    def dies(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies)
    with pytest.raises(KeyboardInterrupt):
        save(path, model=model, optimizer=opt, scheduler=sched, step=2)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary file left behind


@pytest.mark.parametrize(
    "damage",
    [lambda b: b[: len(b) // 2], lambda b: b[:100] + bytes(200) + b[300:], lambda b: b"nonsense"],
    ids=["truncated", "overwritten", "garbage"],
)
def test_corrupted_file_names_the_file(tmp_path, damage):
    model, opt, sched, _ = build("adam")
    path = save(tmp_path / "c.pt", model=model, optimizer=opt, scheduler=sched)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CheckpointError, match=re.escape(str(path))):
        load(path, model=model, optimizer=opt, scheduler=sched)


def test_foreign_file_names_the_file(tmp_path):
    model, opt, sched, _ = build("adam")
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    with pytest.raises(CheckpointError, match=r"weights\.pt: not a descentlab checkpoint"):
        load(tmp_path / "weights.pt", model=model, optimizer=opt, scheduler=sched)


def test_checkpoint_of_another_optimizer_or_model_changes_nothing(tmp_path):
    model, opt, sched, _ = build("sgdm")
    path = save(tmp_path / "c.pt", model=model, optimizer=opt, scheduler=sched)
    model, opt, sched, _ = build("adam", seed=5)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(CheckpointError, match=r"c\.pt: the saved optimizer does not fit"):
        load(path, model=model, optimizer=opt, scheduler=sched)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))

    other = nn.Linear(5, 2).double()
    with pytest.raises(CheckpointError, match=r"c\.pt: the saved model does not fit"):
        load(path, model=other, optimizer=torch.optim.SGD(other.parameters()), scheduler=sched)
