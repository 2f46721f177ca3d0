"""The report of a repeated search: the chosen weight decay, both searches' choices and results,
and which conclusions are within tuning noise (Sivaprasad et al. 2020)."""

from __future__ import annotations

import re

import pytest

from descentlab.lab import parse, run_experiment
from descentlab.report import write_report
from descentlab.report._data import Group
from descentlab.report._noise import tables, tuning_noise
from descentlab.store import Store

from ._groups import group as _group

TINY = "tests.lab.tiny:problem"


def _search(medians: dict[str, float], *, higher: bool = True) -> dict[str, Group]:
    return {k: _group(k, [m - 0.01, m, m + 0.01], higher=higher) for k, m in medians.items()}


def test_a_ranking_one_search_shows_and_the_other_does_not_is_within_tuning_noise():
    first = _search({"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.7})
    second = _search({"a": 0.85, "b": 0.88, "c": 0.7, "d": 0.6})
    noise = tuning_noise([0, 1], [first, second])
    assert noise.best == ("a", "b") and not noise.best_holds
    verdicts = {(r.first, r.second): (r.winners, r.verdict) for r in noise.rankings}
    assert verdicts == {
        ("a", "b"): (("a", "b"), "within tuning noise"),
        ("a", "c"): (("a", "a"), "holds in every search"),
        ("a", "d"): (("a", "a"), "holds in every search"),
        ("b", "c"): (("b", "b"), "holds in every search"),
        ("b", "d"): (("b", "b"), "holds in every search"),
        ("c", "d"): ((None, "c"), "within tuning noise"),  # a tie, then a gap
    }
    sentence, _, _ = tables(noise)
    assert "a (tuning seed 0), b (tuning seed 1): within tuning noise" in sentence
    assert (
        "Of 6 pairwise rankings, 4 hold in every search and 2 are within tuning noise" in sentence
    )


def test_lower_is_better_and_ties_in_every_search():
    first = _search({"a": 1.0, "b": 2.0, "c": 2.0}, higher=False)
    second = _search({"a": 1.5, "b": 2.0, "c": 2.0}, higher=False)
    noise = tuning_noise([3, 4], [first, second])
    assert noise.best == ("a", "a") and noise.best_holds
    by_pair = {(r.first, r.second): r for r in noise.rankings}
    assert by_pair["a", "b"].holds and by_pair["a", "b"].gaps == pytest.approx((-1.0, -0.5))
    assert by_pair["b", "c"].verdict == "no search ranks them"
    assert not by_pair["b", "c"].noisy


def test_only_labels_every_search_has_are_compared():
    noise = tuning_noise([0, 1], [_search({"a": 0.9, "b": 0.8}), _search({"b": 0.8})])
    assert noise.labels == ("b",) and noise.rankings == ()


@pytest.fixture(scope="module")
def repeated(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("noise")
    exp = parse(
        {
            "problems": [TINY],
            "seeds": 2,
            "tuning": {
                "method": "random",
                "budget": 3,
                "seeds": [0, 1],
                "weight_decay_range": [1e-3, 1.0],
            },
            "optimizers": [
                "sgdm",
                "adamw",
                {"name": "adam", "hparams": {"lr": 0.01}, "tune": False},
            ],
        },
        name="noisy",
    )
    run_experiment(exp, db=tmp / "runs.db", progress=False)
    index = write_report(tmp / "runs.db", tmp / "out")
    with Store(tmp / "runs.db") as store:
        chosen = {
            (t.tag.role, t.tag.label): (t.trial.hparams["lr"], t.trial.hparams.get("weight_decay"))
            for role in ("final", "final@1")
            for t in store.records(role=role)
        }
    return index.read_text(), (index.parent / "tables.md").read_text(), chosen, index.parent


def _cells(row: str) -> list[str]:
    return re.findall(r"<td>(.*?)</td>", row)


def test_the_final_table_shows_the_chosen_weight_decay(repeated):
    page, _, chosen, _ = repeated
    table = re.search(r"<table class=final-metrics>(.*?)</table>", page, re.S).group(1)
    assert "<th>lr</th><th>weight decay</th>" in table
    rows = [_cells(r) for r in re.findall(r"<tr(?: class=best)?><td>.*?</tr>", table)]
    rows = {c[0].removesuffix(" ★"): c for c in rows}
    assert rows["adamw"][1:3] == [f"{x:.4g}" for x in chosen["final", "adamw"]]
    assert rows["sgdm"][2] == "-"  # not decoupled: its weight decay is not searched


def test_both_searches_choices_and_results_are_shown(repeated):
    page, md, chosen, out = repeated
    assert "<h3>Tuning noise: one search per tuning seed</h3>" in page
    table = re.search(r"<table class=tuning-choices>(.*?)</table>", page, re.S).group(1)
    head = re.findall(r"<th>(.*?)</th>", table)
    assert head == [
        "optimizer",
        "tuning seed 0: setting",
        "tuning seed 0: test accuracy",
        "tuning seed 1: setting",
        "tuning seed 1: test accuracy",
    ]
    rows = {c[0]: c for c in map(_cells, re.findall(r"<tr><td>.*?</tr>", table))}
    assert list(rows) == ["sgdm", "adamw", "adam"]
    for i, role in ((1, "final"), (3, "final@1")):
        lr, wd = chosen[role, "adamw"]
        assert rows["adamw"][i] == f"lr {lr:.4g}, wd {wd:.4g}"
        assert rows["sgdm"][i] == f"lr {chosen[role, 'sgdm'][0]:.4g}"
        assert rows["adam"][i] == "lr 0.01"  # untuned: the same in both searches
    assert rows["adam"][2] == rows["adam"][4]  # ... and the same runs
    pairs = re.search(r"<table class=tuning-noise>(.*?)</table>", page, re.S).group(1)
    assert len(re.findall(r"<tr><td>", pairs)) == 3  # every pair of 3 optimizers
    assert "#### tests.lab.tiny:problem: tuning noise" in md
    assert md.count("| tuning seed 0: setting |") == 1
    figure = re.search(r'<img src="(figures/noisy-tuning-noise\.png)"', page)
    assert figure is not None
    assert (out / figure.group(1)).stat().st_size > 5_000  # a drawn PNG


def test_the_protocol_names_both_tuning_seeds(repeated):
    page, md, _, _ = repeated
    for text in (page, md):
        assert "once per tuning seed (0, 1: other draws and other training seeds)" in text
        assert "the weight decay in [0.001, 1]" in text


def test_a_single_search_has_no_tuning_noise_section(tmp_path):
    exp = parse(
        {"problems": [TINY], "optimizers": ["adam"], "tuning": {"method": "grid", "budget": 1}},
        name="single",
    )
    run_experiment(exp, db=tmp_path / "runs.db", progress=False)
    page = write_report(tmp_path / "runs.db", tmp_path / "out").read_text()
    assert "Tuning noise" not in page and "weight decay</th>" not in page
    assert "on seed 0, chosen on the final validation metric" in page
