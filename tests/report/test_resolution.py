"""Whether a search resolved each optimizer's best: a best at the edge ("widen it"), a best whose
searched neighbours are more than a factor 3 away ("under-resolved"), two tuning seeds whose
choices' results differ beyond their IQR; "within tuning noise" only where the searches resolved."""

from __future__ import annotations

import dataclasses
import re

import pytest

from descentlab.lab import parse, run_experiment
from descentlab.report import write_report
from descentlab.report._data import Group, load_groups
from descentlab.report._noise import load_repeats, tables, tuning_noise
from descentlab.report._resolution import (
    Disagreement,
    Resolution,
    disagreements,
    load_resolutions,
    resolution,
)
from descentlab.store import Store

from ._groups import group as _group

TINY = "tests.lab.tiny:problem"
LRS = [1e-3, 2e-3, 4e-3, 8e-3]


def _searched(lrs, wds=None):
    return [{"lr": lr} if wds is None else {"lr": lr, "weight_decay": wd} for lr, wd in
            zip(lrs, wds or lrs)]  # fmt: skip


def _res(chosen, lrs, wds=None, label="a", seed=0):
    return resolution("p", label, seed, chosen, _searched(lrs, wds))


# --- one search -------------------------------------------------------------------------------


def test_a_best_inside_a_dense_search_is_resolved():
    r = _res({"lr": 2e-3}, LRS)
    assert (r.below, r.above) == pytest.approx((2.0, 2.0))
    assert r.resolved and not r.edges and not r.under_resolved
    assert r.flags == () and r.text == "resolved"
    assert r.lrs == tuple(LRS) and r.lr == 2e-3


@pytest.mark.parametrize(("lr", "side"), [(8e-3, "largest"), (1e-3, "smallest")])
def test_a_best_at_the_edge_says_widen_it(lr, side):
    r = _res({"lr": lr}, LRS)
    assert r.edges == (("lr", side),) and not r.under_resolved and not r.resolved
    assert r.text == f"widen it: the best lr is the {side} searched"
    assert r.where == "a (tuning seed 0: widen it)"


def test_a_single_setting_is_the_only_one_searched():
    r = _res({"lr": 1e-3}, [1e-3])
    assert r.edges == (("lr", "only"),) and (r.below, r.above) == (None, None)


def test_a_best_with_a_far_neighbour_is_under_resolved():
    r = _res({"lr": 1e-3}, [1e-4, 1e-3, 1.5e-3])
    assert r.under_resolved and not r.edges and not r.resolved
    assert r.below == pytest.approx(10.0)
    assert r.text == "under-resolved: the nearest lr searched is ÷10 below"
    both = _res({"lr": 1e-3}, [1e-5, 1e-3, 1e-1])
    assert both.text == "under-resolved: the nearest lr searched is ÷100 below and ×100 above"


def test_a_factor_of_three_after_rounding_is_resolved():
    # a grid spaced by exactly 3, stored to 4 significant digits: 3.333e-4 is 1e-3 / 3.0003
    r = _res({"lr": 1e-3}, [3.333e-4, 1e-3, 3e-3])
    assert r.resolved
    assert _res({"lr": 1e-3}, [3.2e-4, 1e-3, 3e-3]).under_resolved  # 3.125: beyond rounding


def test_the_weight_decay_counts_only_where_it_was_searched():
    wds = [1e-3, 1e-1, 1e-2, 1e-4]
    r = _res({"lr": 2e-3, "weight_decay": 1e-1}, LRS, wds)
    assert r.edges == (("weight decay", "largest"),) and not r.resolved
    assert "widen it: the best weight decay is the largest searched" in r.text
    inside = _res({"lr": 2e-3, "weight_decay": 1e-2}, LRS, [1e-3, 1e-2, 1e-1, 1e-4])
    assert inside.resolved
    fixed = _res({"lr": 2e-3, "weight_decay": 0.1}, LRS, [0.1] * 4)  # the optimizer's own
    assert fixed.resolved


def test_flags_are_typed_records():
    r = _res({"lr": 2e-3}, LRS)
    assert dataclasses.is_dataclass(r) and isinstance(r, Resolution)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.lr = 1.0


# --- two searches -----------------------------------------------------------------------------


def _search(medians: dict[str, float], spread: float = 0.01) -> dict[str, Group]:
    return {k: _group(k, [m - 2 * spread, m - spread, m, m + spread, m + 2 * spread])
            for k, m in medians.items()}  # fmt: skip


