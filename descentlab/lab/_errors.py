"""The error every invalid experiment file raises."""

from __future__ import annotations

__all__ = ["SpecError"]


class SpecError(ValueError):
    """An experiment file is invalid; the message names the key and what is allowed."""
