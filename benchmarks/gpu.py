"""Issue 14 on the GPU: parity of every fast path in float64, then the step benchmark.

Run on the GPU machine (one device call, at most 8 minutes; ``--budget`` stops early)::

    PYTHONPATH=. python benchmarks/gpu.py [--only adam,radam] [--settings a,b] [--rounds 20]
        [--skip compile,graphs,forloop] [--json out.json]

and on CPU under the Triton interpreter at toy sizes, so that the first GPU run cannot fail on a
typo: ``python benchmarks/gpu.py --device cpu --toy`` (about a minute). Not yet run on a GPU:
the Triton JIT (about 1 s per kernel variant, cached on disk across processes) and inductor's
compilation of torch's foreach steps come on top of the races; if one call would exceed 8
minutes, run ``--settings a`` and ``--settings b --skip parity`` as two calls, or
``--skip compile``.

1. **Parity** (float64, on the device, a few steps): every registry optimizer and wrapper with
   ``impl="fused"`` against ``impl="forloop"``, and each Triton kernel driven directly
   (:class:`OnTriton`: the optimizer's own dispatch with the Triton kernels chosen for every
   bucket) against the readable path; the largest relative difference per name.
2. **Benchmark**, per workload: (a) one float32 tensor of 2^28 values, (b) a GPT-2-style
   transformer of about 1,000 tensors and 350M values (64 layers of width 640 with separate
   q/k/v/o: 1,028 tensors, 347M values; GPT-2 medium's own 292 tensors hold 355M). For each
   algorithm: descentlab's paths, the Triton kernels directly, torch.optim's foreach and fused
   paths, ``torch.compile`` of torch's foreach step where torch has no fused kernel, and the
   peers (``benchmarks/contestants.py``). Each contestant steps its own copy of the parameters;
   rounds are interleaved (rotating start) with an in-place copy ``x.copy_(y)`` whose bandwidth
   (8 bytes per value) is the roofline; CUDA events time each step; the median over the rounds
   (at least 20) is reported, with paired per-round ratios against torch's fastest path, and
   the first step (allocation, JIT compilation) separately.
3. **CUDA graphs**: parity first (every optimizer with ``capturable=True``, one step captured
   and replayed 7 times with new gradients, against the eager readable path in float64), then
   workload (b) again, each capturable contestant captured in a ``torch.cuda.CUDAGraph`` and
   replayed (launch overhead gone). On CPU (``--toy``) the "replay" is the eager step: the
   parity's plumbing runs, the graph is checked only on a GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import inspect
import json
import math
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from contestants import LR, TORCH, TORCH_FUSED, _resolve, bytes_per_param, contestants
from step import _copy, _paired

import descentlab

F64 = torch.float64
# every optimizer with descentlab's Triton kernels (those torch also has included: on CUDA
# they take torch's fused kernel, so the parity table forces the Triton path for them)
DIRECT = ("rmsprop", "nadam", "radam", "adabound", "amsbound", "sgd", "sgdm", "nag", "sgdw",
          "sgdwm", "adagrad", "adam", "amsgrad", "adamw", "swats", "adopt", "ademamix", "lion",
          "schedule-free-adamw", "schedule-free-sgd", "lookahead(adam)")  # fmt: skip
WD = 5e-4


# ------------------------------------------------------------------ workloads
def transformer_shapes(layers: int, width: int, vocab: int = 50257, ctx: int = 1024) -> list:
    """GPT-2's layout with separate q, k, v, o projections: 16 tensors per layer."""
    d, shapes = width, [(vocab, width), (ctx, width)]
    for _ in range(layers):
        shapes += [(d,), (d,)]  # ln_1
        for _ in range(4):  # q, k, v, o
            shapes += [(d, d), (d,)]
        shapes += [(d,), (d,), (4 * d, d), (4 * d,), (d, 4 * d), (d,)]  # ln_2, mlp
    return [*shapes, (d,), (d,)]  # ln_f


def workload(setting: str, toy: bool) -> list[tuple[int, ...]]:
    if setting == "a":
        return [(1 << 12,)] if toy else [(1 << 28,)]
    return transformer_shapes(1, 8, vocab=64, ctx=16) if toy else transformer_shapes(64, 640)


