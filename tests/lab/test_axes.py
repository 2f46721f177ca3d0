"""Experiment axes: parsing, planning (labels, configs) and what each trick does to a trial."""

from __future__ import annotations

import itertools
import math

import pytest

from descentlab.lab import SpecError, parse, run_trial
from descentlab.lab.axes import AXES, variants
from descentlab.lab.tuning import plan_initial

from .test_loop import _config as _loop_config

TINY = "tests.lab.tiny:problem"


def _doc(**axes):
    return {"problems": [TINY], "optimizers": [{"name": "sgdm"}, {"name": "adam"}], **axes}


def _labels(exp):
    return [v.label for v in exp.variants]


def test_scalars_are_fixed_and_lists_are_axes():
    exp = parse(_doc(init="zeros", shuffle=["epoch", "none"]))
    assert _labels(exp) == ["shuffle=epoch", "shuffle=none"]
    assert all(v.settings["init"] == {"scheme": "zeros"} for v in exp.variants)


def test_grid_crosses_the_lists_and_one_at_a_time_varies_each_alone():
    doc = _doc(batch_size=[32, 8, "full"], shuffle=["epoch", "none"], init=["default", "zeros"])
    assert len(parse(doc).variants) == 3 * 2 * 2
    exp = parse({**doc, "design": "one-at-a-time"})
    assert _labels(exp) == ["", "bs=8", "bs=full", "shuffle=none", "init=zeros"]
    assert exp.variants[0].settings == {"batch_size": 32, "shuffle": "epoch", "init": "default"}


def test_every_axis_parses_its_documented_forms():
    forms = {
        "batch_size": [1, "full"],
        "shuffle": ["epoch", "once", "none"],
        "curriculum": ["none", "reference", {"score": "problem", "start": 0.5, "pacing": "step"}],
        "init": ["default", "zeros", {"scheme": "normal", "std": 0.1}, "kaiming_normal"],
        "normalization": ["none", "batch", "layer"],
        "dropout": [0.0, 0.25],
        "weight_decay": [0, 1e-4, {"value": 1e-4, "coupling": "decoupled"}],
        "gradient_noise": ["none", 0.01, {"eta": 0.3, "gamma": 0.5}],
        "warmup": ["none", 0.05, 100, {"steps": 10}],
        "finetune": ["none", {"problem": TINY, "epochs": 2, "label": "pre"}],
        "precision": ["float32", "bf16", "fp16"],
    }
    assert set(forms) == set(AXES)
    for axis, values in forms.items():
        labels = [v.label for v in variants({axis: values})]
        assert len(set(labels)) == len(values), (axis, labels)
    wd = variants({"weight_decay": [0, 1e-4]})
    assert wd[1].tricks() == {"weight_decay": {"value": 1e-4, "coupling": "l2"}}
    assert wd[0].tricks() == {}  # off values never reach a trial


