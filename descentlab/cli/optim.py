"""``descentlab optimizers [NAME]``: the registry; ``build-kernels``."""

from __future__ import annotations

import inspect
from typing import Annotated

import typer

from ._common import details, show, table, unknown

_WRAPPER_REFERENCE = "the paper's algorithm (test)"


def _summary(cls: type) -> str:
    return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""


def _option(p: inspect.Parameter) -> str:
    return p.name if p.default is p.empty else f"{p.name}={p.default!r}"


def _optimizer(name: str) -> None:
    from ..optim import REGISTRY, WRAPPERS

    wrapper = name.removesuffix("(<name>)")
    if wrapper in WRAPPERS:
        cls = WRAPPERS[wrapper]
        options = inspect.signature(cls.__init__).parameters.values()
        details(
            f"{wrapper}(<name>)",
            [
                ("class", f"{cls.__module__}.{cls.__qualname__}"),
                ("summary", _summary(cls)),
                ("options", ", ".join(_option(p) for p in options if p.name != "self")),
                ("tested against", _WRAPPER_REFERENCE),
            ],
        )
        return
    if name not in REGISTRY:
        known = [*REGISTRY, *(f"{w}(<name>)" for w in WRAPPERS)]
        raise unknown("optimizer", name, known, "optimizers")
    e = REGISTRY[name]
    details(
        e.name,
        [
            ("class", f"{e.cls.__module__}.{e.cls.__qualname__}"),
            ("summary", _summary(e.cls)),
            ("fixed", ", ".join(f"{k}={v}" for k, v in e.fixed.items()) or "none"),
            ("default lr", f"{e.lr:g}"),
            ("paper", e.paper),
            ("tested against", e.reference),
        ],
    )


def register(app: typer.Typer) -> None:
    """Add this area's commands to ``app``."""

    @app.command("optimizers")
    def optimizers(
        name: Annotated[
            str | None, typer.Argument(help="Show this optimizer's details.", show_default=False)
        ] = None,
    ) -> None:
        """List the registry, or show one name's details.

        The list: name, class and the reference it is tested against.
        """
        from ..optim import REGISTRY, WRAPPERS

        if name is not None:
            return _optimizer(name)
        t = table("name", "class", "tested against")
        for e in REGISTRY.values():
            t.add_row(e.name, e.cls.__name__, e.reference)
        for w, cls in WRAPPERS.items():
            t.add_row(f"{w}(<name>)", cls.__name__, _WRAPPER_REFERENCE)
        show(t)
        typer.echo(
            "\nDetails (paper, fixed hyperparameters, default lr): descentlab optimizers NAME"
        )

    @app.command("build-kernels")
    def build_kernels(
        verbose: bool = typer.Option(False, "--verbose", help="Show the compiler's output."),
    ) -> None:
        """Build the fused CPU kernels now (once per machine).

        It takes about a minute and prints where torch caches them, so that no training run pays
        the build on its first step.
        """
        from ..optim.kernels import cpu as _kernels

        try:
            _kernels.build(verbose=verbose)
        except RuntimeError as exc:
            typer.echo(f"{exc}; the optimizers use their readable path", err=True)
            raise typer.Exit(2) from exc
        typer.echo(str(_kernels.build_directory()))
