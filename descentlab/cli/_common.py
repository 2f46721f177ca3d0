"""What the command modules share."""

from __future__ import annotations

import typer
from rich.console import Console

__all__ = ["fail"]


def fail(message: str) -> typer.Exit:
    """Print a one-line error on stderr; the caller raises the returned exit (status 2)."""
    Console(stderr=True).print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(2)