@pytest.mark.parametrize(
    ("axes", "match"),
    [
        ({"batch_size": "half"}, r"batch_size: 'half'; expected an integer >= 1 or 'full'"),
        ({"batch_size": [0]}, r"batch_size\[0\]: 0; expected an integer >= 1"),
        ({"shuffle": "sometimes"}, r"shuffle: 'sometimes'; allowed: 'epoch', 'once', 'none'"),
        ({"curriculum": {"score": "oracle"}}, r"curriculum.score: 'oracle'; allowed"),
        ({"curriculum": {"start": 0}}, r"curriculum.start: 0; expected a number in \(0, 1\]"),
        ({"curriculum": {"speed": 1}}, r"curriculum.speed: unknown key"),
        ({"init": "he"}, r"init.scheme: 'he'; allowed: 'zeros'"),
        ({"init": {"scheme": "zeros", "std": 1}}, r"init.std: only the 'normal' scheme"),
        ({"normalization": "group"}, r"normalization: 'group'; allowed"),
        ({"dropout": 1.0}, r"dropout: 1.0; expected a number in \[0.0, 1.0\)"),
        ({"dropout": [0.1, 0.1]}, r"dropout: 'dropout=0.1' appears twice"),
        ({"weight_decay": {"value": 1e-4, "coupling": "both"}}, r"weight_decay.coupling"),
        ({"weight_decay": -1}, r"weight_decay.value: -1; expected a number in \[0.0, inf\)"),
        ({"gradient_noise": {"eta": float("nan")}}, r"gradient_noise.eta: nan"),
        ({"warmup": 1.5}, r"warmup.fraction: 1.5; expected a number in \[0.0, 1.0\)"),
        ({"warmup": {"steps": 5, "fraction": 0.1}}, r"warmup: .*give one of fraction"),
        ({"finetune": {"epochs": 2}}, r"finetune.problem: None"),
        ({"finetune": {"problem": "digits-mlpp"}}, r"finetune.problem: .*digits-mlp"),
        ({"finetune": {"problem": TINY, "options": {"depth": 2}}}, r"finetune.options.depth"),
        ({"init": []}, r"init: \[\]; expected a value or a non-empty list"),
        ({"design": "latin"}, r"design: 'latin'; allowed: 'grid', 'one-at-a-time'"),
    ],
)
def test_bad_axis_values_name_the_key_and_the_allowed_values(axes, match):
    with pytest.raises(SpecError, match=match):
        parse(_doc(**axes))


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        (
            {"problems": ["gan-mog"], "batch_size": "full"},
            r"batch_size: problem 'gan-mog' \(kind gan\) cannot take the axis batch_size = full",
        ),
        (
            {"problems": ["gan-mog"], "shuffle": ["epoch", "none"]},
            r"shuffle: problem 'gan-mog' \(kind gan\) cannot take the axis shuffle",
        ),
        (
            {"problems": ["digits-logreg"], "normalization": "batch"},
            r"normalization: problem 'digits-logreg' has no place for normalization",
        ),
        (
            {"problems": [TINY], "dropout": 0.1},
            r"dropout: problem 'tests.lab.tiny:problem' has no place for dropout",
        ),
        (
            {
                "optimizers": [{"name": "adam", "hparams": {"weight_decay": 0.1}}],
                "weight_decay": 1e-4,
            },
            r"weight_decay: also set in optimizers\[0\] \(adam\).hparams",
        ),
        (
            {"optimizers": [{"name": "sgd", "schedule": "warmup"}], "warmup": 0.1},
            r"warmup: optimizers\[0\] \(sgd\) already has the schedule 'warmup'",
        ),
        (
            {"optimizers": ["noisy(sgd)"], "gradient_noise": 0.1},
            r"gradient_noise: optimizers\[0\] \(noisy\(sgd\)\) already adds gradient noise",
        ),
    ],
)
def test_an_axis_a_problem_or_optimizer_cannot_take_names_both(doc, match):
    with pytest.raises(SpecError, match=match):
        parse({**_doc(), **doc})


def test_variants_are_rows_tuned_on_their_own():
    doc = _doc(init=["default", "zeros"], design="one-at-a-time")
    doc["tuning"] = {"budget": 2}
    plan = plan_initial(parse(doc))
    labels = sorted({p.label for p in plan})
    assert labels == ["adam", "adam [init=zeros]", "sgdm", "sgdm [init=zeros]"]
    assert len(plan) == 4 * 2  # every row gets the same search budget
    zeros = [p.trial for p in plan if p.label == "sgdm [init=zeros]"]
    assert all(t.tricks == {"init": {"scheme": "zeros"}} for t in zeros)
    assert all("tricks" not in p.trial.config() for p in plan if "[" not in p.label)  # old keys


def _config(**over):
    return _loop_config(**{"batch_size": 16, "optimizer": "adam", "hparams": {"lr": 0.05}, **over})


def _curves(result):
    assert result.status == "finished", result.error
    return {(c.split, c.metric): c.values for c in result.curves if c.split != "time"}


