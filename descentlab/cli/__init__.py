"""The ``descentlab`` command line: thin wrappers that parse arguments and call the library.

Each area registers its commands from its own module (``optim``, ``lab``, ``schedules``, ``viz``).
"""

from __future__ import annotations

import typer

from . import lab, optim, schedules, viz

app = typer.Typer(
    name="descentlab",
    help="Optimizers from the lecture 'New Optimizers for Deep Learning', and a lab to compare them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's plain usage errors: one line each, never wrapped at 80 columns
)


@app.callback()
def _root() -> None:
    """descentlab: optimizers from the lecture, verified and fast, and a lab to compare them."""


for _area in (optim, lab, schedules, viz):
    _area.register(app)


def main() -> None:
    """Console-script entry point."""
    app()
