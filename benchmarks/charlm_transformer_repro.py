"""Reproduce nanoGPT's CPU run of ``shakespeare_char`` with the ``charlm-transformer`` problem.

Run: ``python benchmarks/charlm_transformer_repro.py [--text FILE] [--iters 2000] [--seeds 5]
[--n-eval 200] [--threads 1]``

nanoGPT's README ("I only have a macbook") trains its 4-layer, 4-head, 128-wide GPT with context
64 and batch 12, no dropout, for 2,000 iterations and reports a validation loss of about 1.88 on
tiny Shakespeare (``--eval_iters=20``). The protocol here is nanoGPT's ``train.py`` with those
flags: AdamW (descentlab's) with lr 1e-3, betas (0.9, 0.99), weight decay 0.1 on the 2-D weights
only, gradients clipped to norm 1.0, linear warm-up over 100 iterations then cosine decay to 1e-4
at the last iteration (``descentlab.schedules``' ``warmup`` + ``cosine``, i.e. torch's
``LinearLR`` and ``CosineAnnealingLR``). ``--iters`` other than 2,000 keep the warm-up at 5% of
the run (nanoGPT's 100 of 2,000). Each seed is one run; the script prints each run's final loss
on the fixed validation windows (``n_eval`` batches of 12) and on the second fixed draw
(``test``), its time per iteration, then the median and interquartile range of the final val loss
over the seeds. Times are wall-clock; the CPU seconds beside them show how much of it others took.

By default the text is ``../shared/data/tinyshakespeare.txt`` next to the repository (the
1,115,394 characters of karpathy/char-rnn's ``data/tinyshakespeare/input.txt``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from descentlab import optim, schedules
from descentlab.problems import train
from descentlab.problems.charlm_transformer import CHARLM_TRANSFORMER

NANOGPT_VAL_LOSS = 1.88  # nanoGPT README, CPU configuration, 2,000 iterations
_TEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


def run(seed: int, *, text: Path, iters: int, n_eval: int) -> dict[str, float]:
    """One nanoGPT run: the final val and test loss, ms per iteration, wall and CPU seconds."""
    start, cpu = time.perf_counter(), time.process_time()
    task = CHARLM_TRANSFORMER.build(
        seed, text_file=str(text), steps_per_epoch=iters, n_eval=n_eval, grad_clip=1.0
    )
    opt = optim.create(
        "adamw", task.param_groups()["model"], lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1
    )
    warmup = max(1, round(iters * 100 / 2000))
    sched = schedules.create(
        "warmup", opt, total_steps=iters, warmup_steps=warmup, after="cosine", eta_min=1e-4
    )
    history = train(
        task,
        {"model": opt},
        1,
        lambda step, loss: sched.step(),
        eval_splits=(),
        final_splits=("val", "test"),
    )
    return {
        "val": history.final["val"]["loss"],
        "test": history.final["test"]["loss"],
        "ms_per_iter": 1e3 * history.train_time / history.steps,
        "seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu,  # below seconds when others share the cores
        "diverged": history.diverged,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text", type=Path, default=_TEXT, help="the corpus (tiny Shakespeare)")
    parser.add_argument("--iters", type=int, default=2000, help="iterations per run")
    parser.add_argument("--seeds", type=int, default=5, help="runs, seeds 0..N-1")
    parser.add_argument("--n-eval", type=int, default=200, help="evaluation batches of 12")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    if not args.text.is_file():
        parser.error(
            f"--text {args.text} does not exist; tiny Shakespeare is karpathy/char-rnn's "
            "data/tinyshakespeare/input.txt"
        )
    if args.iters < 2 or args.seeds < 1:
        parser.error("--iters must be >= 2 and --seeds >= 1")
    torch.set_num_threads(args.threads)
    print(f"{args.text}: {args.iters} iterations, {args.seeds} seeds, n_eval {args.n_eval}")
    vals = []
    for seed in range(args.seeds):
        r = run(seed, text=args.text, iters=args.iters, n_eval=args.n_eval)
        vals.append(r["val"])
        print(
            f"seed {seed}: val {r['val']:.4f}  test {r['test']:.4f}  "
            f"{r['ms_per_iter']:.1f} ms/iter  {r['seconds']:.0f} s ({r['cpu_seconds']:.0f} s CPU)"
            + ("  DIVERGED" if r["diverged"] else ""),
            flush=True,
        )
    q1, median, q3 = np.percentile(vals, [25, 50, 75])
    print(f"final val loss: median {median:.4f}, IQR [{q1:.4f}, {q3:.4f}] over {len(vals)} seeds")
    within = abs(median - NANOGPT_VAL_LOSS) <= 0.05
    print(
        f"nanoGPT reports {NANOGPT_VAL_LOSS} after 2,000 iterations: the median is "
        f"{'within' if within else 'outside'} +-0.05 of it"
        + ("" if args.iters == 2000 else f" (this run had {args.iters} iterations)")
    )


if __name__ == "__main__":
    main()
