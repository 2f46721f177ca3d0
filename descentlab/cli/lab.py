"""Commands of the lab area: ``problems`` and ``compare``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table


def _problems_table() -> Table:
    from ..problems import PROBLEMS

    table = Table(title="descentlab problems")
    table.add_column("name", no_wrap=True)
    for col in ("kind", "metric", "budget", "target", "description (source)"):
        table.add_column(col)
    for p in PROBLEMS.values():
        t = p.target
        table.add_row(
            p.name,
            p.kind,
            p.main_metric + (" (higher)" if p.higher_is_better else " (lower)"),
            f"{p.budget.epochs} epochs x batch {p.budget.batch_size}",
            f"{t.split} {t.metric} {'>=' if t.higher_is_better else '<='} {t.value:g}",
            f"{p.description} [dim]({p.source})[/dim]",
        )
    return table


def register(app: typer.Typer) -> None:
    """Add this area's commands to ``app``."""

    @app.command("problems")
    def problems() -> None:
        """List the built-in problems: kind, metric, default budget, target and data source."""
        Console().print(_problems_table())

    @app.command("compare")
    def compare(
        problem: Annotated[str, typer.Option("--problem", "-p", help="Problem name.")] = (
            "digits-mlp"
        ),
        optimizer: Annotated[
            list[str] | None,
            typer.Option(
                "--optimizer",
                "-o",
                help="Optimizer name (repeatable); default: every registry name, "
                "lookahead(adam) and lookahead(sgdm).",
            ),
        ] = None,
        epochs: Annotated[
            int | None, typer.Option(help="Epochs (default: the problem's budget).", min=1)
        ] = None,
        seed: Annotated[
            int, typer.Option(help="Seed of the model initialisation and the data order.")
        ] = 0,
        data_dir: Annotated[
            str | None, typer.Option(help="Directory of downloaded datasets, if needed.")
        ] = None,
    ) -> None:
        """Train one problem with each optimizer at its default learning rate and compare.

        One seed, no tuning: a first look. Prints final train loss, test metric and wall time.
        """
        import torch

        from ..optim import names
        from ..optim.registry import resolve
        from ..problems import get, optimizers_for, train

        try:
            prob = get(problem)
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--problem") from e
        chosen = optimizer or [*names(), "lookahead(adam)", "lookahead(sgdm)"]
        try:
            lrs = {n: resolve(n)[1].lr for n in chosen}
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--optimizer") from e
        n_epochs = epochs or prob.budget.epochs
        torch.set_num_threads(1)  # small models: one thread is fastest and shares the machine

        def build():
            try:
                return prob.build(seed, data_dir=data_dir)
            except (FileNotFoundError, ImportError) as e:
                Console(stderr=True).print(f"[red]error:[/red] {e}")
                raise typer.Exit(2) from e

        steps = len(build().train_loader) * n_epochs  # per optimizer, for the progress bar
        results = {}
        columns = (
            TextColumn("{task.description:<18}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, transient=True) as progress:
            bar = progress.add_task("", total=steps * len(chosen))
            for name in chosen:
                progress.update(bar, description=name)
                task = build()
                results[name] = train(
                    task,
                    optimizers_for(task, name, lr=lrs[name]),
                    n_epochs,
                    lambda _step, _loss: progress.advance(bar),
                    eval_splits=(),
                )
        metric = prob.main_metric
        table = Table(title=f"{prob.name}: {n_epochs} epochs, seed {seed}, default learning rates")
        for col in ("optimizer", "lr", "final train loss", f"test {metric}", "wall time (s)"):
            table.add_column(col, justify="left" if col == "optimizer" else "right")
        for name, h in results.items():
            test = "diverged" if h.diverged else f"{h.final['test'][metric]:.4f}"
            table.add_row(
                name,
                f"{lrs[name]:g}",
                f"{h.final['train']['loss']:.4f}",
                test,
                f"{h.wall_time:.2f}",
            )
        Console().print(table)
