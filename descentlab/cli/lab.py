"""Commands of the lab area: ``problems``, ``compare``, ``run``, ``report`` and ``export``."""

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


def _fail(message: str) -> typer.Exit:
    """Print a one-line error on stderr; the caller raises the returned exit (status 2)."""
    Console(stderr=True).print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(2)


def register(app: typer.Typer) -> None:
    """Add this area's commands to ``app``."""
    _register_engine(app)

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


def _register_engine(app: typer.Typer) -> None:
    """``run``, ``report`` and ``export``: the experiment engine, the store and its reports."""

    @app.command("run")
    def run(
        experiment: Annotated[str, typer.Argument(help="Experiment file (TOML).")],
        workers: Annotated[
            int, typer.Option(min=1, help="Trials at once (1: in this process).")
        ] = 1,
        backend: Annotated[str, typer.Option(help="'pool' (local) or 'ray'.")] = "pool",
        address: Annotated[
            str | None, typer.Option(help="Ray cluster address (default: a local instance).")
        ] = None,
        db: Annotated[str, typer.Option(help="Results store (SQLite).")] = "runs.db",
        max_trials: Annotated[
            int | None, typer.Option(min=0, help="Run at most this many trials now.")
        ] = None,
        data_dir: Annotated[
            str | None, typer.Option(help="Directory of downloaded datasets, if needed.")
        ] = None,
    ) -> None:
        """Run an experiment's unfinished trials into the store; prints the store's path."""
        from ..lab import SpecError, load, run_experiment

        try:
            spec = load(experiment)
        except FileNotFoundError as e:
            raise _fail(f"no experiment file {experiment}") from e
        except SpecError as e:
            raise _fail(f"{experiment}: {e}") from e
        try:
            s = run_experiment(
                spec,
                db=db,
                workers=workers,
                backend=backend,
                address=address,
                max_trials=max_trials,
                data_dir=data_dir,
            )
        except (ValueError, RuntimeError) as e:
            raise _fail(str(e)) from e
        Console(stderr=True).print(
            f"{s.planned} trials: {s.skipped} already done, {s.finished} finished "
            f"({s.diverged} diverged), {s.failed} failed, {s.capped} left by --max-trials",
            highlight=False,
        )
        print(s.db)

    @app.command("report")
    def report(
        db: Annotated[str, typer.Argument(help="Results store (SQLite).")] = "runs.db",
        out: Annotated[str, typer.Option("--out", "-o", help="Report directory.")] = "report",
    ) -> None:
        """Write the HTML report (figures, tables, every run as JSON); prints index.html's path."""
        from ..report import write_report

        try:
            print(write_report(db, out))
        except FileNotFoundError as e:
            raise _fail(str(e)) from e

    @app.command("export")
    def export(
        db: Annotated[str, typer.Argument(help="Results store (SQLite).")] = "runs.db",
        csv: Annotated[str, typer.Option("--csv", help="CSV file to write.")] = "runs.csv",
        role: Annotated[
            str, typer.Option(help="'final' (reported runs), 'tune' (search runs) or 'all'.")
        ] = "final",
    ) -> None:
        """Export one row per trial (configuration, outcome, final metrics) to CSV."""
        from ..store import to_csv

        if role not in ("final", "tune", "all"):
            raise typer.BadParameter(f"{role!r}; allowed: final, tune, all", param_hint="--role")
        try:
            print(to_csv(db, csv, role=None if role == "all" else role))
        except FileNotFoundError as e:
            raise _fail(str(e)) from e
