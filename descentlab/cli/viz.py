"""Commands of the viz area: ``trajectories`` and the ``demo`` group (``adam-failures``,
``edge-of-stability``, ``flat-sharp``)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ._common import DEVICE_HELP, WIDTH, device, show, table, unknown

demo = typer.Typer(
    name="demo", help="The lecture's worked examples, with numbers.", no_args_is_help=True
)


def _table(rows: list[dict[str, Any]], *, digits: int | None = None) -> Table:
    """The rows as a table; a header wraps to its column's widest cell (or longest word).

    Floats take 6 significant digits, or ``digits`` without an exponent (demos.tables.number).
    """
    from ..demos.tables import number

    def cell(v: Any) -> str:
        if not isinstance(v, float):
            return str(v)
        return f"{v:.6g}" if digits is None else number(v, digits)

    cells = [[cell(v) for v in row.values()] for row in rows]
    widths = [max(10, *map(len, column)) for column in zip(*cells)]
    t = table(
        *("\n".join(textwrap.wrap(h, w, break_long_words=False)) for h, w in zip(rows[0], widths))
    )
    for row in cells:
        t.add_row(*row)
    return t


def _say(text: str) -> None:
    """Echo ``text`` wrapped at 80 columns (a leading newline kept)."""
    typer.echo(("\n" if text.startswith("\n") else "") + textwrap.fill(text.strip(), WIDTH))


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

    @demo.command("edge-of-stability")
    def edge_of_stability(
        output: Annotated[
            Path, typer.Option("--output", "-o", help="Folder for the figure.")
        ] = Path("edge-of-stability"),
        steps: int = typer.Option(1200, "--steps", min=1, help="Full-batch steps per run."),
        every: int = typer.Option(20, "--every", min=1, help="Steps between measurements."),
        seeds: int = typer.Option(3, "--seeds", min=1, help="Runs per learning rate."),
        n_train: int = typer.Option(1000, "--n-train", min=10, help="Training digits used."),
        width: int = typer.Option(100, "--width", min=1, help="Hidden width of the MLP."),
        gd_lr: Annotated[
            list[float] | None, typer.Option("--gd-lr", help="GD learning rate; repeat.")
        ] = None,
        adam_lr: Annotated[
            list[float] | None, typer.Option("--adam-lr", help="Adam learning rate; repeat.")
        ] = None,
    ) -> None:
        """Sharpness at 2/lr (GD) and 38/lr (Adam).

        Cohen et al. 2021 and 2022: full-batch GD's top Hessian eigenvalue and Adam's
        preconditioned one on digits; a table of plateaus against the predictions.
        """
        from ..demos import edge_of_stability as run
        from ..demos import plot_edge_of_stability
        from ..diagnostics import DINH_NOTE

        if every > steps:
            raise typer.BadParameter(
                f"must be <= --steps ({steps}), got {every}", param_hint="--every"
            )
        result = run(
            gd_lrs=tuple(gd_lr or (0.2, 0.4)),
            adam_lrs=tuple(adam_lr or (2e-3, 4e-3)),
            seeds=seeds,
            steps=steps,
            every=every,
            n_train=n_train,
            width=width,
        )
        settings = result.settings
        _say(
            f"Edge of stability: {settings['model']}; {settings['data']}; {steps} steps, "
            f"measured every {settings['every']}; plateau = median over the last half of a "
            f"run; medians and IQRs over {seeds} seeds"
        )
        show(_table(result.rows, digits=4))
        diverged = [f"{r.optimizer} lr={r.lr:g} seed {r.seed}" for r in result.runs if r.diverged]
        if diverged:
            typer.echo(f"diverged (plateaus from the steps before): {', '.join(diverged)}")
        _say(DINH_NOTE)
        typer.echo(f"wrote {plot_edge_of_stability(result, output / 'edge_of_stability.png')}")

    @demo.command("flat-sharp")
    def flat_sharp(
        output: Annotated[
            Path, typer.Option("--output", "-o", help="Folder for the figures.")
        ] = Path("flat-sharp"),
        problem: str = typer.Option("digits-mlp", "--problem", help="A supervised problem."),
        seeds: int = typer.Option(5, "--seeds", min=1, help="Runs per optimizer and batch."),
        max_epochs: int = typer.Option(100, "--max-epochs", min=1, help="Training budget."),
        n_train: int | None = typer.Option(None, "--n-train", min=10, help="Fewer examples."),
        level: Annotated[
            list[float] | None, typer.Option("--level", help="Training-loss level; repeat.")
        ] = None,
        keskar_level: float = typer.Option(
            0.01, "--keskar-level", min=0.0, help="Train loss of the batch-size pair."
        ),
    ) -> None:
        """Sharpness at equal train loss, and batch size.

        SGDM vs Adam where each first reaches the same training losses; Keskar et al. 2017's
        epsilon-sharpness and interpolation; Dinh et al. 2017's rescaling.
        """
        from ..demos import flat_sharp as run
        from ..demos import plot_equal_loss, plot_small_large_batch
        from ..diagnostics import DINH_NOTE
        from ..problems import registry

        if problem not in registry.names():
            raise unknown("problem", problem, registry.names(), "problems")
        kwargs: dict[str, Any] = {"levels": tuple(level)} if level else {}
        result = run(
            problem=problem,
            options={"n_train": n_train} if n_train else None,
            seeds=seeds,
            max_epochs=max_epochs,
            keskar_level=keskar_level,
            **kwargs,
        )
        s = result.settings
        _say(
            f"Sharpness at equal training loss: {s['problem']}, batch {s['batch size']}, "
            f"{', '.join(s['optimizers'].values())}; loss checked every {s['check every']} "
            f"steps; medians and IQRs over {seeds} seeds"
        )
        show(_table(result.equal_loss, digits=3))
        _say(f"\nKeskar et al. 2017: batch {s['batch size']} vs {s['large batch']}, {s['keskar']}")
        show(_table(result.small_large, digits=3))
        _say("Along (1 - α) x_small + α x_large (medians over seeds):")
        show(_table(result.line, digits=3))
        if result.rescaled:
            typer.echo("\nDinh et al. 2017: the same functions, rescaled (medians over seeds)")
            show(_table(result.rescaled, digits=3))
        else:
            _say(
                f"\nDinh et al. 2017: not run, the model cannot be rescaled: {s['not rescalable']}"
            )
        _say(DINH_NOTE)
        for path in (
            plot_equal_loss(result, output / "equal_loss.png"),
            plot_small_large_batch(result, output / "small_large_batch.png"),
        ):
            typer.echo(f"wrote {path}")

    @demo.command("hessian-heterogeneity")
    def hessian_heterogeneity_demo(
        output: Annotated[
            Path, typer.Option("--output", "-o", help="Folder for the figures.")
        ] = Path("hessian-heterogeneity"),
        seeds: int = typer.Option(3, "--seeds", min=1, help="Initialisations per model."),
        steps: int = typer.Option(20, "--steps", min=2, help="Lanczos steps per block."),
        layers: int = typer.Option(4, "--layers", min=1, help="GPT layers (nanoGPT: 4)."),
        quadratic_seeds: int = typer.Option(5, "--quadratic-seeds", min=1, help="Quadratics."),
        quadratic_steps: int = typer.Option(400, "--quadratic-steps", min=1, help="Steps on them."),
    ) -> None:
        """Block Hessian spectra: why transformers need Adam.

        Zhang et al. 2024's JS0 at initialisation (GPT against CNN and MLP); GD, heavy ball and
        Adam at their best learning rates on block-diagonal quadratics.
        """
        from ..demos import hessian_heterogeneity as run
        from ..demos import plot_hessian_heterogeneity, plot_quadratic_race, quadratic_race

        result = run(seeds=tuple(range(seeds)), steps=steps, layers=layers)
        typer.echo(
            f"Block heterogeneity JS0 at initialisation (mean pairwise Jensen-Shannon, nats; "
            f"ln 2 = disjoint): {steps} Lanczos steps per block, GPT of {layers} layers; "
            f"medians and IQRs over {seeds} seeds"
        )
        show(_table(result.rows, digits=3))
        race = quadratic_race(seeds=tuple(range(quadratic_seeds)), steps=quadratic_steps)
        typer.echo(
            f"\nBlock-diagonal quadratics (4 blocks of 25, condition number 5000), each optimizer "
            f"at its best lr per seed; medians and IQRs over {quadratic_seeds} seeds"
        )
        show(_table(race.rows, digits=3))
        for path in (
            plot_hessian_heterogeneity(result, output / "spectrum-blocks.png"),
            plot_quadratic_race(race, output / "spectrum-quadratic.png"),
        ):
            typer.echo(f"wrote {path}")

    @demo.command("gradient-noise")
    def gradient_noise_demo(
        output: Annotated[
            Path, typer.Option("--output", "-o", help="Folder for the figure.")
        ] = Path("gradient-noise"),
        seeds: int = typer.Option(3, "--seeds", min=1, help="Initialisations per model."),
        batches: int = typer.Option(64, "--batches", min=4, help="Minibatches per seed."),
        train_steps: int = typer.Option(
            0, "--train-steps", min=0, help="Adam steps before measuring (0: at initialisation)."
        ),
    ) -> None:
        """Gradient-noise tails: transformer vs CNN.

        The charlm-transformer against the CNN and MLP, minibatches of each problem's size.
        """
        from ..demos import noise_tails, plot_noise_tails

        result = noise_tails(seeds=tuple(range(seeds)), batches=batches, train_steps=train_steps)
        when = f"after {train_steps} Adam steps" if train_steps else "at initialisation"
        typer.echo(
            f"Gradient noise {when}: {batches} minibatches a seed, noise = minibatch gradient "
            f"minus their mean; alpha = 2 is Gaussian; medians and IQRs over {seeds} seeds"
        )
        show(_table(result.rows, digits=3))
        typer.echo(f"wrote {plot_noise_tails(result, output / 'noise-tails.png')}")

    app.add_typer(demo)
