"""``descentlab optimizers``: the registry."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table


def register(app: typer.Typer) -> None:
    """Add this area's commands to ``app``."""

    @app.command("optimizers")
    def optimizers() -> None:
        """List the registry: names, classes, papers and the references they are tested against."""
        from ..optim import REGISTRY, WRAPPERS

        table = Table(title="descentlab optimizers")
        for col in ("name", "class", "fixed hyperparameters", "paper", "tested against"):
            table.add_column(col)
        for e in REGISTRY.values():
            fixed = ", ".join(f"{k}={v}" for k, v in e.fixed.items())
            table.add_row(e.name, e.cls.__name__, fixed, e.paper, e.reference)
        for w, cls in WRAPPERS.items():
            table.add_row(f"{w}(<name>)", cls.__name__, "", "", "the paper's algorithm (test)")
        Console().print(table)

    @app.command("build-kernels")
    def build_kernels(
        verbose: bool = typer.Option(False, "--verbose", help="Show the compiler's output."),
    ) -> None:
        """Build the fused CPU kernels now (once per machine; about a minute) and print where
        torch caches them, so that no training run pays the build on its first step."""
        from ..optim import _kernels

        try:
            _kernels.build(verbose=verbose)
        except RuntimeError as exc:
            typer.echo(f"{exc}; the optimizers use their readable path", err=True)
            raise typer.Exit(2) from exc
        typer.echo(str(_kernels.build_directory()))
