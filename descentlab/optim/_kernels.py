"""Compiled CPU kernels for the fast path (placeholder until the kernels land)."""

from __future__ import annotations

__all__ = ["unavailable_reason"]


def unavailable_reason() -> str | None:
    """Why the compiled kernels cannot be used here, or None when they can."""
    return "no compiled kernels in this build"