def make_params(shapes, device, dtype=torch.float32, seed=0) -> list[torch.nn.Parameter]:
    gen = torch.Generator(device=device).manual_seed(seed)
    params = []
    for s in shapes:
        p = torch.nn.Parameter(0.1 * torch.randn(s, generator=gen, device=device, dtype=dtype))
        p.grad = 0.01 * torch.randn(s, generator=gen, device=device, dtype=dtype)
        params.append(p)
    return params


# ------------------------------------------------------------------ the Triton kernels
@contextlib.contextmanager
def _triton_chosen() -> Iterator[None]:
    """``kernels.select`` handing descentlab's Triton kernels to every bucket that takes
    compiled kernels: also the SGD family's (which on CUDA takes torch's fused kernel by
    default) and, under ``TRITON_INTERPRET=1``, CPU tensors'; ``rules.select`` handing a rule
    optimizer's buckets the Triton kernels generated from its rule."""
    from descentlab.optim import kernels
    from descentlab.optim.kernels import rules
    from descentlab.optim.kernels import triton as tk

    original, original_rules = kernels.select, rules.select

    def select(device, *, compiled, **kwargs):
        return tk if compiled else original(device, compiled=compiled, **kwargs)

    kernels.select = select
    rules.select = lambda rule, device, **kwargs: rules.compiled(rule, "cuda")
    try:
        yield
    finally:
        kernels.select, rules.select = original, original_rules


class OnTriton:
    """A registry optimizer (or ``lookahead(adam)``) stepping through its own dispatch and
    scalar math, on the Triton kernels (see :func:`_triton_chosen`): what its ``step()`` does on
    a CUDA machine, here also for the SGD family and for CPU tensors, to race and check the
    kernels."""

    def __init__(self, name: str, params: list[torch.Tensor], **hparams) -> None:
        self.opt = descentlab.create(name, params, impl="fused", **hparams)

    def step(self) -> None:
        with _triton_chosen():
            self.opt.step()


# ------------------------------------------------------------------ parity
def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


def parity(device: torch.device, names: list[str], steps: int = 6) -> list[dict]:
    """Fast paths against the readable path, float64 on ``device`` (6 steps: one Lookahead
    synchronisation)."""
    shapes = [(), (7,), (5, 13), (300,)]
    rows = []

    def race(label: str, build_fast: Callable, name: str) -> None:
        ours, theirs = make_params(shapes, device, F64), make_params(shapes, device, F64)
        hp = {"weight_decay": WD} if name in ("sgdw", "sgdwm") else {}
        try:
            fast = build_fast(ours, hp)
            slow = descentlab.create(name, theirs, impl="forloop", **hp)
            for t in range(steps):
                gen = torch.Generator(device=device).manual_seed(t)
                for p, q in zip(ours, theirs):
                    q.grad = 0.3 * q.detach() + torch.randn(q.shape, generator=gen, device=device,
                                                            dtype=F64)  # fmt: skip
                    p.grad = q.grad.clone()
                fast.step()
                slow.step()
            diff = max(_relative(p.detach(), q.detach()) for p, q in zip(ours, theirs))
            rows.append(
                dict(path=label, name=name, max_rel=diff, ok="yes" if diff < 1e-10 else "NO")
            )
        except Exception as exc:  # a path that cannot run here is reported, not fatal
            rows.append(dict(path=label, name=name, max_rel=None, ok="n/a",
                             error=f"{type(exc).__name__}: {str(exc)[:120]}"))  # fmt: skip

    for name in names:
        race(
            "impl=fused", lambda ps, hp, n=name: descentlab.create(n, ps, impl="fused", **hp), name
        )
    for name in [n for n in DIRECT if n in names]:
        race("triton", lambda ps, hp, n=name: OnTriton(n, ps, **hp), name)
    return _print_parity(f"Parity: float64 on {device} ({steps} steps, largest relative "
                         "difference)", rows)  # fmt: skip


