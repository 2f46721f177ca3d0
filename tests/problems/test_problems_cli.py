"""``descentlab problems`` and ``descentlab compare`` on a tiny budget."""

from __future__ import annotations

from typer.testing import CliRunner

from descentlab.cli import app

runner = CliRunner()


def test_problems_lists_every_problem():
    from descentlab.problems import names

    result = runner.invoke(app, ["problems"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for name in names():
        assert name in result.output


def test_compare_tiny_budget():
    result = runner.invoke(
        app,
        ["compare", "--epochs", "1", "-o", "adam", "-o", "lookahead(sgdm)", "--seed", "3"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "adam" in result.output and "lookahead(sgdm)" in result.output
    assert "test accuracy" in result.output and "1 epochs, seed 3" in result.output


def test_compare_bad_names_exit_2():
    assert runner.invoke(app, ["compare", "-p", "digits-mpl"]).exit_code == 2
    result = runner.invoke(app, ["compare", "-o", "adamm"])
    assert result.exit_code == 2 and "adam" in result.output
