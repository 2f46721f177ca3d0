"""Experiment files: valid ones parse; every invalid one names the key and what is allowed."""

from __future__ import annotations

import pytest

from descentlab.lab import SpecError, load, parse

TINY = "tests.lab.tiny:problem"


def _spec(**over):
    spec = {"problems": [TINY], "optimizers": [{"name": "adam"}]}
    spec.update(over)
    return spec


def test_parse_fills_defaults_and_labels():
    exp = parse(
        _spec(
            seeds=3,
            problems=[TINY, {"name": TINY, "options": {"width": 4}}],
            optimizers=["sgdm", {"name": "torch.optim.Adam", "label": "torch-adam"}],
        ),
        name="x",
    )
    assert exp.name == "x"
    assert exp.seeds == (0, 1, 2)
    assert [p.label for p in exp.problems] == [TINY, f"{TINY}[width=4]"]
    assert [o.label for o in exp.optimizers] == ["sgdm", "torch-adam"]
    assert exp.tuning.method == "random"


def test_load_reads_toml_and_names_after_file(tmp_path):
    path = tmp_path / "my-exp.toml"
    path.write_text(
        f'problems = ["{TINY}"]\nseeds = [3, 5]\n[tuning]\nmethod = "grid"\nbudget = 2\n'
        '[[optimizers]]\nname = "lookahead(sgdm)"\nhparams = { k = 5 }\n'
        'schedule = "warmup"\nschedule_args = { warmup_steps = 2 }\n'
    )
    exp = load(path)
    assert exp.name == "my-exp"
    assert exp.seeds == (3, 5)
    assert exp.optimizers[0].schedule == "warmup"
    assert exp.optimizers[0].hparams == {"k": 5}


# (spec overrides, words the message must contain: the key first, then what is allowed)
ERRORS = [
    ({"bogus": 1}, ["bogus", "allowed keys", "optimizers"]),
    ({"problems": []}, ["problems", "non-empty list"]),
    ({"problems": ["digits-mpl"]}, ["problems[0]", "digits-mlp"]),
    (
        {"problems": [{"name": TINY, "options": {"depth": 2}}]},
        ["problems[0].options.depth", "width"],
    ),
    (
        {"problems": [{"name": TINY, "options": {"width": 0}}]},
        ["problems[0].options.width", "integer >= 1", "got 0"],
    ),
    (
        {"problems": [{"name": "digits-mlp", "options": {"dropout": 7.0}}]},
        ["problems[0].options.dropout", "[0, 1)", "7.0"],
    ),
    (
        {"problems": [{"name": "digits-mlp", "options": {"normalization": "fancy"}}]},
        ["problems[0].options.normalization", "'batch'", "'fancy'"],
    ),
    (
        {"problems": [{"name": "wilson-linreg", "options": {"p": 0.3}}]},
        ["problems[0].options.p", "(0.5, 1.0]", "0.3"],
    ),
    (
        {"finetune": {"problem": "digits-mlp", "options": {"classes": [10]}}},
        ["finetune.options.classes", "0..9", "bad label 10"],
    ),
    ({"problems": [TINY, TINY]}, ["problems", "distinct"]),
    ({"optimizers": []}, ["optimizers", "non-empty"]),
    ({"optimizers": [{"label": "x"}]}, ["optimizers[0].name", "registry name"]),
    ({"optimizers": [{"name": "adma"}]}, ["optimizers[0]", "adam"]),
    (
        {"optimizers": [{"name": "adam", "hparams": {"betas": [1.5, 0.9]}}]},
        ["optimizers[0]", "[0, 1)"],
    ),
    (
        {"optimizers": [{"name": "adam", "hparams": {"momentum": 0.9}}]},
        ["optimizers[0]", "momentum"],
    ),
    ({"optimizers": [{"name": "adam", "schedule": "cosin"}]}, ["optimizers[0]", "cosine"]),
    ({"optimizers": [{"name": "nosuch.module:Opt"}]}, ["optimizers[0]", "nosuch.module"]),
    ({"optimizers": [{"name": "torch.nn:Linear"}]}, ["optimizers[0]", "torch.optim.Optimizer"]),
    ({"optimizers": [{"name": "adam", "tune": "yes"}]}, ["optimizers[0].tune", "true or false"]),
    ({"optimizers": [{"name": "adam", "colour": 1}]}, ["optimizers[0].colour", "hparams"]),
    ({"optimizers": ["adam", "adam"]}, ["optimizers.label", "distinct"]),
    ({"seeds": 0}, ["seeds", ">= 1"]),
    ({"seeds": [1, 1]}, ["seeds", "distinct"]),
    ({"seeds": "3"}, ["seeds", "count"]),
    ({"epochs": 0}, ["epochs", ">= 1"]),
    ({"batch_size": 2.5}, ["batch_size", "integer"]),
    ({"tuning": {"method": "bayes"}}, ["tuning.method", "'grid', 'random', 'defaults'"]),
    ({"tuning": {"budget": 0}}, ["tuning.budget", ">= 1"]),
    ({"tuning": {"lr_range": [1.0]}}, ["tuning.lr_range", "[low, high]"]),
    ({"tuning": {"lr_range": [1.0, 0.1]}}, ["tuning.lr_range", "low <= high"]),
    ({"tuning": {"lr_range": [-1.0, 0.1]}}, ["tuning.lr_range[0]", "positive"]),
    ({"tuning": {"lr_factor": 0.5}}, ["tuning.lr_factor", ">= 1"]),
    ({"tuning": {"stride": 2}}, ["tuning.stride", "method"]),
    ({"tuning": "grid"}, ["tuning", "table"]),
]


@pytest.mark.parametrize(("over", "words"), ERRORS, ids=[str(e[0])[:40] for e in ERRORS])
def test_errors_name_the_key_and_what_is_allowed(over, words):
    with pytest.raises(SpecError) as info:
        parse(_spec(**over))
    message = str(info.value)
    assert message.startswith(words[0]), message
    for word in words[1:]:
        assert word in message, message


def test_missing_problems_is_an_error():
    with pytest.raises(SpecError, match=r"^problems: missing"):
        parse({"optimizers": ["adam"]})


def test_invalid_toml_names_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("problems = [\n")
    with pytest.raises(SpecError, match=r"bad\.toml: not valid TOML"):
        load(path)


def test_every_problem_option_is_checked_when_the_file_is_read():
    """A new problem option needs a check in problems/_options.py (else a typo fails mid-run)."""
    from descentlab.problems import get, names
    from descentlab.problems._options import _OPTION_CHECKS

    options = set().union(*(get(n).axes for n in names())) - {"batch_size", "data_dir"}
    assert options <= set(_OPTION_CHECKS), sorted(options - set(_OPTION_CHECKS))
