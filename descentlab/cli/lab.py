"""Commands of the lab area: ``problems``, ``compare``, ``run``, ``report`` and ``export``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from ..report.rounding import median_iqr, rounded
from ._common import DEVICE_HELP, details, device, device_failure, fail, show, table, unknown

if TYPE_CHECKING:
    from ..report import SummaryRow


def _target(p: Any) -> str:
    t = p.target
    return f"{t.split} {t.metric} {'>=' if t.higher_is_better else '<='} {t.value:g}"


def _problems_table() -> Table:
    from ..problems import PROBLEMS

    t = table("name", "kind", "target", "budget")
    for p in PROBLEMS.values():
        t.add_row(p.name, p.kind, _target(p), f"{p.budget.epochs} epochs x {p.budget.batch_size}")
    return t


def _problem(name: str) -> None:
    from ..problems import PROBLEMS

    if name not in PROBLEMS:
        raise unknown("problem", name, PROBLEMS, "problems")
    p = PROBLEMS[name]
    details(
        p.name,
        [
            ("kind", p.kind),
            ("description", p.description),
            (
                "metric",
                f"{p.main_metric} ({'higher' if p.higher_is_better else 'lower'} is better)",
            ),
            ("target", _target(p)),
            ("budget", f"{p.budget.epochs} epochs, batch size {p.budget.batch_size}"),
            ("options", ", ".join(sorted(p.axes))),
            ("source", p.source),
        ],
    )


def _results(rows: Sequence[SummaryRow], metric: str) -> Table:
    """``compare``'s table: one row per optimizer, the test metric as median [IQR]."""
    header = ("optimizer", "lr", "runs", "diverged", "train\nloss", f"test {metric}\nmedian [IQR]")
    t = table(*header, "s/run")
    for column in t.columns[1:]:
        column.justify = "right"
    t.columns[5].no_wrap = True  # "0.9694 [0.9667, 0.9694]" stays on one line
    for r in rows:
        test, loss, wall = r.test, r.train_loss, r.wall_time
        t.add_row(
            r.label,
            ", ".join(f"{lr:g}" for lr in r.lrs),
            str(r.runs),
            str(r.diverged),
            rounded(loss.median, loss.q3 - loss.q1),
            median_iqr(test.median, test.q1, test.q3),
            f"{wall.median:.1f}",
        )
    return t


def register(app: typer.Typer) -> None:
    """Add this area's commands to ``app``."""
    _register_engine(app)

    @app.command("problems")
    def problems(
        name: Annotated[
            str | None, typer.Argument(help="Show this problem's details.", show_default=False)
        ] = None,
    ) -> None:
        """List the built-in problems, or show one's details.

        The list: name, kind, target and budget.
        """
        if name is not None:
            return _problem(name)
        show(_problems_table())
        typer.echo("\nDetails: descentlab problems NAME")

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
        device_name: Annotated[str, typer.Option("--device", help=DEVICE_HELP)] = "auto",
        trials_per_gpu: Annotated[int, typer.Option(min=1, help="Trials sharing a GPU.")] = 1,
    ) -> None:
        """Compare the lecture's optimizers on one problem.

        The built-in experiment, then its report.

        Each optimizer's learning rate is tuned with the same budget (a grid of 3 around its
        default, on the validation metric); the best is rerun on every seed. Prints the median test
        metric per optimizer and, last, the path of the HTML report. Finished trials are kept in
        the store, so running it again only runs what is missing.
        """
        import os

        from ..lab import DeviceError, SpecError, default_experiment, run_experiment
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
        try:  # the device is resolved once, before anything is written
            run_experiment(
                exp,
                db=db,
                workers=workers or os.cpu_count() or 1,
                data_dir=data_dir,
                device=device_name,
                trials_per_gpu=trials_per_gpu,
            )
        except DeviceError as e:
            raise device_failure(device_name, e) from None
        except StoreError as e:
            raise fail(str(e)) from e
        n_epochs = exp.epochs_for(exp.problems[0])
        with Store(db) as store:
            rows = next(iter(summary(store, exp.name).values()), [])
        metric = rows[0].metric if rows else "metric"
        typer.echo(
            f"{problem}: {n_epochs} epochs, seed {seed} + {seeds - 1} more, "
            f"learning rate tuned (grid of {exp.tuning.budget})"
        )
        show(_results(rows, metric))
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
        device_name: Annotated[
            str | None,
            typer.Option("--device", help="Instead of the file's device: " + DEVICE_HELP),
        ] = None,
        trials_per_gpu: Annotated[int, typer.Option(min=1, help="Trials sharing a GPU.")] = 1,
    ) -> None:
        """Run an experiment's unfinished trials into the store.

        Prints the store's path.
        """
        from ..lab import DeviceError, SpecError, load, run_experiment

        if device_name is not None:
            device(device_name)
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
                device=device_name,
                trials_per_gpu=trials_per_gpu,
            )
        except DeviceError as e:  # resolved once, before anything is written
            raise device_failure(device_name or spec.device, e) from None
        except (ValueError, RuntimeError) as e:
            raise fail(str(e)) from e
        typer.echo(
            f"{s.planned} trials: {s.skipped} already done, {s.finished} finished "
            f"({s.diverged} diverged), {s.failed} failed, {s.capped} left by --max-trials",
            err=True,
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
        """Write the HTML report; prints index.html's path.

        The report: figures, tables and every run as JSON.
        """
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
        """Export one row per trial to CSV.

        A row: the configuration, the outcome and the final metrics.
        """
        from ..store import StoreError, to_csv

        if role not in ("final", "tune", "all"):
            raise typer.BadParameter(f"{role!r}; allowed: final, tune, all", param_hint="--role")
        try:
            print(to_csv(db, csv, experiment=experiment, role=None if role == "all" else role))
        except (FileNotFoundError, StoreError) as e:
            raise fail(str(e)) from e
