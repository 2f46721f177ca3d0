"""What the command modules share: one-line errors, tables at their natural width, details."""

from __future__ import annotations

import difflib
import textwrap
from collections.abc import Iterable, Sequence

import typer
from rich.console import Console
from rich.table import Table

__all__ = [
    "DEVICE_HELP",
    "WIDTH",
    "details",
    "device",
    "device_failure",
    "fail",
    "show",
    "table",
    "unknown",
]

WIDTH = 80  # every listing and detail page fits 80 columns (tested)
DEVICE_HELP = "auto, cpu, cuda, cuda:N or mps (auto: a GPU when torch sees one)."


def fail(message: str) -> typer.Exit:
    """Print a one-line error on stderr, never wrapped; the caller raises the returned exit (2)."""
    typer.secho("error: ", fg="red", err=True, nl=False)
    typer.echo(message, err=True)
    return typer.Exit(2)


def device(name: str) -> object:
    """The ``torch.device`` that ``--device`` names, or the one-line error (exit 2) before
    anything runs or is written."""
    from ..lab.devices import DeviceError, resolve

    try:
        return resolve(name)
    except DeviceError as e:
        raise device_failure(name, e) from None


def device_failure(name: str, error: Exception) -> typer.Exit:
    """The one-line error (exit 2) for ``--device name`` that ``error`` (a DeviceError) refused."""
    why = str(error).removeprefix(f"device {name!r}: ").removeprefix(f"device: {name!r}; ")
    return fail(f"--device {name}: {why}")


def unknown(kind: str, name: str, known: Iterable[str], command: str) -> typer.Exit:
    """The error for a name that is not in ``known``, with the close matches."""
    known = list(known)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(known)}"
    return fail(f"unknown {kind} {name!r}; {hint} (see `descentlab {command}`)")


def table(*columns: str) -> Table:
    """A borderless table whose first column (the names) never wraps; the others wrap at word
    boundaries past 80 columns and fold a word rather than cut it (no ``…``)."""
    t = Table(*columns, box=None, pad_edge=False)
    for column in t.columns:
        column.overflow = "fold"
    t.columns[0].no_wrap = True
    return t


def show(renderable: Table) -> None:
    """Print ``renderable`` at its natural width up to 80 columns, whatever the terminal's."""
    width = min(Console(width=10_000).measure(renderable).maximum, WIDTH)
    console = Console(width=width, no_color=True, highlight=False)
    with console.capture() as capture:
        console.print(renderable)
    for line in capture.get().splitlines():
        typer.echo(line.rstrip())


def details(title: str, fields: Sequence[tuple[str, str]]) -> None:
    """``title`` then one ``key: value`` per field, values wrapped at word boundaries."""
    typer.echo(title)
    pad = max(len(k) for k, _ in fields) + 2
    for key, value in fields:
        lines = textwrap.wrap(value, WIDTH - pad) or [""]
        typer.echo(f"{key + ':':<{pad}}{lines[0]}".rstrip())
        for line in lines[1:]:
            typer.echo(" " * pad + line)
