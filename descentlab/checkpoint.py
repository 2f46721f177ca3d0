"""Training-loop checkpoints that resume to the same trajectory, written atomically.

A checkpoint holds everything a loop's next step depends on: the model, the optimizer (wrappers
included), the LR scheduler, the global random number generators (Python's ``random``, NumPy's
legacy global one, torch's CPU and, where present, CUDA ones) and the data loader's
``torch.Generator``. Resuming from a checkpoint taken after any step and running on gives
bit-for-bit the parameters of the run that was never interrupted (tested).

Example::

    for step in range(start, total):
        ...  # forward, backward, optimizer.step(), scheduler.step()
        save(path, model=model, optimizer=opt, scheduler=sched, generator=gen, step=step + 1)
    # later, in a fresh process with freshly built objects:
    start = load(path, model=model, optimizer=opt, scheduler=sched, generator=gen).step

The file is written to a temporary file in the same directory, flushed to disk and renamed over
``path`` (``os.replace``, atomic on POSIX and Windows), so a crash or a kill at any moment leaves
either the previous checkpoint or the new one, never half of one. Loading uses
``torch.load(weights_only=True)`` (no arbitrary code from the file) and raises
:class:`CheckpointError` naming the file when it is truncated, corrupted, or not a descentlab
checkpoint, or when its model or optimizer does not fit the objects given.

A ``DataLoader`` draws an epoch's order from its generator when its iterator starts: to resume
mid-epoch, either save at epoch boundaries or draw each step's batch from the generator.
"""

from __future__ import annotations

import os
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["FORMAT", "Checkpoint", "CheckpointError", "load", "save"]

FORMAT = "descentlab-checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint file cannot be read or does not fit the objects to restore."""


@dataclass(frozen=True)
class Checkpoint:
    """What :func:`load` returns besides restoring the objects."""

    path: Path
    step: int
    extra: dict[str, Any]


def _rng_states() -> dict[str, Any]:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict[str, Any]) -> None:
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save(
    path: str | os.PathLike[str],
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any | None = None,
    generator: torch.Generator | None = None,
    step: int = 0,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint of a training loop to ``path`` atomically and return the path.

    Args:
        path: the checkpoint file (its directory must exist); replaced atomically.
        model, optimizer: saved through their ``state_dict``.
        scheduler: an LR scheduler (anything with ``state_dict``), or None.
        generator: the data loader's generator, or None.
        step: the number of steps taken (returned by :func:`load`).
        extra: more plain data to keep (numbers, strings, tensors, lists, dicts).
    """
    path = Path(path)
    payload = {
        "format": FORMAT,
        "step": int(step),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "generator": None if generator is None else generator.get_state(),
        "rng": _rng_states(),
        "extra": dict(extra or {}),
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _read(path: Path) -> dict[str, Any]:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # truncated zip, bad pickle, objects weights_only refuses, ...
        raise CheckpointError(
            f"{path}: not a readable checkpoint ({type(e).__name__}: {str(e).splitlines()[0]})"
        ) from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        what = sorted(map(str, payload))[:8] if isinstance(payload, dict) else type(payload)
        raise CheckpointError(
            f"{path}: not a descentlab checkpoint (expected format {FORMAT!r}; found {what})"
        )
    return payload


def _check_model(path: Path, model: torch.nn.Module, saved: dict[str, Any]) -> None:
    """Compare keys and shapes first: ``Module.load_state_dict`` copies before it complains."""
    mine = model.state_dict()
    missing, unexpected = sorted(set(mine) - set(saved)), sorted(set(saved) - set(mine))
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: the saved model does not fit (missing {missing[:5]}, "
            f"unexpected {unexpected[:5]})"
        )
    for key, value in mine.items():
        if torch.is_tensor(value) and saved[key].shape != value.shape:
            raise CheckpointError(
                f"{path}: the saved model's {key!r} has shape {tuple(saved[key].shape)}, "
                f"the model's {tuple(value.shape)}"
            )


def load(
    path: str | os.PathLike[str],
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any | None = None,
    generator: torch.Generator | None = None,
) -> Checkpoint:
    """Restore a checkpoint written by :func:`save` into freshly built objects.

    The model's keys and shapes and the optimizer's state dict are checked before anything
    changes (a descentlab optimizer rejects a foreign state dict untouched), so a checkpoint
    that does not fit raises :class:`CheckpointError` and leaves the objects as they were.

    Returns:
        the checkpoint's path, ``step`` and ``extra``.
    """
    path = Path(path)
    payload = _read(path)
    _check_model(path, model, payload["model"])
    if (scheduler is None) != (payload["scheduler"] is None):
        raise CheckpointError(
            f"{path}: a scheduler was {'not ' if payload['scheduler'] is None else ''}saved, "
            f"and {'one' if scheduler is not None else 'none'} was given"
        )
    try:
        optimizer.load_state_dict(payload["optimizer"])
    except (ValueError, KeyError, RuntimeError) as e:
        raise CheckpointError(f"{path}: the saved optimizer does not fit: {e}") from e
    model.load_state_dict(payload["model"])
    if scheduler is not None:
        scheduler.load_state_dict(payload["scheduler"])
    if generator is not None and payload["generator"] is not None:
        generator.set_state(payload["generator"])
    _set_rng_states(payload["rng"])
    return Checkpoint(path=path, step=payload["step"], extra=payload["extra"])
