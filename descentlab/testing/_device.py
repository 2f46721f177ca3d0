"""The checks about devices and compilers: no host sync (meta tensors), compile without recompiles."""

from __future__ import annotations

from typing import Any

import torch

from ._compare import Where, compare_states
from ._data import clone_groups, set_grads
from ._spec import Spec, run

__all__ = ["WARMUP", "check_compile", "check_meta"]

WARMUP = 3  # compiled steps that may compile: lazy state at step 1, steady from 2, and slack


def check_meta(spec: Spec) -> str | None:
    """Steps run on ``meta`` parameters: tensors without data, so a step that reads a device value
    on the host (``.item()``, ``float()``, ``bool()``, ``if tensor:``) raises, as it would stall
    a GPU."""
    where = Where("meta", "no host sync: parameters on the meta device")
    groups = spec.groups(device="meta")
    with where.running("building the optimizer"):
        opt = spec.build(groups)
    for t in range(1, 4):
        set_grads(groups, t)
        with where.at(step=t).running("the step (does it read a device value on the host?)"):
            opt.step()
    return None


def check_compile(spec: Spec) -> str | None:
    """``torch.compile(opt.step)`` equals the eager step, and compiles nothing new after the warm-up
    while a scheduler changes a tensor ``lr`` in place (``error_on_recompile``)."""
    import torch._dynamo

    dtype = torch.float32
    hparams = [{**h, "lr": torch.tensor(float(h.get("lr", 1e-3)))} for h in spec.hparams]
    tensor_lr = True
    try:
        spec.build(spec.groups(dtype), hparams=hparams)
    except (TypeError, ValueError, RuntimeError):  # a float lr, then, and constant
        hparams, tensor_lr = list(spec.hparams), False
    lr = "tensor lr under LambdaLR" if tensor_lr else "constant float lr (a tensor is refused)"
    where = Where("compile", f"backend={spec.compile_backend!r}, {lr}")
    groups = spec.groups(dtype)
    twin = clone_groups(groups)
    eager = spec.build(groups, hparams=hparams)
    compiled_opt = spec.build(twin, hparams=_fresh(hparams))
    schedulers = []
    if tensor_lr:
        schedulers = [
            torch.optim.lr_scheduler.LambdaLR(o, lambda t: 1 / (1 + 0.1 * t))
            for o in (eager, compiled_opt)
        ]
    warmup = WARMUP
    rtol, atol = spec.tol(dtype)
    torch._dynamo.reset()
    try:
        step = torch.compile(compiled_opt.step, backend=spec.compile_backend)
        for t in range(1, spec.compile_steps + 1):
            w = where.at(step=t)
            run(w, eager, groups, range(t, t + 1))
            set_grads(twin, t)
            try:
                with torch._dynamo.config.patch(error_on_recompile=t > warmup):
                    step()
            except torch._dynamo.exc.RecompileError as e:
                raise w.fail(f"recompiled after the warm-up ({warmup} steps): {e}") from e
            except Exception as e:
                raise w.fail(f"the compiled step raised {type(e).__name__}: {e}") from e
            compare_states(w, compiled_opt, eager, twin, groups, rtol, atol)
            for scheduler in schedulers:
                scheduler.step()
    finally:
        torch._dynamo.reset()
    return None


def _fresh(hparams: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same hyperparameters with their own lr tensors (a scheduler changes them in place)."""
    return [{**h, "lr": h["lr"].clone()} if torch.is_tensor(h.get("lr")) else h for h in hparams]
