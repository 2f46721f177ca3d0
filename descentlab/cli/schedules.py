"""Commands of the schedules area: ``schedules``, ``schedule-plot`` and ``lr-find``."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Annotated, Any

import typer

from ._common import DEVICE_HELP, details, device, fail, show, table, unknown


def _options(pairs: list[str]) -> dict[str, Any]:
    """``["T_mult=1.5", "after=cosine"]`` -> ``{"T_mult": 1.5, "after": "cosine"}``."""
    options = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise fail(f"--option expects key=value, got {pair!r}")
        try:
            options[key.strip()] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            options[key.strip()] = text.strip()  # a bare word such as a schedule name
    return options


def _save(ax: Any, output: Path) -> None:
    import matplotlib.pyplot as plt

    output.parent.mkdir(parents=True, exist_ok=True)
    ax.figure.tight_layout()
    ax.figure.savefig(output, dpi=120)
    plt.close(ax.figure)


def register(app: typer.Typer) -> None:
    """Add this area's commands to ``app``."""

    @app.command("schedules")
    def schedules(
        name: Annotated[
            str | None, typer.Argument(help="Show this schedule's details.", show_default=False)
        ] = None,
    ) -> None:
        """List the LR schedules, or show one's details.

        The list: name, implementation and paper.
        """
        from ..schedules import REGISTRY

        if name is not None:
            if name not in REGISTRY:
                raise unknown("schedule", name, REGISTRY, "schedules")
            s = REGISTRY[name]
            options = ", ".join(s.options()) + (", and those of `after`" if s.forwards() else "")
            details(
                s.name,
                [
                    ("what", s.description),
                    ("paper", s.paper or "none"),
                    ("implementation", s.implementation),
                    ("momentum", s.momentum),
                    ("options", options or "none"),
                ],
            )
            return
        t = table("name", "implementation", "paper")
        for s in REGISTRY.values():
            t.add_row(s.name, s.implementation, s.paper)
        show(t)
        typer.echo("\nDetails (what, momentum, options): descentlab schedules NAME")

    @app.command("schedule-plot")
    def schedule_plot(
        name: Annotated[str, typer.Argument(help="Schedule name (see `descentlab schedules`).")],
        steps: Annotated[int, typer.Option("--steps", help="Run length in steps.", min=1)] = 1000,
        output: Annotated[
            Path | None, typer.Option("--output", "-o", help="PNG to write (default NAME.png).")
        ] = None,
        lr: Annotated[float, typer.Option(help="The optimizer's learning rate.")] = 0.1,
        option: Annotated[
            list[str] | None,
            typer.Option("--option", "-p", help="Schedule option key=value (repeatable)."),
        ] = None,
    ) -> None:
        """Draw a schedule's LR over a run, as PNG.

        Momentum too, where the schedule moves it.
        """
        import matplotlib

        matplotlib.use("Agg")
        from ..schedules import plot

        output = Path(f"{name}.png") if output is None else output
        try:
            ax = plot(name, steps, lr=lr, **_options(option or []))
        except ValueError as err:
            raise fail(str(err)) from None
        _save(ax, output)
        print(output)

    @app.command("lr-find")
    def lr_find(
        problem: Annotated[str, typer.Option(help="A supervised problem of the lab.")] = (
            "digits-mlp"
        ),
        optimizer: Annotated[str, typer.Option(help="Optimizer name.")] = "sgdm",
        output: Annotated[Path, typer.Option("--output", "-o", help="PNG to write.")] = Path(
            "lr_find.png"
        ),
        steps: Annotated[int, typer.Option(help="Steps of the test.", min=2)] = 100,
        start_lr: Annotated[float, typer.Option(help="First LR.")] = 1e-7,
        end_lr: Annotated[float, typer.Option(help="Last LR.")] = 10.0,
        mode: Annotated[str, typer.Option(help="LR growth: exp or linear.")] = "exp",
        seed: Annotated[int, typer.Option(help="Seed of the model and the data order.")] = 0,
        method: Annotated[
            str, typer.Option(help="Suggestion marked on the plot: steepest, valley, min/10.")
        ] = "valley",
        device_name: Annotated[str, typer.Option("--device", help=DEVICE_HELP)] = "auto",
    ) -> None:
        """Run the LR range test on a problem.

        Prints the suggested LRs and writes the plot.
        """
        import matplotlib

        matplotlib.use("Agg")
        from .. import optim, problems
        from ..schedules import lr_range_test

        where = device(device_name)
        try:
            prob = problems.get(problem)
            if prob.kind != "supervised":
                raise ValueError(
                    f"lr-find needs a supervised problem (a model, a loss and (x, y) batches); "
                    f"{problem!r} is {prob.kind!r}"
                )
            task = prob.build(seed)
            if where.type != "cpu":  # the model and the batches on the device
                task = task.to(where)
            opt = optim.create(optimizer, task.param_groups()["model"])
            result = lr_range_test(
                task.model,
                opt,
                task.criterion,
                task.train_loader,
                start_lr=start_lr,
                end_lr=end_lr,
                num_steps=steps,
                mode=mode,
            )
            suggestions = result.suggestions()
            ax = result.plot(method=method)
        except ValueError as err:
            raise fail(str(err)) from None
        stop = f" at lr {result.diverged_at:.3g}" if result.diverged_at is not None else ""
        print(f"{problem} / {optimizer}: {len(result.lrs)} steps, {result.stop_reason}{stop}")
        for name, lr in suggestions.items():
            print(f"  {name:>8}: {lr:.3g}")
        _save(ax, output)
        print(output)
