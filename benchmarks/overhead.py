"""The per-step Python cost of ``optimizer.step()``: descentlab against torch.optim's fused path
(its foreach path where torch has no fused kernel).

Run: ``.venv/bin/python benchmarks/overhead.py [--tensors 198] [--rounds 30] [--only sgd,adam]``

The parameters are ``--tensors`` tensors of 4 values each, so that a step costs what the Python
around the kernels costs (benchmarks/step.py's workload (b) has the same number of tensors, and
there a step of plain SGD is about 5.5 ms). Two cases: the same gradient tensors every step
(``zero_grad(set_to_none=False)``, as in step.py) and new ones every step (``set_to_none=True``,
the default of a training loop). The contestants' steps are interleaved, and each time is the
CPU time of this thread (``time.thread_time``: another process on the machine does not count),
median over the rounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from contestants import LR, TORCH, TORCH_FUSED

import descentlab


def _builders(name: str) -> dict:
    """descentlab's optimizer and torch's: its fused path where torch has one, else foreach
    (none where torch has no such optimizer)."""
    ours = {"descentlab": lambda ps: descentlab.create(name, ps, lr=LR)}
    if name not in TORCH:
        return ours
    path, kwargs = TORCH[name]
    module, _, attr = path.rpartition(".")
    cls = getattr(sys.modules[module], attr)
    flag = "fused" if name in TORCH_FUSED else "foreach"
    return {**ours, f"{path} {flag}": lambda ps: cls(ps, lr=LR, **{flag: True}, **kwargs)}


def race(name: str, tensors: int, rounds: int, fresh: bool, steps: int = 20) -> dict[str, float]:
    """Median microseconds per step of each contestant."""
    params = [torch.nn.Parameter(torch.randn(4)) for _ in range(tensors)]
    pool = [[torch.randn(4) for _ in params] for _ in range(2)]
    for p, g in zip(params, pool[0]):
        p.grad = g
    opts = {label: build(params) for label, build in _builders(name).items()}
    for opt in opts.values():
        opt.step()  # state allocation
    times: dict[str, list[float]] = {label: [] for label in opts}
    for r in range(rounds):
        labels = list(opts)[r % 2 :] + list(opts)[: r % 2]
        for label in labels:
            total = 0.0
            for i in range(steps):
                if fresh:
                    for p, g in zip(params, pool[i % 2]):
                        p.grad = g
                start = time.thread_time()
                opts[label].step()
                total += time.thread_time() - start
            times[label].append(1e6 * total / steps)
    return {label: statistics.median(ts) for label, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tensors", type=int, default=198)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument(
        "--only", default="", help="comma-separated names (default: all torch-fused)"
    )
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or sorted(TORCH_FUSED, key=list(TORCH).index)
    print(f"# {args.tensors} tensors of 4 values, torch {torch.__version__}, us per step (CPU)")
    print("\n| algorithm | gradients | descentlab | torch.optim (fused, else foreach) | ratio |")
    print("|---|---|---:|---:|---:|")
    for name in names:
        for fresh in (False, True):
            res = race(name, args.tensors, args.rounds, fresh)
            mine = res.pop("descentlab")
            theirs = f"{next(iter(res.values())):.0f} ({next(iter(res))})" if res else "none"
            ratio = f"{next(iter(res.values())) / mine:.2f}" if res else ""
            gradients = "new each step" if fresh else "same tensors"
            print(f"| {name} | {gradients} | {mine:.0f} | {theirs} | {ratio} |")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
