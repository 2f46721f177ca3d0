"""Where trials run: in this process, in a local process pool, or on a Ray cluster.

Every backend runs the same function (:func:`~descentlab.lab.loop.run_trial`, one torch thread per
trial) and hands results back to the sweep, which alone writes the store; so the three give the
same rows. A backend has ``slots`` (trials it runs at once), ``submit(key, trial)`` and
``wait()`` (the next finished ``(key, result)``, a :class:`~descentlab.store.TrialResult`).

On GPUs, the pool runs one worker per GPU slot (:func:`descentlab.lab.devices.slots`:
``trials_per_gpu`` on each GPU) and hands each trial a free slot's device; Ray asks for
``1 / trials_per_gpu`` of a GPU per trial and runs it on the GPU Ray gives it.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor
from concurrent.futures import wait as wait_futures
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

import torch

from ..store import Trial, TrialResult
from .devices import slots as gpu_slots
from .loop import run_trial

__all__ = ["BACKENDS", "Backend", "open_backend"]

BACKENDS = ("pool", "ray")


class Backend(Protocol):
    """Runs trials; results come back in completion order."""

    slots: int

    def submit(self, key: str, trial: Trial) -> None: ...

    def wait(self) -> tuple[str, TrialResult]: ...

    def close(self) -> None: ...


class Serial:
    """Runs each trial in this process when its result is asked for."""

    slots = 1

    def __init__(self, data_dir: str | None, device: torch.device) -> None:
        self._queue: deque[tuple[str, Trial]] = deque()
        self._data_dir, self._device = data_dir, device

    def submit(self, key: str, trial: Trial) -> None:
        self._queue.append((key, trial))

    def wait(self) -> tuple[str, TrialResult]:
        key, trial = self._queue.popleft()
        return key, run_trial(trial, data_dir=self._data_dir, device=self._device)

    def close(self) -> None:
        self._queue.clear()


def _context() -> multiprocessing.context.BaseContext:
    """Fresh processes, never a fork of this one (whose torch threads may hold locks).

    Where available, a fork server that has imported torch and the trial loop once starts the
    workers (fast); elsewhere each worker is spawned and imports them itself.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


class Pool:
    """A local pool of processes, one per slot (a device), each running one trial at a time."""

    def __init__(self, devices: list[torch.device], data_dir: str | None) -> None:
        self.slots = len(devices)
        self._free = list(reversed(devices))
        self._data_dir = data_dir
        self._pool = ProcessPoolExecutor(self.slots, mp_context=_context())
        self._futures: dict[Future, tuple[str, torch.device]] = {}

    def submit(self, key: str, trial: Trial) -> None:
        device = self._free.pop()
        future = self._pool.submit(run_trial, trial, data_dir=self._data_dir, device=str(device))
        self._futures[future] = key, device

    def wait(self) -> tuple[str, TrialResult]:
        done, _ = wait_futures(self._futures, return_when=FIRST_COMPLETED)
        future = next(iter(done))
        key, device = self._futures.pop(future)
        self._free.append(device)
        try:
            return key, future.result()
        except BrokenProcessPool as e:  # a worker died (killed, out of memory): a new pool
            self._pool.shutdown(wait=False)
            self._pool = ProcessPoolExecutor(self.slots, mp_context=_context())
            return key, TrialResult.failure(f"the worker running this trial died: {e}")

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class Ray:
    """Trials as Ray tasks of one CPU each (and ``1 / trials_per_gpu`` of a GPU for a CUDA
    device), on ``ray.init(address=...)`` or a local instance.

    A local instance gets this process's ``sys.path`` so that users' problems (``module:function``)
    import on the workers as they do here.
    """

    def __init__(
        self,
        workers: int | None,
        address: str | None,
        data_dir: str | None,
        device: torch.device,
        trials_per_gpu: int,
    ) -> None:
        try:
            import ray
        except ImportError as e:
            raise RuntimeError(
                "--backend ray needs Ray: pip install 'descentlab[ray]' (or 'ray[default]')"
            ) from e
        self._ray = ray
        self._owns = not ray.is_initialized()
        if self._owns:
            local = {"num_cpus": workers} if address is None and workers else {}
            path = os.pathsep.join(p for p in sys.path if p)
            ray.init(
                address=address,
                runtime_env={"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"}},
                include_dashboard=False,
                log_to_driver=False,
                **local,
            )
        resources = ray.cluster_resources()
        gpus = 0.0
        if device.type == "cuda":
            gpus = 1.0 / trials_per_gpu
            fit = int(resources.get("GPU", 0) * trials_per_gpu)
            self.slots = min(workers, fit) if workers else fit
            if self.slots < 1:
                raise RuntimeError("--backend ray --device cuda: the Ray cluster has no GPU")
        else:
            self.slots = workers or max(1, int(resources.get("CPU", 1)))
        # A task whose worker process dies is retried (Ray's default of 3, made explicit).
        self._remote = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=3)(run_trial)
        self._device = device.type  # Ray makes the GPU it gives a task that task's "cuda"
        self._data_dir = data_dir
        self._refs: dict[Any, str] = {}

    def submit(self, key: str, trial: Trial) -> None:
        ref = self._remote.remote(trial, data_dir=self._data_dir, device=self._device)
        self._refs[ref] = key

    def wait(self) -> tuple[str, TrialResult]:
        (ref,), _ = self._ray.wait(list(self._refs), num_returns=1)
        key = self._refs.pop(ref)
        try:
            return key, self._ray.get(ref)
        except self._ray.exceptions.RayError as e:  # the worker or its node died
            return key, TrialResult.failure(f"the Ray task running this trial failed: {e}")

    def close(self) -> None:
        for ref in self._refs:
            self._ray.cancel(ref, force=True)
        self._refs.clear()
        if self._owns:
            self._ray.shutdown()


def open_backend(
    backend: str,
    *,
    workers: int | None,
    address: str | None,
    data_dir: str | None,
    device: torch.device | None = None,
    trials_per_gpu: int = 1,
) -> Backend:
    """``"pool"`` (one slot: this process, no pool) or ``"ray"``, running trials on ``device``.

    On the CPU the pool has ``workers`` processes; on CUDA one per GPU slot (at most
    ``workers`` if given).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend: {backend!r}; allowed: {', '.join(BACKENDS)}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers: {workers}; expected an integer >= 1")
    device = torch.device("cpu") if device is None else device
    slots = gpu_slots(device, trials_per_gpu)
    if backend == "ray":
        return Ray(workers, address, data_dir, device, trials_per_gpu)
    if device.type == "cuda":
        slots = slots[:workers] if workers else slots
    else:
        slots = slots * (workers or 1)
    if len(slots) == 1:
        return Serial(data_dir, slots[0])
    return Pool(slots, data_dir)