def test_searches_whose_choices_differ_beyond_the_iqr_are_flagged():
    first = _search({"a": 0.90, "b": 0.80})
    second = _search({"a": 0.85, "b": 0.805})  # a: 0.05 apart, IQR 0.02; b: 0.005 apart
    found = disagreements("p", [0, 1], [first, second])
    assert len(found) == 1 and isinstance(found[0], Disagreement)
    d = found[0]
    assert (d.problem, d.label, d.seeds) == ("p", "a", (0, 1))
    assert d.medians == pytest.approx((0.90, 0.85)) and d.iqr == pytest.approx(0.02)
    assert found[0].text.startswith("searches differ: tuning seed 0 0.9 vs 1 0.85")
    assert disagreements("p", [0, 1], [first, first]) == ()


def _resolved(labels, seeds=(0, 1), unresolved=()):
    out = {}
    for label in labels:
        for s in seeds:
            lr = 8e-3 if (label, s) in unresolved else 2e-3  # 8e-3: the largest searched
            out["p", label, s] = _res({"lr": lr}, LRS, label=label, seed=s)
    return out


def test_within_tuning_noise_only_where_every_search_resolved():
    first = _search({"a": 0.9, "b": 0.8, "c": 0.7})
    second = _search({"a": 0.85, "b": 0.88, "c": 0.6})
    resolved = tuning_noise([0, 1], [first, second], _resolved("abc"))
    by_pair = {(r.first, r.second): r for r in resolved.rankings}
    assert by_pair["a", "b"].verdict == "within tuning noise"
    assert by_pair["a", "c"].verdict == "holds in every search"
    sentence, _, _ = tables(resolved)
    assert "a (tuning seed 0), b (tuning seed 1): within tuning noise" in sentence
    assert "did not resolve" not in sentence
    assert [d.label for d in resolved.disagreements] == ["a", "b", "c"]

    edge = tuning_noise([0, 1], [first, second], _resolved("abc", unresolved={("b", 1)}))
    by_pair = {(r.first, r.second): r for r in edge.rankings}
    assert by_pair["a", "b"].verdict == (
        "a search did not resolve the optimum: b (tuning seed 1: widen it)"
    )
    assert by_pair["a", "c"].verdict == "holds in every search"  # a holding ranking stays
    sentence, _, (_, pairs) = tables(edge)
    assert "b (tuning seed 1): a search did not resolve the optimum" in sentence
    assert "0 are within tuning noise" in sentence and "1 more differ between searches" in sentence
    assert pairs[0][-1].startswith("a search did not resolve")


# --- from the store to the page ---------------------------------------------------------------


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resolution")
    exp = parse(
        {
            "problems": [TINY],
            "seeds": 2,
            "tuning": {"method": "grid", "budget": 2, "seeds": [0, 1]},
            "optimizers": ["sgdm", {"name": "adam", "hparams": {"lr": 0.01}, "tune": False}],
        },
        name="coarse",
    )
    run_experiment(exp, db=tmp / "runs.db", progress=False)
    index = write_report(tmp / "runs.db", tmp / "out")
    with Store(tmp / "runs.db") as store:
        spec = store.experiments()["coarse"]
        groups = load_groups(store)["coarse"]
        finals = {0: groups, **load_repeats(store, "coarse", spec)}
        found = load_resolutions(store, "coarse", spec, finals)
    return index.read_text(), (index.parent / "tables.md").read_text(), found


def test_the_store_gives_each_search_its_resolution(report):
    _, _, found = report
    assert set(found) == {(TINY, "sgdm", 0), (TINY, "sgdm", 1)}  # adam is not searched
    for r in found.values():
        assert isinstance(r, Resolution) and len(r.lrs) == 2
        assert r.edges and not r.resolved  # two settings: the best is always at an edge


def test_the_page_shows_the_flags(report):
    page, md, found = report
    table = re.search(r"<table class=search-resolution>(.*?)</table>", page, re.S).group(1)
    head = re.findall(r"<th>(.*?)</th>", table)
    assert head[:4] == [
        "optimizer",
        "tuning seed 0: best lr (of n)",
        "tuning seed 0: nearest",
        "tuning seed 0: search",
    ]
    assert head[-1] == "searches"
    rows = {c[0]: c for c in (re.findall(r"<td>(.*?)</td>", r) for r in table.split("</tr>"))
            if c}  # fmt: skip
    assert rows["sgdm"][3] == found[TINY, "sgdm", 0].text
    assert rows["sgdm"][6] == found[TINY, "sgdm", 1].text
    assert rows["adam"][3] == "not searched"
    assert "widen it: the best lr is the" in page
    assert "| tuning seed 0: search |" in md
    pairs = re.search(r"<table class=tuning-noise>(.*?)</table>", page, re.S).group(1)
    assert "within tuning noise" not in pairs  # no search here resolved its optimum
