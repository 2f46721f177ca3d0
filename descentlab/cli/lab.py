"""Commands of the lab area: ``problems``, ``compare``, ``run``, ``report`` and ``export``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ._common import fail


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
                help="Optimizer name (repeatable); default: the lecture's 14 (sgd, sgdm, nag, "
                "adagrad, rmsprop, adam, amsgrad, adamw, nadam, radam, adabound, swats, "
                "lookahead(adam), lookahead(sgdm)).",
            ),
        ] = None,
        epochs: Annotated[
            int | None,
            typer.Option(
                help="Epochs (default: 10 on digits-mlp, else the problem's budget).", min=1
            ),
        ] = None,
        seed: Annotated[
            int, typer.Option(help="First seed (model initialisation and data order); it tunes.")
        ] = 0,
        data_dir: Annotated[
            str | None, typer.Option(help="Directory of downloaded datasets, if needed.")
        ] = None,
        seeds: Annotated[int, typer.Option(min=1, help="Seeds of the reported runs.")] = 5,
        workers: Annotated[
            int | None, typer.Option(min=1, help="Trials at once (default: every CPU).")
        ] = None,
        db: Annotated[str, typer.Option(help="Results store (SQLite).")] = "runs.db",
        out: Annotated[str, typer.Option("--out", help="Report directory.")] = "report",
    ) -> None:
        """Compare the lecture's optimizers honestly: the built-in experiment, then its report.

        Each optimizer's learning rate is tuned with the same budget (a grid of 3 around its
        default, on the validation metric); the best is rerun on every seed. Prints the median test
        metric per optimizer and, last, the path of the HTML report. Finished trials are kept in
        the store, so running it again only runs what is missing.
        """
        import os

        from ..lab import SpecError, default_experiment, run_experiment
        from ..problems import get
        from ..report import summary, write_report
        from ..store import Store, StoreError

        try:
            exp = default_experiment(
                problem=problem,
                optimizers=optimizer,
                epochs=epochs,
                seeds=range(seed, seed + seeds),
            )
        except SpecError as e:
            hint = "--optimizer" if str(e).startswith("optimizers") else "--problem"
            raise typer.BadParameter(str(e), param_hint=hint) from e
        try:
            run_experiment(exp, db=db, workers=workers or os.cpu_count() or 1, data_dir=data_dir)
        except StoreError as e:
            raise fail(str(e)) from e
        n_epochs = exp.epochs or get(problem).budget.epochs
        with Store(db) as store:
            rows = next(iter(summary(store, exp.name).values()), [])
        metric = rows[0]["metric"] if rows else "metric"
        table = Table(
            title=f"{problem}: {n_epochs} epochs, seed {seed} + {seeds - 1} more, "
            f"learning rate tuned (grid of {exp.tuning.budget})"
        )
        columns = (
            "optimizer",
            "lr",
            "runs",
            "diverged",
            "train loss median",
            f"test {metric} median [IQR]",
            "time/run (s)",
        )
        for col in columns:
            table.add_column(col, justify="left" if col == "optimizer" else "right")
        for r in rows:
            t = r["test"]
            table.add_row(
                r["label"],
                ", ".join(f"{lr:g}" for lr in r["lrs"]),
                str(r["runs"]),
                str(r["diverged"]),
                f"{r['train_loss'].median:.4g}",
                f"{t.median:.4f} [{t.q1:.4f}, {t.q3:.4f}]",
                f"{r['wall_time'].median:.1f}",
            )
        Console().print(table)
        print(write_report(db, out, experiments=[exp.name]))


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
            raise fail(f"no experiment file {experiment}") from e
        except SpecError as e:
            raise fail(f"{experiment}: {e}") from e
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
            raise fail(str(e)) from e
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
        experiment: Annotated[
            list[str] | None,
            typer.Option("--experiment", "-e", help="Only this experiment (repeatable)."),
        ] = None,
    ) -> None:
        """Write the HTML report (figures, tables, every run as JSON); prints index.html's path."""
        from ..report import write_report

        try:
            print(write_report(db, out, experiments=experiment))
        except (FileNotFoundError, ValueError) as e:
            raise fail(str(e)) from e

    @app.command("export")
    def export(
        db: Annotated[str, typer.Argument(help="Results store (SQLite).")] = "runs.db",
        csv: Annotated[str, typer.Option("--csv", help="CSV file to write.")] = "runs.csv",
        role: Annotated[
            str, typer.Option(help="'final' (reported runs), 'tune' (search runs) or 'all'.")
        ] = "final",
        experiment: Annotated[
            str | None, typer.Option("--experiment", "-e", help="Only this experiment.")
        ] = None,
    ) -> None:
        """Export one row per trial (configuration, outcome, final metrics) to CSV."""
        from ..store import StoreError, to_csv

        if role not in ("final", "tune", "all"):
            raise typer.BadParameter(f"{role!r}; allowed: final, tune, all", param_hint="--role")
        try:
            print(to_csv(db, csv, experiment=experiment, role=None if role == "all" else role))
        except (FileNotFoundError, StoreError) as e:
            raise fail(str(e)) from e
