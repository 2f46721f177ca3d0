"""The report: every figure and table written from the store alone, offline, runs as JSON."""

from __future__ import annotations

import json
import math
import platform
import re

import numpy as np
import pytest

from descentlab.lab import parse, run_experiment
from descentlab.report import write_report
from descentlab.report._data import performance_profile, stats

TINY = "tests.lab.tiny:problem"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    exp = parse(
        {
            "problems": [TINY, {"name": TINY, "options": {"width": 4}}],
            "seeds": 2,
            "tuning": {"method": "grid", "budget": 2},
            "optimizers": [
                "sgdm",
                "adam",
                {"name": "sgd", "label": "exploding", "hparams": {"lr": 1e38}, "tune": False},
            ],
        },
        name="demo",
    )
    run_experiment(exp, db=tmp / "runs.db", progress=False)
    index = write_report(tmp / "runs.db", tmp / "out")
    return index, index.read_text()


def test_every_figure_is_written_and_shown(report):
    index, page = report
    shown = re.findall(r'<img src="([^"]+)"', page)
    kinds = [
        re.sub(r".*-(curves|gap|search|time-to-target|profile)\.png$", r"\1", s) for s in shown
    ]
    per_problem = ["curves", "gap", "search"]
    assert kinds == [*per_problem, *per_problem, "time-to-target", "profile"]
    for src in shown:
        png = index.parent / src
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_final_metrics_table_per_problem(report):
    _, page = report
    tables = re.findall(r"<table class=final-metrics>(.*?)</table>", page, re.S)
    assert len(tables) == 2
    for table in tables:
        assert "mean ± std" in table and "median [IQR]" in table and "diverged" in table
        assert table.count("★") == 1  # the best is marked once
        row = re.search(r"<tr><td>exploding</td>(.*?)</tr>", table).group(1)
        cells = re.findall(r"<td>(.*?)</td>", row)
        assert cells[1:4] == ["2", "2", "0"]  # 2 runs, both diverged, none failed
        assert cells[-3] == "∞ (2)"  # time to target: missed twice
        assert cells[-2] == "cpu" + f" ({platform.processor() or platform.machine()})"  # ran on


def test_markdown_tables_for_a_readme(report):
    index, _ = report
    md = (index.parent / "tables.md").read_text()
    assert md.startswith("## demo\n")
    assert md.count("| optimizer | lr | runs | diverged |") == 2  # one table per problem
    assert md.count("| exploding | 1e+38 | 2 | 2 | 0 |") == 2


def test_page_works_offline(report):
    _, page = report
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page


def test_every_run_is_exported_as_json(report):
    index, page = report
    files = sorted((index.parent / "runs").glob("*.json"))
    # per problem: 2 + 2 search runs, adam and sgdm on seed 1, exploding on 2 seeds
    assert len(files) == 2 * 8
    for f in files:
        text = f.read_text()
        assert "NaN" not in text and "Infinity" not in text  # strict JSON
        run = json.loads(text)
        assert {"config", "summary", "curves", "tags", "status"} <= set(run)
        assert f'href="runs/{f.name}"' in page


def test_stats_median_and_iqr_ignore_non_finite():
    s = stats([1.0, 2.0, 3.0, 4.0, math.nan, math.inf])
    assert (s.median, s.q1, s.q3, s.n) == (2.5, 1.75, 3.25, 4)
    assert s.mean == 2.5 and s.std == pytest.approx(np.std([1, 2, 3, 4]))
    assert math.isnan(stats([math.nan]).median)


def test_performance_profile_dolan_more():
    costs = {
        "p1": {"a": 1.0, "b": 2.0},
        "p2": {"a": 4.0, "b": 2.0},
        "p3": {"a": math.inf, "b": 3.0},
        "p4": {"a": math.inf, "b": math.inf},  # unsolved: counts against both
    }
    rho = performance_profile(costs, np.array([1.0, 2.0, 10.0]))
    assert list(rho["a"]) == [0.25, 0.5, 0.5]
    assert list(rho["b"]) == [0.5, 0.75, 0.75]


def test_report_of_chosen_experiments(report, tmp_path):
    index, _ = report
    db = index.parent.parent / "runs.db"
    other = parse(
        {"problems": [TINY], "optimizers": ["adam"], "tuning": {"method": "defaults"}},
        name="other",
    )
    run_experiment(other, db=db, progress=False)
    page = write_report(db, tmp_path / "out", experiments=["other"]).read_text()
    assert "Experiment other" in page and "Experiment demo" not in page
    assert len(list((tmp_path / "out" / "runs").glob("*.json"))) == 1
    with pytest.raises(ValueError, match=r"nope.*stored: demo, other"):
        write_report(db, tmp_path / "x", experiments=["nope"])