# ------------------------------------------------------------------ timing
class Clock:
    """CUDA events on a GPU, ``perf_counter`` elsewhere; ``time(fn)`` returns milliseconds."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def start(self):
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def stop(self, start) -> Callable[[], float]:
        """A callable giving the elapsed ms (valid after ``sync``)."""
        if self.cuda:
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            return lambda: start.elapsed_time(end)
        elapsed = 1e3 * (time.perf_counter() - start)
        return lambda: elapsed


def _torch_class(name: str, flag: str, capturable: bool = False) -> Callable | None:
    if name not in TORCH:
        return None
    path, kw = TORCH[name]
    cls = _resolve(path)
    takes = "capturable" in inspect.signature(cls).parameters
    extra = {"capturable": True} if capturable and takes else {}
    return lambda ps: cls(ps, lr=LR, **kw, **{flag: True}, **extra)


def racers(name: str, skip: set[str], backend: str) -> list[tuple]:
    """(label, kind, build) of every contestant of ``name``; build(params) -> step function."""
    out = [
        (c.label, c.kind, lambda ps, b=c.build: b(ps).step)
        for c in contestants(name)
        if not ("forloop" in skip and c.label.endswith("forloop"))
    ]
    if name in DIRECT:
        hp = {"weight_decay": WD} if name in ("sgdw", "sgdwm") else {}
        if name == "swats":
            hp["switch_tol"] = 0.0  # stay in the Adam phase, as benchmarks/contestants.py does
        out.append(("descentlab triton", "descentlab", lambda ps: OnTriton(name, ps, **hp).step))
    foreach = _torch_class(name, "foreach")
    if foreach and name not in TORCH_FUSED and "compile" not in skip:

        def compiled(ps, make=foreach):
            opt = make(ps)
            return torch.compile(opt.step, backend=backend)

        out.append((f"torch.compile({TORCH[name][0]} foreach)", "torch", compiled))
    return out


def race(name: str, params, rounds: int, clock: Clock, skip: set[str], backend: str) -> dict:
    numel = sum(p.numel() for p in params)
    x = torch.empty(numel, device=params[0].device)
    y = torch.randn(numel, device=params[0].device)
    steps = {}
    first = {}
    for label, kind, build in racers(name, skip, backend):
        try:
            clock.sync()
            start = time.perf_counter()
            step = build(_copy(params))
            step()
            clock.sync()
            first[label] = (kind, 1e3 * (time.perf_counter() - start))
            steps[label] = step
        except Exception as exc:  # a peer or path that cannot run here is left out, loudly
            print(f"# {name}: {label} left out: {type(exc).__name__}: {str(exc)[:160]}")
    order = [*steps, "copy"]
    times: dict[str, list[float]] = {k: [] for k in order}
    for r in range(rounds):
        pending = []
        for label in order[r % len(order) :] + order[: r % len(order)]:
            fn = (lambda: x.copy_(y)) if label == "copy" else steps[label]
            start = clock.start()
            fn()
            pending.append((label, clock.stop(start)))
        clock.sync()
        for label, elapsed in pending:
            times[label].append(elapsed())
    del steps
    copy_bw = 8 * numel / (statistics.median(times["copy"]) / 1e3)  # reads y, writes x
    rows = []
    for label, (kind, first_ms) in first.items():
        ms = statistics.median(times[label])
        rows.append(dict(algorithm=name, contestant=label, kind=kind, ms=ms, times=times[label],
                         roofline=bytes_per_param(name) * numel / (ms / 1e3) / copy_bw,
                         first_ms=first_ms))  # fmt: skip
    return dict(rows=rows, copy_gbps=copy_bw / 1e9, numel=numel, tensors=len(params))


def capture(
    step: Callable[[], None], warmup: int, generators: tuple | list = ()
) -> Callable[[], None]:
    """``step`` captured in a ``torch.cuda.CUDAGraph`` after ``warmup`` eager calls on a side
    stream (torch's recipe), with ``generators`` registered; its ``replay``. Elsewhere
    (``--toy`` on CPU) the step itself, so that the parity below runs end to end there (it
    checks the graph only on a GPU)."""
    if not torch.cuda.is_available():
        for _ in range(warmup):
            step()
        return step
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(warmup):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    for gen in generators:
        graph.register_generator_state(gen)
    with torch.cuda.graph(graph):
        step()
    return graph.replay


def graph_parity(device: torch.device, names: list[str], steps: int = 7) -> list[dict]:
    """Each optimizer with ``capturable=True``, one step captured in a CUDA graph (after one
    eager warm-up step) and replayed ``steps`` times with new gradients copied into the same
    tensors, against the readable path stepped eagerly: float64 on ``device``, the largest
    relative difference (Lookahead k=5: the replays cross a synchronisation; GradientNoise's
    CUDA generator registered with the graph)."""
    shapes = [(), (7,), (5, 13), (300,)]
    rows = []
    for name in names:
        ours, theirs = make_params(shapes, device, F64), make_params(shapes, device, F64)
        for p in [*ours, *theirs]:
            p.grad = torch.zeros_like(p)
        hp = {"weight_decay": WD} if name in ("sgdw", "sgdwm") else {}
        gens = [torch.Generator(device=device).manual_seed(0) for _ in range(2)]
        noise = [{"generator": g} if "noisy" in name else {} for g in gens]
        try:
            fast = descentlab.create(name, ours, capturable=True, **hp, **noise[0])
            slow = descentlab.create(name, theirs, impl="forloop", **hp, **noise[1])
            _same_grads(ours, theirs, 0)
            slow.step()
            replay = capture(fast.step, warmup=1, generators=gens[:1] if noise[0] else ())
            for t in range(1, steps + 1):
                _same_grads(ours, theirs, t)
                replay()
                slow.step()
            diff = max(_relative(p.detach(), q.detach()) for p, q in zip(ours, theirs))
            rows.append(dict(path="cuda graph", name=name, max_rel=diff,
                             ok="yes" if diff < 1e-10 else "NO"))  # fmt: skip
        except Exception as exc:  # a path that cannot be captured is reported, not fatal
            rows.append(dict(path="cuda graph", name=name, max_rel=None, ok="NO",
                             error=f"{type(exc).__name__}: {str(exc)[:120]}"))  # fmt: skip
    return _print_parity(f"CUDA graph replay: float64 on {device} ({steps} replays)", rows)


def _print_parity(title: str, rows: list[dict]) -> list[dict]:
    print(f"\n## {title}\n")
    print("| path | optimizer | max rel diff | ok |\n|---|---|---:|---|")
    for r in rows:
        cell = f"{r['max_rel']:.1e}" if r["max_rel"] is not None else r.get("error", "")
        print(f"| {r['path']} | {r['name']} | {cell} | {r['ok']} |")
    return rows


def _same_grads(ours: list[torch.Tensor], theirs: list[torch.Tensor], t: int) -> None:
    """Step ``t``'s gradients, copied into both lists' (static) gradient tensors."""
    device = ours[0].device
    gen = torch.Generator(device=device).manual_seed(t)
    for p, q in zip(ours, theirs):
        g = 0.3 * q.detach() + torch.randn(q.shape, generator=gen, device=device, dtype=F64)
        p.grad.copy_(g)
        q.grad.copy_(g)


def graphs(name: str, params, rounds: int) -> list[dict]:
    """Capture each contestant's step in a CUDA graph and time its replay."""
    rows = []
    builds = [
        ("descentlab auto", lambda ps: descentlab.create(name, ps, lr=LR, capturable=True).step)
    ]
    if name in DIRECT:
        hp = {"switch_tol": 0.0} if name == "swats" else {}
        builds.append(
            ("descentlab triton", lambda ps: OnTriton(name, ps, capturable=True, **hp).step)
        )
    for flag in ("foreach", "fused"):
        make = _torch_class(name, flag, capturable=True)
        if make and (flag == "foreach" or name in TORCH_FUSED):
            builds.append((f"{TORCH[name][0]} {flag}", lambda ps, m=make: m(ps).step))
    for label, build in builds:
        try:
            step = build(_copy(params))
            step()
            replay = capture(step, warmup=3)
            times = []
            for _ in range(rounds):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(True)
                start.record()
                replay()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end))
            rows.append(dict(algorithm=name, contestant=label, ms=statistics.median(times)))
        except Exception as exc:
            rows.append(dict(algorithm=name, contestant=label, ms=None,
                             error=f"{type(exc).__name__}: {str(exc)[:100]}"))  # fmt: skip
    return rows


