"""Overhead of ``descentlab.diagnostics.track`` on a training step (CPU, small MLP).

Times a full step (forward, backward, ``optimizer.step()``) with and without tracking, for
every=1 and every=10, interleaving the variants and reporting medians over repeats::

    python benchmarks/track_overhead.py [--steps 100] [--repeats 5] [--optimizer adam]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

import descentlab
from descentlab.diagnostics import track


def _time(optimizer_name: str, steps: int, every: int | None) -> float:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)
    )
    opt = descentlab.create(optimizer_name, model.parameters())
    x, y = torch.randn(128, 784), torch.randint(0, 10, (128,))
    tracker = track(opt, model=model, every=every) if every else None

    def step() -> None:
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    for _ in range(5):  # warm-up
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    elapsed = (time.perf_counter() - start) / steps
    if tracker is not None:
        tracker.detach()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--optimizer", default="adam")
    args = parser.parse_args()
    variants = {"untracked": None, "track every=1": 1, "track every=10": 10}
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.repeats):
        for name, every in variants.items():
            times[name].append(_time(args.optimizer, args.steps, every))
    base = statistics.median(times["untracked"])
    print(
        f"{args.optimizer}, MLP 784-256-256-10 (269k parameters), batch 128, CPU, "
        f"torch threads {torch.get_num_threads()}"
    )
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:>16}: {med * 1e3:7.3f} ms/step  (+{(med / base - 1) * 100:5.1f}%)")


if __name__ == "__main__":
    main()
