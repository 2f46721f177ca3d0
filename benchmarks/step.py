"""Time ``optimizer.step()`` for every descentlab optimizer against torch.optim and the peers.

Run: ``.venv/bin/python benchmarks/step.py [--quick] [--only adam,radam] [--settings b]
[--values 4194304] [--rounds 7] [--json out.json]``

In one process, for (a) one float32 tensor of 16M values and (b) about 200 tensors shaped like
a conv net totalling about 16M, and for each algorithm: every contestant (descentlab's fast and
readable paths, torch.optim's foreach and fused paths, the peer packages) gets its own copy of
the same parameters and gradient; their steps are interleaved round-robin with the bandwidth reference
``x += a y``, and the median time of a step is reported with

* ``vs torch`` / ``vs peer``: the fastest torch.optim path's (fastest peer's) time over this
  one's (above 1: faster);
* ``roofline``: minimum bytes one step must move (``contestants.bytes_per_param``) / time,
  over the bandwidth of ``x += a y`` measured in the same rounds (12 bytes per value: the
  access pattern of an optimizer step, streams read and written back in place; a plain copy
  with ordinary stores also reads each destination line before writing it, so counting it
  as 8 bytes per value would understate the bandwidth);
* ``paired``: the roofline round by round, each round's step against the reference timed in
  the same round, the median over the rounds (robust where the machine's bandwidth drifts
  between rounds, as on our VM: its reference ranged over 26-38 GB/s between races of one run);
* ``best ms``: the fastest of the rounds (what an idle machine would give, about);
* ``first``: the first step (state allocation, kernel loading or compiling);
* ``faults/page``: minor page faults per 4 KiB page of parameters per step, over the timed
  steps; above ~0.01 means full-size temporaries are allocated every step.

``--quick`` runs 1M values and fewer rounds: a smoke run (2 minutes on our 2-core machine
while other jobs ran on it). Its times are not meaningful: 1M values fit in the caches, and ops on small tensors
are dominated by per-op costs.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import resource
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from contestants import SETTINGS, STATE_TENSORS, Contestant, bytes_per_param, contestants

from descentlab.optim.kernels import cpu as _kernels


def conv_net_shapes(total: int) -> list[tuple[int, ...]]:
    """About 200 tensors totalling about ``total`` values: 49 conv layers with a bias and a
    norm weight and bias each (widths doubling over 4 stages), and a linear classifier."""
    stages = [1] * 12 + [2] * 12 + [4] * 12 + [8] * 13
    scale = 1.0
    for _ in range(40):  # fix the base width so that the conv layers hold about 90 %
        width = max(1, round(8 * scale))
        convs = sum(a * b * width * width * 9 for a, b in zip(stages, [1, *stages[:-1]]))
        scale *= math.sqrt(0.9 * total / convs)
    width = max(1, round(8 * scale))
    shapes: list[tuple[int, ...]] = []
    for c_out, c_in in zip(stages, [1, *stages[:-1]]):
        c = c_out * width
        shapes += [(c, c_in * width, 3, 3), (c,), (c,), (c,)]
    features = stages[-1] * width
    rest = max(1, (total - sum(math.prod(s) for s in shapes)) // (features + 1))
    return [*shapes, (rest, features), (rest,)]


def make_params(setting: str, total: int) -> list[torch.Tensor]:
    shapes = [(total,)] if setting == SETTINGS[0] else conv_net_shapes(total)
    gen = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(0.1 * torch.randn(s, generator=gen)) for s in shapes]
    for p in params:
        p.grad = 0.01 * torch.randn(p.shape, generator=gen)
    return params


def _copy(params: list[torch.Tensor]) -> list[torch.Tensor]:
    """A contestant's own parameters and gradients, equal to everyone else's at the start.

    Shared tensors would let one contestant's steps steer another's trajectory (SWATS's
    switch to its cheaper SGD phase fired in some races and not in others).
    """
    copies = [torch.nn.Parameter(p.detach().clone()) for p in params]
    for copy, p in zip(copies, params):
        copy.grad = p.grad.clone()
    return copies


def _timed(fn, n: int) -> tuple[float, int]:
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.perf_counter()
    for _ in range(n):
        fn()
    elapsed = time.perf_counter() - start
    return elapsed / n, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults


def race(name: str, params: list[torch.Tensor], rounds: int, steps: int) -> dict:
    """Interleave the contestants of one algorithm; return one row per contestant."""
    numel = sum(p.numel() for p in params)
    x, y = torch.randn(numel), torch.randn(numel)
    axpy = lambda: x.add_(y, alpha=1e-9)  # noqa: E731 - the bandwidth reference
    axpy()  # also warms up the thread pool and the allocator
    racers = contestants(name)
    opts = {}
    for c in racers:  # the first step: state allocation, kernel loading, compilation
        start = time.perf_counter()
        opt = c.build(_copy(params))
        opt.step()
        c.first = time.perf_counter() - start
        opts[c.label] = opt
    copy = Contestant("x += a y", "copy", None)
    order = [*racers, copy]
    for r in range(rounds):
        for c in order[r % len(order) :] + order[: r % len(order)]:  # rotate the start
            fn = axpy if c is copy else opts[c.label].step
            fn()  # one untimed step: the caches hold someone else's data
            t, faults = _timed(fn, steps)
            c.times.append(t)
            c.faults += faults
            c.steps += steps
    del opts
    gc.collect()
    copy_bw = 3 * 4 * numel / statistics.median(copy.times)  # reads x, y; writes x
    pages = 4 * numel / 4096
    rows = []
    for c in racers:
        t = statistics.median(c.times)
        rows.append(
            dict(
                algorithm=name,
                contestant=c.label,
                kind=c.kind,
                ms=1e3 * t,
                best_ms=1e3 * min(c.times),
                roofline=bytes_per_param(name) * numel / t / copy_bw,
                # round by round against the reference timed in the same round (neighbours in
                # time: a VM whose bandwidth drifts by 20 % over a race moves both)
                paired=statistics.median(
                    bytes_per_param(name) / 12 * ref / mine
                    for mine, ref in zip(c.times, copy.times)
                ),
                first_ms=1e3 * c.first,
                faults_per_page=c.faults / pages / c.steps,
                times=[1e3 * t for t in c.times],  # per round, for paired ratios
            )
        )
    for key, kind in (("vs_torch", "torch"), ("vs_peer", "peer")):
        best = min((r["ms"] for r in rows if r["kind"] == kind), default=None)
        for r in rows:
            r[key] = best / r["ms"] if best else None
    return dict(rows=rows, copy_gbps=copy_bw / 1e9, numel=numel, tensors=len(params))


def _fmt(x, spec: str) -> str:
    return "" if x is None else format(x, spec)


def print_header(setting: str, params: list[torch.Tensor]) -> None:
    numel = sum(p.numel() for p in params)
    print(f"\n### ({setting}) {len(params)} float32 tensors, {numel / 1e6:.1f}M values\n")
    print(
        "| algorithm | contestant | ms/step | best ms | vs torch | vs peer | roofline | paired "
        "| first ms | faults/page |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")


def print_rows(result: dict) -> None:
    for r in result["rows"]:
        print(
            f"| {r['algorithm']} | {r['contestant']} | {r['ms']:.2f} | {r['best_ms']:.2f} | "
            f"{_fmt(r['vs_torch'], '.2f')} | {_fmt(r['vs_peer'], '.2f')} | "
            f"{r['roofline']:.0%} | {_fmt(r.get('paired'), '.0%')} | {r['first_ms']:.0f} | "
            f"{r['faults_per_page']:.3f} |"
        )
    sys.stdout.flush()


def _paired(other: dict | None, fast: dict) -> str:
    """``other``'s time over ``fast``'s, round by round (neighbours in time, so drift in the
    machine's speed cancels): the median and the interquartile range over the rounds."""
    if other is None:
        return ""
    if "times" not in other:  # a --json written before per-round times were kept
        return f"{other['ms'] / fast['ms']:.2f}"
    ratios = [o / f for o, f in zip(other["times"], fast["times"])]
    if len(ratios) < 2:
        return f"{ratios[0]:.2f}"
    q1, median, q3 = statistics.quantiles(ratios, n=4)
    return f"{median:.2f} ({q1:.2f}-{q3:.2f})"


def print_summary(setting: str, results: list[dict]) -> None:
    """One line per algorithm: descentlab's fast path against the fastest torch path and peer."""
    print(f"\n#### ({setting}) summary: descentlab auto against the fastest alternative\n")
    print("x torch, x peer: the other's step time over descentlab's, per round; median (IQR).\n")
    print(
        "| algorithm | descentlab ms | roofline | paired | faults/page | first ms | forloop ms "
        "| fastest torch.optim (ms) | fastest peer (ms) | x torch | x peer |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|---|---:|---:|")
    for res in results:
        rows = {r["contestant"]: r for r in res["rows"]}
        fast, slow = rows["descentlab auto"], rows["descentlab forloop"]
        best = {}
        for kind in ("torch", "peer"):
            mine = [r for r in res["rows"] if r["kind"] == kind]
            best[kind] = min(mine, key=lambda r: r["ms"]) if mine else None
        cells = [
            f"{best[k]['contestant']} ({best[k]['ms']:.1f})" if best[k] else "none"
            for k in ("torch", "peer")
        ]
        ratios = [_paired(best[k], fast) for k in ("torch", "peer")]
        print(
            f"| {fast['algorithm']} | {fast['ms']:.1f} | {fast['roofline']:.0%} | "
            f"{_fmt(fast.get('paired'), '.0%')} | "
            f"{fast['faults_per_page']:.3f} | {fast['first_ms']:.0f} | {slow['ms']:.1f} | "
            f"{cells[0]} | {cells[1]} | {ratios[0]} | {ratios[1]} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1M values, 2 rounds (smoke run)")
    parser.add_argument("--only", default="", help="comma-separated algorithm names")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument(
        "--settings", default="a,b", help="which workloads: a (one tensor), b (200 tensors)"
    )
    parser.add_argument(
        "--values", type=int, default=None, help="values per workload (default 2^24; --quick 2^20)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--report", type=Path, default=None, help="print the tables of a --json")
    args = parser.parse_args()
    if args.report:
        for setting, results in json.loads(args.report.read_text()).items():
            print_summary(setting, results)
        return
    warnings.filterwarnings("ignore")  # peers' deprecation chatter
    total = args.values or (1 << 20 if args.quick else 1 << 24)
    rounds = args.rounds or (2 if args.quick else 7)
    steps = 2 if args.quick else 3  # timed steps per contestant per round
    names = [n for n in args.only.split(",") if n] or list(STATE_TENSORS)

    # The first torch optimizer built in a process imports torch._dynamo (about 1 s, for
    # torch.optim's too): paid here, so that no contestant's first step carries it.
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    start = time.perf_counter()
    reason = _kernels.unavailable_reason()
    ready = time.perf_counter() - start
    print(
        f"# torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}; descentlab kernels: "
        + (f"UNAVAILABLE ({reason})" if reason else f"ready in {ready:.1f} s")
        + f" ({_kernels.build_directory()})"
    )
    everything = {}
    letters = [k for k in args.settings.split(",") if k]
    if not letters or not set(letters) <= {"a", "b"}:
        parser.error(f"--settings takes a, b or a,b; got {args.settings!r}")
    chosen = [SETTINGS["ab".index(k)] for k in letters]
    for setting in chosen:
        params = make_params(setting, total)
        print_header(setting, params)
        results = []
        for name in names:
            results.append(race(name, params, rounds, steps))
            print_rows(results[-1])
        copy = statistics.median(r["copy_gbps"] for r in results)
        print(f"\nx += a y bandwidth: {copy:.1f} GB/s (median over the algorithms' races)")
        print_summary(setting, results)
        everything[setting] = results
        del params
        gc.collect()
    if args.json:
        args.json.write_text(json.dumps(everything, indent=1))
        print(f"\n# rows written to {args.json}")


if __name__ == "__main__":
    main()