def test_sharpness_of_the_minima_next_to_the_test_metric(tmp_path):
    """With ``sharpness = true`` every final point is measured and the table shows it."""
    exp = parse(
        {
            "problems": [TINY],
            "seeds": 2,
            "sharpness": True,
            "tuning": {"method": "grid", "budget": 1},
            "optimizers": ["sgdm", "adam"],
        },
        name="sharp",
    )
    run_experiment(exp, db=tmp_path / "runs.db", progress=False)
    page = write_report(tmp_path / "runs.db", tmp_path / "out").read_text()
    table = re.search(r"<table class=final-metrics>(.*?)</table>", page, re.S).group(1)
    assert "top Hessian eigenvalue (median)" in table and "ε-sharpness (median)" in table
    for label in ("sgdm", "adam"):
        cells = re.findall(
            r"<td>(.*?)</td>", re.search(rf"<tr[^>]*><td>{label}.*?</tr>", table).group(0)
        )
        eig, eps = float(cells[-2]), float(cells[-1])
        assert eig > 0 and eps >= 0


def test_sharpness_key_is_validated():
    from descentlab.lab import SpecError

    with pytest.raises(SpecError, match="sharpness: 'yes'; allowed: true or false"):
        parse({"problems": [TINY], "optimizers": ["adam"], "sharpness": "yes"})


def test_one_table_per_axis_and_the_cost_of_a_step_where_the_batch_size_varies(tmp_path):
    pretrain = {"problem": TINY, "options": {"width": 4}, "label": "pre"}
    own = {"name": TINY, "options": {"width": 4}, "axes": {"finetune": ["none", pretrain]}}
    exp = parse(
        {
            "problems": [TINY, own],
            "seeds": 2,
            "design": "one-at-a-time",
            "batch_size": [32, "full"],
            "init": ["default", "zeros"],
            "tuning": {"method": "defaults"},
            "optimizers": ["sgdm"],
        },
        name="tricks",
    )
    run_experiment(exp, db=tmp_path / "runs.db", progress=False)
    write_report(tmp_path / "runs.db", tmp_path / "out")
    tables = (tmp_path / "out" / "tables.md").read_text()
    titles = re.findall(r"^### (.+)$", tables, flags=re.M)
    plain, special = TINY, f"{TINY}[width=4]"
    assert titles == [f"{plain}: batch_size", f"{plain}: init", f"{special}: finetune"]
    init = tables.split(f"### {plain}: init")[1].split("###")[0]
    assert "| sgdm " in init and "sgdm [init=zeros]" in init and "bs=full" not in init
    figures = sorted(p.name for p in (tmp_path / "out" / "figures").glob("*-cost.png"))
    assert figures == ["tricks-tests-lab-tiny-problem-batch-size-cost.png"]
    assert "3 variants vary batch_size, finetune, init one at a time" in tables
    assert re.search(r"\| sgdm \[finetune=pre\]( ★)? \| 0.01 \| 2 \| 0 \| 0 \|", tables)  # both ran


def test_statistics_are_rounded_to_their_spread(report):
    _, page = report
    cells = [c.split(" ± ") for c in re.findall(r"<td>([^<]*±[^<]*)</td>", page)]
    cells = [(mean, std) for mean, std in cells if mean != "–" and std not in ("0", "–")]
    assert cells  # two seeds: a spread to round to
    for mean, std in cells:
        cell = f"{mean} ± {std}"
        assert "e" not in mean, cell  # the tiny problem's metrics print in fixed notation
        decimals = len(mean.partition(".")[2])
        assert len(std.partition(".")[2]) == decimals, cell  # the same last decimal place
        assert len(std.replace(".", "").lstrip("0")) <= 2, cell  # 1-2 significant digits
    for cell in re.findall(r"<td>([^<]*\[[^<]*\])</td>", page):
        median, q1, q3 = re.fullmatch(r"(\S+) \[(\S+), (\S+)\]", cell).groups()
        if median != "–" and q1 != q3:
            assert len({len(x.partition(".")[2]) for x in (median, q1, q3)}) == 1, cell
