"""The final-metrics table: it says where each row ran, compares wall times only within one
device, and shows a loss metric once."""

from __future__ import annotations

import re

from descentlab.report import summary, write_report
from descentlab.store import Curve, Placement, Store, Trial, TrialResult

H200 = Placement("cuda", "NVIDIA H200", "2.13.0", "12.8", "bf16")


def _result(placement, seconds, metric="accuracy"):
    final = {s: {"loss": 0.5, "accuracy": 0.9} for s in ("train", "val", "test")}
    high = metric != "loss"
    summary = {
        "main_metric": metric,
        "higher_is_better": high,
        "target": {"metric": metric, "value": 0.8, "higher_is_better": high, "split": "val"},
        "final": final,
        "epochs_to_target": 1,
        "steps_per_epoch": 3,
    }
    curves = (
        Curve("train", "step_loss", "step", [1.0, 0.7, 0.5]),
        *(Curve(s, m, "epoch", [1.0, v]) for s in final for m, v in final[s].items()),
        Curve("time", "train_seconds", "epoch", [0.0, seconds]),
    )
    return TrialResult(
        "finished", wall_time=seconds, summary=summary, curves=curves, placement=placement
    )


def _store(tmp_path, placements, metric="accuracy"):
    db = tmp_path / "runs.db"
    rows = [
        {"label": label, "optimizer": label, "variant": "", "changed": []} for label in placements
    ]
    with Store(db) as store:
        store.save_experiment("exp", {"name": "exp", "rows": rows, "seeds": [0, 1]})
        for label, where in placements.items():
            keys = []
            for seed in (0, 1):
                device = where[0].device_type
                trial = Trial("p", seed, 1, 8, label, hparams={"lr": 0.1}, device=device)
                store.save_result(trial.key(), trial, _result(where[seed], 2.0 + seed, metric))
                keys.append(trial.key())
            store.set_tags("exp", "final", "p", label, keys)
    return db


def _rows(page):
    table = re.search(r"<table class=final-metrics>(.*?)</table>", page, re.S).group(1)
    return {
        cells[0].rstrip(" ★"): cells
        for cells in (
            re.findall(r"<td>(.*?)</td>", r) for r in re.findall(r"<tr[^>]*>(.*?)</tr>", table)
        )
        if cells
    }


def test_rows_on_one_device_show_it_and_their_wall_time(tmp_path):
    cpu = Placement("cpu", "x86_64", "2.13.0", None, "float32")
    db = _store(tmp_path, {"sgd": (cpu, cpu), "adam": (cpu, cpu)})
    page = write_report(db, tmp_path / "out").read_text()
    rows = _rows(page)
    assert rows["sgd"][-2] == "cpu (x86_64)" and rows["sgd"][-1] != "-"
    assert "ran on different devices" not in page
    with Store(db) as store:
        assert {r["device"] for r in summary(store, "exp")["p"]} == {"cpu (x86_64)"}


def test_rows_on_several_devices_are_not_compared_by_wall_time(tmp_path):
    cpu = Placement("cpu", "x86_64", "2.13.0", None, "float32")
    db = _store(tmp_path, {"sgd": (cpu, cpu), "adam": (H200, H200), "mixed": (cpu, H200)})
    page = write_report(db, tmp_path / "out").read_text()
    rows = _rows(page)
    assert rows["adam"][-2] == "cuda (NVIDIA H200), bf16"
    assert (
        rows["mixed"][-2] == "cpu (x86_64), cuda (NVIDIA H200), bf16" and rows["mixed"][-1] == "-"
    )
    assert "wall times compare only between rows of one device" in page


def test_a_loss_metric_has_one_loss_column(tmp_path):
    cpu = Placement("cpu", "x86_64", "2.13.0", None, "float32")
    page = write_report(_store(tmp_path, {"sgd": (cpu, cpu)}, "loss"), tmp_path / "out")
    head = re.search(r"<table class=final-metrics>(.*?)</tr>", page.read_text(), re.S).group(1)
    assert head.count("test loss median [IQR]") == 1
    assert len(_rows(page.read_text())["sgd"]) == head.count("<th")
