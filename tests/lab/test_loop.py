"""One trial: curves recorded, deterministic, divergence and failures reported, never raised."""

from __future__ import annotations

import pytest

from descentlab.lab import run_trial

TINY = "tests.lab.tiny:problem"


def _config(**over):
    config = {
        "problem": TINY,
        "options": {},
        "seed": 0,
        "epochs": 3,
        "batch_size": 32,
        "optimizer": "sgdm",
        "hparams": {"lr": 0.1},
        "schedule": None,
        "schedule_args": {},
    }
    config.update(over)
    return config


def _curves(result):
    """The curves without wall-clock times."""
    return {(c.split, c.metric): c.values for c in result.curves if c.split != "time"}


def test_records_step_and_epoch_curves():
    r = run_trial(_config())
    assert r.status == "finished" and not r.diverged and r.error is None
    curves = _curves(r)
    assert len(curves["train", "step_loss"]) == 3 * 3  # 96 examples in batches of 32, 3 epochs
    for split in ("train", "val", "test"):
        assert len(curves[split, "loss"]) == 4  # epoch 0 (before training) and 3 epochs
        assert len(curves[split, "accuracy"]) == 4
    assert curves["train", "loss"][-1] < curves["train", "loss"][0]
    s = r.summary
    assert s["main_metric"] == "accuracy" and s["epochs_done"] == 3 and s["steps"] == 9
    assert s["final"]["test"]["accuracy"] == curves["test", "accuracy"][-1]
    assert r.wall_time > 0


def test_same_config_same_curves_and_seed_matters():
    a, b = run_trial(_config()), run_trial(_config())
    assert _curves(a) == _curves(b)
    assert _curves(run_trial(_config(seed=1))) != _curves(a)


def test_time_to_target_is_the_first_epoch_reaching_it():
    r = run_trial(_config())
    val = _curves(r)["val", "accuracy"]
    hit = r.summary["epochs_to_target"]
    first = next((e for e in range(1, len(val)) if val[e] >= 0.9), None)
    assert hit == first
    assert (r.summary["seconds_to_target"] is None) == (hit is None)


def test_divergence_marks_the_trial_and_stops_it():
    r = run_trial(_config(optimizer="sgd", hparams={"lr": 1e38}))
    assert r.status == "finished" and r.diverged
    assert r.summary["epochs_done"] < 3
    assert r.summary["epochs_to_target"] is None


def test_a_broken_trial_fails_without_raising():
    r = run_trial(_config(options={"depth": 2}))
    assert r.status == "failed" and not r.diverged
    assert "depth" in r.error


def test_importable_class_and_registry_name_agree():
    ours = run_trial(_config(optimizer="sgd"))
    torchs = run_trial(_config(optimizer="torch.optim.SGD"))
    assert _curves(torchs)["train", "step_loss"] == pytest.approx(
        _curves(ours)["train", "step_loss"], rel=1e-5
    )


def test_schedule_is_stepped():
    plain = run_trial(_config())
    warm = run_trial(_config(schedule="warmup", schedule_args={"warmup_steps": 6}))
    assert warm.status == "finished", warm.error
    steps_plain, steps_warm = (
        _curves(plain)["train", "step_loss"],
        _curves(warm)["train", "step_loss"],
    )
    assert steps_warm[0] == steps_plain[0]  # the same initial loss
    assert steps_warm[1:] != steps_plain[1:]


def test_missing_schedule_name_fails_clearly():
    r = run_trial(_config(schedule="nosuch"))
    assert r.status == "failed" and "nosuch" in r.error
