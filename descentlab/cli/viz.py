"""Commands of the viz area: ``trajectories`` and ``demo adam-failures``."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ._common import DEVICE_HELP, device, show, table

demo = typer.Typer(
    name="demo", help="The lecture's worked examples, with numbers.", no_args_is_help=True
)


def _table(rows: list[dict[str, Any]]) -> Table:
    """The rows as a table; a header wraps to its column's widest cell (or longest word)."""
    cells = [[f"{v:.6g}" if isinstance(v, float) else str(v) for v in row.values()] for row in rows]
    widths = [max(10, *map(len, column)) for column in zip(*cells)]
    t = table(
        *("\n".join(textwrap.wrap(h, w, break_long_words=False)) for h, w in zip(rows[0], widths))
    )
    for row in cells:
        t.add_row(*row)
    return t


def _parse_lrs(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise typer.BadParameter(f"expected NAME=LR, got {item!r}", param_hint="--lr")
    return out


def _parse_start(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"expected X,Y, got {text!r}", param_hint="--start") from None
    return x, y


def register(app: typer.Typer) -> None:
    """Add this area's commands to ``app``."""

    @app.command("trajectories")
    def trajectories(
        function: str = typer.Option("rosenbrock", "--function", "-f", help="2-D function name."),
        optimizers: str = typer.Option(
            "sgd,sgdm,nag,adagrad,rmsprop,adam", "--optimizers", help="Comma-separated names."
        ),
        steps: int = typer.Option(300, "--steps", min=1, help="Steps per optimizer."),
        output: Annotated[
            Path, typer.Option("--output", "-o", help=".gif, .mp4 (ffmpeg) or .png")
        ] = Path("trajectories.gif"),
        start: str | None = typer.Option(None, "--start", help="Start point X,Y."),
        lr: Annotated[
            list[str] | None, typer.Option("--lr", help="NAME=LR overriding a default; repeat.")
        ] = None,
        frames: int = typer.Option(100, "--frames", min=2, help="Animation frames at most."),
        fps: int = typer.Option(15, "--fps", min=1, help="Animation frames per second."),
        device_name: Annotated[str, typer.Option("--device", help=DEVICE_HELP)] = "cpu",
    ) -> None:
        """Race optimizers on a 2-D function.

        An animation (GIF or MP4) or a still PNG.
        """
        from ..viz import FUNCTIONS, animate, plot
        from ..viz import trajectories as run

        if function not in FUNCTIONS:
            raise typer.BadParameter(
                f"unknown function {function!r}; known: {', '.join(FUNCTIONS)}",
                param_hint="--function",
            )
        where = device(device_name)
        try:
            with where:  # the point and the optimizers' state are made on the device
                paths = run(
                    function,
                    optimizers,
                    steps=steps,
                    start=_parse_start(start),
                    lrs=_parse_lrs(lr or []),
                )
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--optimizers") from None
        for t in paths:
            end = t.xy[-1] if t.diverged_at is None else f"diverged at step {t.diverged_at}"
            typer.echo(f"{t.label}: lr={t.lr:g}, end {end}, loss {t.loss[-1]:.4g}")
        if output.suffix.lower() == ".png":
            written = plot(function, paths, output)
        else:
            try:
                written = animate(function, paths, output, frames=frames, fps=fps)
            except RuntimeError as e:
                typer.echo(str(e), err=True)
                raise typer.Exit(2) from None
        typer.echo(f"wrote {written}")

    @demo.command("adam-failures")
    def adam_failures(
        output: Annotated[
            Path, typer.Option("--output", "-o", help="Folder for the figures.")
        ] = Path("adam-failures"),
        warmup: int = typer.Option(10_000, "--warmup", min=1, help="Gradients of 1 before 1e5."),
        steps: int = typer.Option(3000, "--steps", min=3, help="Steps of Reddi et al.'s problem."),
    ) -> None:
        """Adam's failure cases, as tables and figures.

        One large gradient, and Reddi et al. 2018's counterexample.
        """
        from ..demos import (
            large_gradient,
            online_counterexample,
            plot_large_gradient,
            plot_online_counterexample,
        )

        big = large_gradient(warmup=warmup)
        typer.echo(f"One gradient of 1e5 after {warmup} gradients of 1")
        show(_table(big.rows))
        online = online_counterexample(steps=steps)
        typer.echo(f"\nReddi et al. 2018, C = {online.C:g}, {steps} steps")
        show(_table(online.rows))
        written = [
            plot_large_gradient(big, output / "large_gradient.png"),
            plot_online_counterexample(online, output / "online_counterexample.png"),
        ]
        for path in written:
            typer.echo(f"wrote {path}")

    app.add_typer(demo)
