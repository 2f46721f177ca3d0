"""Comparisons that fail with a message naming the check, the step, the parameter and the key."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import torch

from ._data import Groups, indexed


class ConformanceError(AssertionError):
    """A check of :func:`check_optimizer` failed; the attributes say where."""

    def __init__(
        self,
        detail: str,
        *,
        check: str = "",
        label: str = "",
        step: int | None = None,
        group: int | None = None,
        param: int | None = None,
        key: str | None = None,
    ) -> None:
        self.detail, self.check, self.label, self.step = detail, check, label, step
        self.group, self.param, self.key = group, param, key
        where = [f"check {check!r}" + (f" ({label})" if label else "")]
        if step is not None:
            where.append(f"step {step}")
        if group is not None:
            where.append(f"group {group} param {param}")
        if key is not None:
            where.append(f"state {key!r}")
        super().__init__(": ".join([*where, detail]))


@dataclass(frozen=True)
class Where:
    """The check, the run (a label such as ``"float32, impl='foreach'"``) and the step."""

    check: str
    label: str = ""
    step: int | None = None

    def at(self, step: int | None = None, label: str | None = None) -> Where:
        return replace(self, step=step, label=self.label if label is None else label)

    def fail(self, detail: str, **position: Any) -> ConformanceError:
        return ConformanceError(
            detail, check=self.check, label=self.label, step=self.step, **position
        )

    @contextmanager
    def running(self, what: str = "the step") -> Iterator[None]:
        """An exception raised by the optimizer becomes a failure of this check."""
        try:
            yield
        except ConformanceError:
            raise
        except Exception as e:
            raise self.fail(f"{what} raised {type(e).__name__}: {e}") from e


def close(a: Any, b: Any, rtol: float, atol: float) -> str | None:
    """Why ``a`` and ``b`` differ beyond the tolerances, or None (numbers, tensors or others)."""
    if torch.is_tensor(a) or torch.is_tensor(b):
        # a Python number becomes a float64 tensor: as_tensor's float32 would hide its digits
        a, b = (x if torch.is_tensor(x) else torch.tensor(x, dtype=torch.float64) for x in (a, b))
        if a.shape != b.shape:
            return f"shape {tuple(a.shape)} vs {tuple(b.shape)}"
        if a.dtype != b.dtype:
            a, b = a.to(torch.float64), b.to(torch.float64)
        if a.device.type == "meta" or torch.allclose(a, b, rtol=rtol, atol=atol):
            return None  # fast; assert_close below only to say how they differ
        try:
            torch.testing.assert_close(a, b, rtol=rtol, atol=atol, check_device=False)
        except AssertionError as e:
            return str(e).strip().replace("\n", "; ")
        return None
    if isinstance(a, float) or isinstance(b, float):
        ok = math.isclose(a, b, rel_tol=rtol, abs_tol=atol)
        return None if ok else f"{a!r} vs {b!r}"
    return None if a == b else f"{a!r} vs {b!r}"


def assert_close(a: Any, b: Any, rtol: float, atol: float, what: str) -> None:
    """``a`` equals ``b`` within the tolerances, else an AssertionError starting with ``what``."""
    why = close(a, b, rtol, atol)
    assert why is None, f"{what}: {why}"


def compare_states(
    where: Where,
    ours: torch.optim.Optimizer,
    theirs: Any,
    groups: Groups,
    twin: Groups,
    rtol: float,
    atol: float,
    aliases: Mapping[str, str] | None = None,
) -> None:
    """Parameters and every state entry ``theirs`` keeps (under ``aliases``' names in ours)."""
    aliases = aliases or {}
    pairs = []  # (position, ours, theirs)
    for (gi, pi, p), q in zip(indexed(groups), (q for g in twin for q in g), strict=True):
        pairs.append(((gi, pi, None), p.detach(), q.detach()))
        mine = ours.state.get(p, {})
        for key, value in theirs.state.get(q, {}).items():
            name = aliases.get(key, key)
            if name not in mine:
                raise where.fail("missing from the optimizer's state", group=gi, param=pi, key=name)
            pairs.append(((gi, pi, name), mine[name], value))
    if _all_close(pairs, rtol, atol):
        return
    for (gi, pi, key), a, b in pairs:  # name the first that differs
        why = close(a, b, rtol, atol)
        if why:
            what = "differs" if key else "parameter differs"
            raise where.fail(f"{what}: {why}", group=gi, param=pi, key=key)


def _all_close(pairs: list[tuple[Any, Any, Any]], rtol: float, atol: float) -> bool:
    """One multi-tensor test of every pair (a per-pair ``allclose`` costs 0.1 ms: seconds a run)."""
    xs, ys = [], []
    for _, a, b in pairs:
        if not (torch.is_tensor(a) and torch.is_tensor(b)) or a.shape != b.shape:
            return False
        if a.device.type == "meta" or a.numel() == 0:
            continue
        if a.dtype != b.dtype or not (a.is_floating_point() or a.is_complex()):
            a, b = a.to(torch.complex128 if a.is_complex() else torch.float64), b.to(a.dtype)
        xs.append(a)
        ys.append(b)
    if not xs:
        return True
    # |x - y| - (atol + rtol |y|) <= 0 everywhere (abs out of place: complex has no abs_)
    excess = torch._foreach_abs(torch._foreach_sub(xs, ys))
    bound = torch._foreach_abs(ys)
    torch._foreach_mul_(bound, rtol)
    torch._foreach_add_(bound, atol)
    torch._foreach_sub_(excess, bound)
    return all(e.max() <= 0 for e in torch._foreach_max(excess))


def identical(a: Any, b: Any) -> str | None:
    """Why ``a`` and ``b`` are not the same bit for bit (tensors, dicts, lists, numbers), or None."""
    if torch.is_tensor(a) or torch.is_tensor(b):
        if not (torch.is_tensor(a) and torch.is_tensor(b)):
            # a 0-d tensor and a number may hold one value (a path may keep it where it reads it)
            t, x = (a, b) if torch.is_tensor(a) else (b, a)
            if isinstance(x, (int, float)) and t.dim() == 0 and t.device.type != "meta":
                return None if t.item() == x else f"{a!r} vs {b!r}"
            return f"a {type(a).__name__} vs a {type(b).__name__}"
        if (a.dtype, a.shape) != (b.dtype, b.shape):
            return f"{a.dtype}{list(a.shape)} vs {b.dtype}{list(b.shape)}"
        if a.device.type == "meta" or torch.equal(a, b):
            return None
        diff = (a.to(torch.float64) - b.to(torch.float64)).abs().max().item()
        return f"differs by up to {diff:.3g}"
    if isinstance(a, torch.Generator) and isinstance(b, torch.Generator):
        return identical(a.get_state(), b.get_state())
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        if set(map(str, a)) != set(map(str, b)):
            return f"keys {sorted(map(str, a))} vs {sorted(map(str, b))}"
        for k in a:
            why = identical(a[k], b[k])
            if why:
                return f"[{k!r}]: {why}"
        return None
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return f"length {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            why = identical(x, y)
            if why:
                return f"[{i}]: {why}"
        return None
    return None if a == b else f"{a!r} vs {b!r}"


def compare_identical(
    where: Where,
    a: torch.optim.Optimizer,
    b: torch.optim.Optimizer,
    ga: Groups,
    gb: Groups,
    names: tuple[str, str] = ("the first run", "the second run"),
) -> None:
    """Parameters and every state entry of ``a`` and ``b``, bit for bit, keys included."""
    for (gi, pi, p), q in zip(indexed(ga), (q for g in gb for q in g), strict=True):
        why = identical(p.detach(), q.detach())
        if why:
            raise where.fail(f"parameter, {names[0]} vs {names[1]}: {why}", group=gi, param=pi)
        sa, sb = a.state.get(p, {}), b.state.get(q, {})
        for key in sorted({*sa, *sb}, key=str):
            if key not in sa or key not in sb:
                side = names[1] if key not in sb else names[0]
                raise where.fail(f"missing from {side}", group=gi, param=pi, key=key)
            why = identical(sa[key], sb[key])
            if why:
                raise where.fail(f"{names[0]} vs {names[1]}: {why}", group=gi, param=pi, key=key)
