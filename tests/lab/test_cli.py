"""The lab's commands end with status 0 on a tiny budget and print what they wrote.

Every test runs at a narrow and a wide terminal (``COLUMNS``): no output depends on it.
"""

from __future__ import annotations

import csv

import pytest
from typer.testing import CliRunner

from descentlab.cli import app
from descentlab.problems import PROBLEMS

EXPERIMENT = """
problems = ["tests.lab.tiny:problem"]
seeds = 2
[tuning]
method = "grid"
budget = 2
[[optimizers]]
name = "sgdm"
"""


@pytest.fixture(autouse=True, params=[40, 200])
def columns(request, monkeypatch):
    monkeypatch.setenv("COLUMNS", str(request.param))
    return request.param


def test_run_report_export(tmp_path):
    exp = tmp_path / "exp.toml"
    exp.write_text(EXPERIMENT)
    db, out, table = tmp_path / "runs.db", tmp_path / "report", tmp_path / "out.csv"
    runner = CliRunner()

    r = runner.invoke(app, ["run", str(exp), "--db", str(db), "--max-trials", "2"])
    assert r.exit_code == 0, r.output
    assert str(db) in r.stdout
    r = runner.invoke(app, ["run", str(exp), "--db", str(db)])  # resumes: the rerun on seed 1
    assert r.exit_code == 0, r.output

    r = runner.invoke(app, ["report", str(db), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert str(out / "index.html") in r.stdout and (out / "index.html").exists()

    r = runner.invoke(app, ["export", str(db), "--csv", str(table)])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(table.open()))
    assert [(row["label"], row["seed"]) for row in rows] == [("sgdm", "0"), ("sgdm", "1")]
    r = runner.invoke(app, ["export", str(db), "--csv", str(table), "--role", "all", "-e", "nope"])
    assert r.exit_code == 0 and len(table.read_text().splitlines()) == 1  # the header only


def test_bad_inputs_exit_2_with_one_line(tmp_path):
    tmp_path = tmp_path / ("a-deliberately-long-directory-name-" * 3)  # paths past 80 columns
    tmp_path.mkdir()
    runner = CliRunner()
    bad = tmp_path / "bad.toml"
    bad.write_text('problems = ["tests.lab.tiny:problem"]\noptimizers = ["adma"]\n')
    good = tmp_path / "good.toml"
    good.write_text(EXPERIMENT)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all")
    for args, words in (
        (["compare", "-o", "sgdm", "--db", str(junk)], f"{junk}: not a SQLite database"),
        (["run", str(tmp_path / "none.toml")], f"no experiment file {tmp_path / 'none.toml'}"),
        (["run", str(bad)], f"{bad}: optimizers[0]"),
        (["run", str(good), "--backend", "mpi", "--db", str(tmp_path / "x.db")], "pool, ray"),
        (["report", str(tmp_path / "none.db")], f"no results store at {tmp_path / 'none.db'}"),
        (["export", str(tmp_path / "none.db")], f"no results store at {tmp_path / 'none.db'}"),
    ):
        r = runner.invoke(app, args)
        assert r.exit_code == 2, (args, r.output)
        assert r.stdout == "", args
        (line,) = r.stderr.splitlines()  # one line, however long
        assert line.startswith("error: ") and words in line, (args, line)


def test_usage_errors_are_not_wrapped():
    r = CliRunner().invoke(app, ["compare", "--problem", "nope"])
    assert r.exit_code == 2
    errors = [line for line in r.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "Unknown problem 'nope'. Known: " in errors[0]
    assert all(name in errors[0] for name in PROBLEMS)


def test_compare_runs_the_builtin_experiment_and_ends_with_the_report(tmp_path):
    db, out = tmp_path / "runs.db", tmp_path / "report"
    args = ["compare", "-o", "sgdm", "--epochs", "1", "--seeds", "2", "--workers", "1"]
    r = CliRunner().invoke(app, [*args, "--db", str(db), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert r.stdout.strip().splitlines()[-1] == str(out / "index.html")
    assert "digits-mlp: 1 epochs, seed 0 + 1 more" in r.stdout and "sgdm" in r.stdout
    assert (out / "index.html").exists()


def test_device_cuda_without_a_gpu_is_one_line_and_exit_2_before_anything_is_written(
    tmp_path, monkeypatch
):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    good = tmp_path / "good.toml"
    good.write_text(EXPERIMENT)
    gpu_file = tmp_path / "gpu.toml"
    gpu_file.write_text('device = "cuda"\n' + EXPERIMENT)
    db, png = tmp_path / "runs.db", tmp_path / "out.png"
    runner = CliRunner()
    for args in (
        ["run", str(good), "--db", str(db), "--device", "cuda"],
        ["run", str(gpu_file), "--db", str(db)],
        [
            "compare",
            "-o",
            "sgdm",
            "--db",
            str(db),
            "--out",
            str(tmp_path / "r"),
            "--device",
            "cuda",
        ],
        ["lr-find", "--device", "cuda:1", "-o", str(png)],
        ["trajectories", "--device", "cuda", "-o", str(png)],
    ):
        r = runner.invoke(app, args)
        assert r.exit_code == 2, (args, r.output)
        (line,) = r.stderr.splitlines()
        assert line.startswith("error: ") and "sees no CUDA GPU on this machine" in line, line
        if "--device" in args:
            assert f"--device {args[args.index('--device') + 1]}: " in line
    r = runner.invoke(app, ["run", str(good), "--db", str(db), "--device", "mpx"])
    assert r.exit_code == 2 and "--device mpx: allowed: 'auto', 'cpu'" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.toml", "gpu.toml"]


def test_run_on_the_cpu_with_trials_per_gpu(tmp_path):
    exp = tmp_path / "exp.toml"
    exp.write_text(EXPERIMENT)
    db = tmp_path / "runs.db"
    args = ["run", str(exp), "--db", str(db), "--device", "cpu", "--trials-per-gpu", "2"]
    r = CliRunner().invoke(app, [*args, "--max-trials", "1"])
    assert r.exit_code == 0, r.output
    from descentlab.store import Store

    with Store(db) as store:
        (t,) = [t for t in store.records(role=None) if t.status == "finished"][:1]
    assert t.trial.device == "cpu" and t.result.placement.device_type == "cpu"