def print_race(result: dict) -> None:
    best = min((r for r in result["rows"] if r["kind"] == "torch"), key=lambda r: r["ms"],
               default=None)  # fmt: skip
    for r in result["rows"]:
        print(f"| {r['algorithm']} | {r['contestant']} | {r['ms']:.3f} | {r['roofline']:.0%} | "
              f"{_paired(best, r) if best else ''} | {r['first_ms']:.0f} |")  # fmt: skip
    sys.stdout.flush()


# ------------------------------------------------------------------ main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--toy", action="store_true", help="tiny sizes, 3 rounds (a smoke run)")
    parser.add_argument("--only", default="", help="algorithms to race (parity checks all)")
    parser.add_argument("--settings", default="a,b", help="a: one 2^28 tensor; b: ~1,000 tensors")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--skip", default="", help="any of parity,bench,graphs,compile,forloop")
    parser.add_argument("--budget", type=float, default=420.0, help="seconds; then stop racing")
    parser.add_argument("--chunk", type=int, default=None, help="Triton work item size")
    parser.add_argument("--block", type=int, default=None, help="Triton vector size")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        os.environ["TRITON_INTERPRET"] = "1"  # before the Triton kernels are imported
    from descentlab.optim.kernels.triton import _table

    _table.configure(chunk=args.chunk, block=args.block)
    warnings.filterwarnings("ignore")
    skip = {s for s in args.skip.split(",") if s}
    names = [n for n in args.only.split(",") if n] or [*descentlab.names(), "lookahead(adam)"]
    rounds = args.rounds or (3 if args.toy else 20)
    clock, began, out = Clock(device), time.perf_counter(), {}
    print(f"# torch {torch.__version__}, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
          + f", Triton chunk {_table.CHUNK}, block {_table.BLOCK}")  # fmt: skip
    if "parity" not in skip:
        checked = [*descentlab.names(), "lookahead(adam)", "noisy(adam)"]
        out["parity"] = parity(device, checked)
        if "graphs" not in skip:
            out["graph_parity"] = graph_parity(device, checked)
    backend = "eager" if device.type == "cpu" else "inductor"
    for setting in [s for s in args.settings.split(",") if s] if "bench" not in skip else []:
        params = make_params(workload(setting, args.toy), device)
        numel = sum(p.numel() for p in params)
        print(f"\n## ({setting}) {len(params)} float32 tensors, {numel / 1e6:.1f}M values, "
              f"{rounds} rounds\n")  # fmt: skip
        print("| algorithm | contestant | ms/step | roofline | x torch (IQR) | first ms |")
        print("|---|---|---:|---:|---:|---:|")
        results = []
        for name in names:
            if time.perf_counter() - began > args.budget:
                print(f"# budget of {args.budget:.0f} s spent: {name} and later not raced")
                break
            results.append(race(name, params, rounds, clock, skip, backend))
            print_race(results[-1])
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
        copy = statistics.median(r["copy_gbps"] for r in results) if results else math.nan
        print(f"\nin-place copy: {copy:.0f} GB/s (median over the races)")
        out[setting] = results
        # on CPU (--toy) the captures fail and say so; the builds still run
        if setting == "b" and (device.type == "cuda" or args.toy) and "graphs" not in skip:
            print("\n## (b) CUDA graph replay\n\n| algorithm | contestant | ms/step | roofline |")
            print("|---|---|---:|---:|")
            rows = []
            for name in names:
                if time.perf_counter() - began > args.budget:
                    print(f"# budget spent: graphs of {name} and later not taken")
                    break
                for r in graphs(name, params, rounds):
                    roof = (bytes_per_param(name) * numel / (r["ms"] / 1e3) / (copy * 1e9)
                            if r["ms"] else math.nan)  # fmt: skip
                    cell = f"{r['ms']:.3f}" if r["ms"] else r.get("error", "")
                    print(f"| {name} | {r['contestant']} | {cell} | {roof:.0%} |")
                    rows.append(r)
            out["graphs"] = rows
        del params
        gc.collect()
    print(f"\n# done in {time.perf_counter() - began:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