def _close(a, b, rel=1e-5):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] == pytest.approx(b[k], rel=rel, abs=1e-7), k


def test_l2_weight_decay_is_adams_own_and_decoupled_is_adamw():
    """The trick on any optimizer equals the optimizer that builds the decay in (known answers)."""
    wd = 0.05
    l2 = run_trial(_config(tricks={"weight_decay": {"value": wd, "coupling": "l2"}}))
    own = run_trial(_config(hparams={"lr": 0.05, "weight_decay": wd}))
    _close(_curves(l2), _curves(own))
    decoupled = run_trial(_config(tricks={"weight_decay": {"value": wd, "coupling": "decoupled"}}))
    adamw = run_trial(_config(optimizer="adamw", hparams={"lr": 0.05, "weight_decay": wd}))
    _close(_curves(decoupled), _curves(adamw))
    assert _curves(l2) != _curves(decoupled) != _curves(run_trial(_config()))


def test_gradient_noise_and_warmup_equal_the_wrapper_and_the_schedule():
    noise = {"eta": 0.3, "gamma": 0.55}
    by_axis = run_trial(_config(optimizer="sgdm", tricks={"gradient_noise": noise}))
    by_name = run_trial(_config(optimizer="noisy(sgdm)", hparams={"lr": 0.05, **noise}))
    assert _curves(by_axis) == _curves(by_name)  # seed 0: the wrapper's default generator
    warm = run_trial(_config(tricks={"warmup": {"steps": 4}}, schedule="cosine"))
    schedule = {"warmup_steps": 4, "after": "cosine"}
    by_schedule = run_trial(_config(schedule="warmup", schedule_args=schedule))
    assert _curves(warm) == _curves(by_schedule)
    fraction = run_trial(_config(tricks={"warmup": {"fraction": 4 / 18}}))  # 18 steps in all
    constant = {"warmup_steps": 4, "after": "constant"}
    assert _curves(fraction) == _curves(
        run_trial(_config(schedule="warmup", schedule_args=constant))
    )


def test_finetuning_starts_from_the_pretrained_weights():
    """Pre-training on the same problem for 2 epochs: the fine-tuning run's epoch 0 is the end of
    a plain 2-epoch run, and the model then trains on with a fresh optimizer."""
    ft = {"problem": TINY, "options": {}, "epochs": 2}
    tuned = run_trial(_config(tricks={"finetune": ft}))
    plain = run_trial(_config(epochs=2))
    a, b = _curves(tuned), _curves(plain)
    for split in ("train", "val", "test"):
        assert a[split, "loss"][0] == b[split, "loss"][-1]
    assert a["train", "loss"][0] != _curves(run_trial(_config()))["train", "loss"][0]
    assert tuned.summary["pretrained"]["epochs"] == 2
    assert len(a["train", "step_loss"]) == 3 * 6  # the same budget as from scratch


def test_a_trick_that_does_not_fit_fails_the_trial_with_a_clear_message():
    bad = run_trial(
        _config(tricks={"finetune": {"problem": "digits-mlp", "options": {}, "epochs": 1}})
    )
    assert bad.status == "failed"
    assert "finetune: the model of 'digits-mlp' does not fit the model of" in bad.error


def test_a_problem_may_bring_its_own_axes():
    own = {"name": TINY, "options": {"width": 4}, "axes": {"finetune": ["none", {"problem": TINY}]}}
    doc = _doc(init=["default", "zeros"], design="one-at-a-time")
    exp = parse({**doc, "problems": [TINY, own]})
    plain, special = exp.problems
    assert [v.label for v in exp.variants_for(plain)] == ["", "init=zeros"]
    assert [v.label for v in exp.variants_for(special)] == ["", "finetune=tests.lab.tiny:problem"]
    planned = {(p.problem, p.label) for p in plan_initial(exp)}
    assert ("tests.lab.tiny:problem[width=4]", "sgdm [finetune=tests.lab.tiny:problem]") in planned
    assert ("tests.lab.tiny:problem[width=4]", "sgdm [init=zeros]") not in planned
    bad = {**own, "axes": {"dropout": "x"}}
    with pytest.raises(SpecError, match=r"problems\[1\].axes.dropout: 'x'; expected a number"):
        parse({**doc, "problems": [TINY, bad]})
    with pytest.raises(SpecError, match=r"problems\[1\].axes.epochs: unknown key"):
        parse({**doc, "problems": [TINY, {**own, "axes": {"epochs": 3}}]})


