"""The trial runner's overhead over a bare training loop (target: at most 5 %, CPU and GPU).

Both train the same task (the problem's model and batches, on the device) with the same
optimizer for the same steps and evaluate every split before training and after every epoch, as
a trial does; the
bare loop is ``zero_grad, loss, backward, step, float(loss)`` and nothing else. The runner adds
the axes' hooks, the per-epoch history and curves, the seeding, the placement and the result
record. Each round runs both, the first alternating between rounds, and the overhead is the median of the paired ratios
``runner / bare - 1`` with its interquartile range, so that a slow moment of a shared machine
hits both sides of a pair.

    python benchmarks/runner_overhead.py                       # digits-mlp, CPU
    python benchmarks/runner_overhead.py --device cuda --problem mnist1d-cnn --epochs 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from descentlab.lab import run_trial
from descentlab.lab._build import build_optimizer, load_problem
from descentlab.lab.devices import resolve
from descentlab.problems import SPLITS
from descentlab.store import Trial


def bare(trial: Trial, device: torch.device) -> float:
    """Seconds of a plain loop over the trial's task (per-epoch evaluation included)."""
    start = time.perf_counter()
    task = load_problem(trial.problem).build(
        trial.seed, batch_size=trial.batch_size, **trial.options
    )
    if device.type != "cpu":
        task = task.to(device)
    torch.manual_seed(trial.seed)
    opt = build_optimizer(trial.optimizer, task.model.parameters(), dict(trial.hparams))
    model, criterion = task.model, task.criterion
    for split in SPLITS:  # epoch 0, before training, as a trial records it
        task.evaluate(split)
    for _ in range(trial.epochs):
        model.train()
        for x, y in task.epoch_batches():
            opt.zero_grad(set_to_none=True)
            loss = criterion(model(x), y)
            loss.backward()
            opt.step()
            float(loss.detach())
        for split in SPLITS:
            task.evaluate(split)
    return time.perf_counter() - start


def runner(trial: Trial, device: torch.device) -> float:
    """Seconds of :func:`descentlab.lab.run_trial` on the same trial."""
    start = time.perf_counter()
    result = run_trial(trial, device=device)
    if result.status != "finished":
        raise RuntimeError(result.error)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", default="digits-mlp")
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = resolve(args.device)
    trial = Trial(
        args.problem,
        0,
        args.epochs,
        args.batch_size,
        args.optimizer,
        hparams={"lr": 1e-3},
        device=device.type,
    )
    torch.set_num_threads(1)  # as a trial runs
    bare(trial, device), runner(trial, device)  # warm-up: imports, data caches, kernels
    ratios, seconds = [], []
    for i in range(args.rounds):
        if i % 2:  # which side goes first alternates
            r, b = runner(trial, device), bare(trial, device)
        else:
            b, r = bare(trial, device), runner(trial, device)
        ratios.append(r / b - 1)
        seconds.append((b, r))
    q1, median, q3 = statistics.quantiles(ratios, n=4)
    steps = result_steps(trial, device)
    print(
        f"{args.problem} / {args.optimizer} on {device}: {steps} steps, {args.epochs} epochs, "
        f"{args.rounds} paired rounds"
    )
    print(f"bare loop  : median {statistics.median(b for b, _ in seconds):.3f} s")
    print(f"run_trial  : median {statistics.median(r for _, r in seconds):.3f} s")
    print(f"overhead   : {100 * median:+.1f} % (IQR {100 * q1:+.1f} .. {100 * q3:+.1f} %)")


def result_steps(trial: Trial, device: torch.device) -> int:
    return run_trial(trial, device=device).summary["steps"]


if __name__ == "__main__":
    main()
