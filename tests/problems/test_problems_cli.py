"""``descentlab problems`` (``compare`` moved to the lab engine; its tests are in tests/lab)."""

from __future__ import annotations

from typer.testing import CliRunner

from descentlab.cli import app
from descentlab.problems import PROBLEMS


def test_problems_lists_every_problem_with_its_metric_and_target():
    result = CliRunner().invoke(app, ["problems"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for p in PROBLEMS.values():
        assert p.name in result.output
        assert f"{p.target.split} {p.target.metric}" in result.output