def _digits(**over):
    base = {"problem": "digits-logreg", "options": {"n_train": 300}, "epochs": 4}
    return _config(**{**base, "optimizer": "sgd", "hparams": {"lr": 0.05}, **over})


def test_full_batch_trials_take_one_step_per_epoch_whatever_the_order():
    runs = [
        run_trial(_digits(batch_size="full", tricks={"shuffle": s} if s != "epoch" else {}))
        for s in ("epoch", "once", "none")
    ]
    assert all(r.summary["steps_per_epoch"] == 1 for r in runs)
    assert runs[0].summary["examples_per_epoch"] == 300
    first = _curves(runs[0])
    assert all(_curves(r) == first for r in runs[1:])
    losses = first["train", "loss"]
    assert all(b < a for a, b in itertools.pairwise(losses))


def test_order_and_init_axes_reach_the_trial():
    plain = run_trial(_digits())
    curriculum = {"score": "reference", "start": 0.25, "epochs": 2, "pacing": "step"}
    for tricks in ({"shuffle": "none"}, {"curriculum": curriculum}, {"init": {"scheme": "zeros"}}):
        r = run_trial(_digits(tricks=tricks))
        assert r.summary["steps"] == plain.summary["steps"]  # the same budget
        assert _curves(r) != _curves(plain), tricks
    zeros = _curves(run_trial(_digits(tricks={"init": {"scheme": "zeros"}})))
    assert zeros["train", "loss"][0] == pytest.approx(math.log(10))  # uniform prediction


def test_a_new_trick_is_one_row_of_the_axis_table(monkeypatch):
    """The loop runs whatever hooks a row brings, phase by phase; it names no trick."""
    from descentlab.lab import axes

    seen = []

    def scale_lr(ctx):
        seen.append(("optimizer", ctx.problem.name))
        for group in ctx.optimizer.param_groups:
            group["lr"] *= ctx.value("halve_lr")

    def model(ctx):
        seen.append(("model", type(ctx.task.model).__name__))

    row = axes.Axis(
        "halve_lr",
        "half",
        lambda k, v: v,
        "trick",
        1.0,
        hooks={"optimizer": scale_lr, "model": model},
    )
    monkeypatch.setitem(axes.AXES, "halve_lr", row)
    halved = run_trial(_config(tricks={"halve_lr": 0.5}))
    assert seen == [("model", "Sequential"), ("optimizer", "tiny")]
    by_lr = run_trial(_config(hparams={"lr": 0.025}))
    assert _curves(halved) == _curves(by_lr)


def test_hooks_run_by_phase_in_table_order_and_shared_hooks_once():
    from descentlab.lab import tricks
    from descentlab.lab.axes import hooks

    both = {"shuffle": "none", "curriculum": {"score": "reference"}, "init": {"scheme": "zeros"}}
    assert hooks(both, "data") == [tricks.order]  # shuffle and curriculum: one set_order
    assert hooks(both, "model") == [tricks.initialize]
    wd_noise = {"weight_decay": {"value": 1.0, "coupling": "l2"}, "gradient_noise": {}}
    assert hooks(wd_noise, "wrap") == [tricks.noise]  # the wrapper first, then its step hook
    assert hooks(wd_noise, "optimizer") == [tricks.decay]
    assert hooks({}, "schedule") == []
