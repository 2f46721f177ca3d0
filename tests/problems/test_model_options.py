"""The problems' model and data options: ``normalization``, ``dropout`` and ``classes``.

The defaults must build exactly today's models: each is compared with an explicit construction
of the model as it was before the options existed (parameters, layers and training steps).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from descentlab import problems
from descentlab.problems import SupervisedTask
from descentlab.problems.digits import digits_splits
from descentlab.problems.torchvision_data import ResNet20

from .problem_cases import CASES

NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)
WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d)

# problem -> (default normalization, {normalization: (its layer type, how many)})
NORMALIZATION = {
    "digits-mlp": ("none", {"batch": (nn.BatchNorm1d, 2), "layer": (nn.LayerNorm, 2)}),
    "digits-cnn": ("batch", {"batch": (nn.BatchNorm2d, 2), "layer": (nn.GroupNorm, 2)}),
    "mnist1d-mlp": ("none", {"batch": (nn.BatchNorm1d, 2), "layer": (nn.LayerNorm, 2)}),
    "mnist1d-cnn": ("none", {"batch": (nn.BatchNorm1d, 3), "layer": (nn.GroupNorm, 3)}),
    "mnist-cnn": ("none", {"batch": (nn.BatchNorm2d, 2), "layer": (nn.GroupNorm, 2)}),
    "fashion-mnist-cnn": ("none", {"batch": (nn.BatchNorm2d, 2), "layer": (nn.GroupNorm, 2)}),
    "cifar10-resnet20": ("batch", {"batch": (nn.BatchNorm2d, 19), "layer": (nn.GroupNorm, 19)}),
}
# problem -> how many dropout layers a dropout > 0 adds
DROPOUT = {
    "digits-mlp": 2,
    "digits-cnn": 1,
    "mnist1d-mlp": 2,
    "mnist1d-cnn": 1,
    "charlm-lstm": 1,
    "mnist-cnn": 1,
    "fashion-mnist-cnn": 1,
    "cifar10-resnet20": 1,
}
NO_MODEL_OPTIONS = ["digits-logreg", "wilson-linreg", "gan-mog", "cartpole-pg"]
CLASSES = ["digits-logreg", "digits-mlp", "digits-cnn", "mnist1d-mlp", "mnist1d-cnn"]


@pytest.fixture
def build(tmp_path_factory):
    """``build(name, seed, **options)`` with the problem's tiny test options and data files."""

    def make(name: str, seed: int = 0, **options):
        case = CASES[name]
        if case.requires:
            pytest.importorskip(case.requires)
        merged = dict(case.options)
        if case.files is not None:
            merged["data_dir"] = str(case.files(tmp_path_factory.mktemp(name)))
        return problems.get(name).build(seed, **{**merged, **options})

    return make


def _leaves(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if not list(m.children())]


def _steps(task, steps: int = 3) -> list[float]:
    opts = problems.optimizers_for(task, "sgdm")
    batches = itertools.chain.from_iterable(task.epoch_batches() for _ in itertools.count())
    return [task.train_step(opts, b) for b in itertools.islice(batches, steps)]


def test_axes():
    for name in problems.names():
        axes = problems.get(name).axes
        assert ("normalization" in axes) == (name in NORMALIZATION), name
        assert ("dropout" in axes) == (name in DROPOUT), name
        assert ("classes" in axes) == (name in CLASSES), name
    assert not set(NO_MODEL_OPTIONS) & (set(NORMALIZATION) | set(DROPOUT))


@pytest.mark.parametrize("name", sorted(NORMALIZATION))
@pytest.mark.parametrize("normalization", ["none", "batch", "layer"])
def test_normalization_layers(build, name, normalization):
    default, expected = NORMALIZATION[name]
    model = build(name, normalization=normalization).model
    norms = [m for m in model.modules() if isinstance(m, NORMS)]
    if normalization == "none":
        assert norms == []
    else:
        kind, count = expected[normalization]
        assert len(norms) == count and all(type(m) is kind for m in norms)
        assert all(m.num_groups == 1 for m in norms if isinstance(m, nn.GroupNorm))
    # A bias before batch normalization is redundant and dropped; otherwise every layer has one.
    no_bias = [m for m in model.modules() if isinstance(m, WEIGHTED) and m.bias is None]
    assert len(no_bias) == (len(norms) if normalization == "batch" else 0)
    if normalization == default:  # the default is the model built without the option
        assert repr(model) == repr(build(name).model)


@pytest.mark.parametrize("name", sorted(DROPOUT))
def test_dropout_layers(build, name):
    model = build(name, dropout=0.25).model
    leaves = _leaves(model)
    drops = [i for i, m in enumerate(leaves) if isinstance(m, nn.Dropout)]
    assert len(drops) == DROPOUT[name]
    assert all(leaves[i].p == 0.25 for i in drops)
    if name != "charlm-lstm":  # after a hidden ReLU (or the flattened features), before a Linear
        for i in drops:
            assert isinstance(leaves[i - 1], nn.ReLU | nn.Flatten), leaves[i - 1]
        assert isinstance(leaves[drops[-1] + 1], nn.Linear)
        assert leaves[drops[-1] + 1] is leaves[-1]  # the last dropout feeds the read-out
    for p in (0, 0.0):
        assert not any(isinstance(m, nn.Dropout) for m in build(name, dropout=p).model.modules())


# The models as they were built before the options existed.
def _old_digits_mlp():
    return nn.Sequential(
        nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10)
    )


def _old_digits_cnn():
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, bias=False),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 10),
    )


def _old_mnist1d_mlp():
    return nn.Sequential(
        nn.Linear(40, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 10)
    )


def _old_mnist1d_cnn():
    return nn.Sequential(
        nn.Conv1d(1, 25, 5, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv1d(25, 25, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv1d(25, 25, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(25 * 5, 10),
    )


def _old_mnist_cnn():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )


class _Block(nn.Module):  # named as the model's own, so the two reprs compare
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
        )


def _old_resnet20():
    layers = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    cin = 16
    for cout, stride in ((16, 1), (32, 2), (64, 2)):
        for i in range(3):
            layers.append(_Block(cin, cout, stride if i == 0 else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10)]
    net = nn.Sequential(*layers)
    for m in net.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.kaiming_normal_(m.weight)
    return net


class _OldCharLSTM(nn.Module):
    def __init__(self, vocab, hidden):
        super().__init__()
        self.embed = nn.Embedding(vocab, 32)
        self.lstm = nn.LSTM(32, hidden, batch_first=True)
        self.out = nn.Linear(hidden, vocab)


OLD = {
    "digits-mlp": lambda task: _old_digits_mlp(),
    "digits-cnn": lambda task: _old_digits_cnn(),
    "mnist1d-mlp": lambda task: _old_mnist1d_mlp(),
    "mnist1d-cnn": lambda task: _old_mnist1d_cnn(),
    "charlm-lstm": lambda task: _OldCharLSTM(task.model.embed.num_embeddings, 16),
    "mnist-cnn": lambda task: _old_mnist_cnn(),
    "cifar10-resnet20": lambda task: _old_resnet20(),
}


def _net(name: str, model: nn.Module) -> nn.Module:
    """The network proper (the file-based problems put a standardising layer in front)."""
    if name == "cifar10-resnet20":
        return model[1].net
    return model[1] if name == "mnist-cnn" else model


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", sorted(OLD))
def test_default_models_are_todays(build, name):
    default = NORMALIZATION.get(name, (None,))[0]
    explicit = {"dropout": 0.0} | ({"normalization": default} if default else {})
    for options in ({}, explicit):
        task = build(name, seed=3, **options)
        torch.manual_seed(3)
        old = OLD[name](task)
        new = _net(name, task.model)
        state, old_state = _state(new), _state(old)
        assert list(state) == list(old_state)
        assert all(torch.equal(state[k], old_state[k]) for k in state)
        if name != "charlm-lstm":  # its old copy has no forward
            assert repr(new) == repr(old)


@pytest.mark.parametrize("name", ["digits-mlp", "digits-cnn"])
def test_default_models_train_as_today(build, name):
    task = build(name, seed=5)
    torch.manual_seed(5)
    old = SupervisedTask(
        OLD[name](task),
        digits_splits(image=name == "digits-cnn", n_train=200),
        nn.CrossEntropyLoss(),
        seed=5,
        batch_size=32,
    )
    assert _steps(task) == _steps(old)
    assert task.evaluate("val") == old.evaluate("val")


@pytest.mark.parametrize(
    ("name", "normalization"),
    [
        ("digits-cnn", "none"),
        ("digits-cnn", "layer"),
        ("digits-mlp", "batch"),
        ("digits-mlp", "layer"),
    ],
)
def test_other_normalizations_train(build, name, normalization):
    task = build(name, normalization=normalization)
    before = task.evaluate("train")["loss"]
    history = problems.train(task, problems.optimizers_for(task, "adam"), 5, eval_splits=())
    assert not history.diverged
    assert history.final["train"]["loss"] < 0.6 * before
    assert history.final["val"]["accuracy"] > 0.5  # chance is 0.1


@pytest.mark.parametrize("name", ["digits-mlp", "digits-cnn", "charlm-lstm"])
def test_dropout_is_on_in_training_and_off_in_evaluation(build, name):
    task = build(name, seed=1, dropout=0.5)
    plain = build(name, seed=1)
    # Dropout has no parameters and draws nothing at construction: the same initial weights.
    assert all(torch.equal(a, b) for a, b in zip(task.model.parameters(), plain.model.parameters()))
    assert task.evaluate("val") == task.evaluate("val") == plain.evaluate("val")
    assert task.model.training  # evaluate restores the mode
    x, _ = task.splits["val"]
    torch.manual_seed(0)
    first, second = task.model(x), task.model(x)
    assert not torch.equal(first, second)


def _labels(task) -> dict[str, torch.Tensor]:
    return {s: task.splits[s][1] for s in ("train", "val", "test")}


@pytest.mark.parametrize("name", CLASSES)
def test_classes_keep_those_labels_in_every_split(build, name):
    full = _labels(build(name, n_train=None))
    kept = _labels(build(name, n_train=None, classes=[7, 2, 5]))
    for split, y in kept.items():
        assert set(y.tolist()) == {2, 5, 7}
        assert len(y) == int(np.isin(full[split].numpy(), [2, 5, 7]).sum())
        assert torch.equal(y, full[split][torch.isin(full[split], torch.tensor([2, 5, 7]))])


@pytest.mark.parametrize("name", ["digits-mlp", "mnist1d-mlp"])
def test_n_train_applies_after_classes(build, name):
    all_of_them = build(name, n_train=None, classes=[3, 8])
    task = build(name, n_train=30, classes=[3, 8])
    x, y = task.splits["train"]
    assert len(y) == 30 and set(y.tolist()) == {3, 8}
    assert torch.equal(x, all_of_them.splits["train"][0][:30])
    for split in ("val", "test"):  # n_train cuts the training split only
        assert torch.equal(task.splits[split][1], all_of_them.splits[split][1])


@pytest.mark.parametrize("name", ["digits-cnn", "mnist1d-cnn"])
def test_every_class_is_all_classes(build, name):
    default, every = build(name, seed=2), build(name, seed=2, classes=list(range(10)))
    for split in ("train", "val", "test"):
        for a, b in zip(default.splits[split], every.splits[split]):
            assert torch.equal(a, b)
    assert _steps(default) == _steps(every)


def test_weights_trained_on_some_classes_load_into_the_model_for_the_others(build):
    source = build("digits-mlp", classes=[0, 1, 2, 3, 4])
    problems.train(source, problems.optimizers_for(source, "adam"), 2, eval_splits=())
    target = build("digits-mlp", classes=[5, 6, 7, 8, 9])
    target.model.load_state_dict(source.model.state_dict())
    x, y = target.splits["val"]
    assert target.model(x).shape == (len(y), 10)  # the head stays 10-way, labels not remapped
    assert set(y.tolist()) == {5, 6, 7, 8, 9}
    assert math.isfinite(target.evaluate("val")["loss"])


BAD_NORMALIZATION = r"normalization must be one of 'none', 'batch', 'layer', got "
BAD_DROPOUT = r"dropout must be a number in \[0, 1\), got "
BAD_CLASSES = r"classes must be a non-empty list of distinct labels in 0\.\.9, got "


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [
        ("digits-mlp", {"normalization": "group"}, BAD_NORMALIZATION + "'group'"),
        ("digits-cnn", {"normalization": None}, BAD_NORMALIZATION + "None"),
        ("mnist1d-cnn", {"normalization": "Batch"}, BAD_NORMALIZATION + "'Batch'"),
        ("digits-mlp", {"dropout": 1.0}, BAD_DROPOUT + "1.0"),
        ("digits-cnn", {"dropout": -0.1}, BAD_DROPOUT + "-0.1"),
        ("mnist1d-mlp", {"dropout": "0.5"}, BAD_DROPOUT + "'0.5'"),
        ("digits-mlp", {"dropout": True}, BAD_DROPOUT + "True"),
        ("digits-mlp", {"dropout": math.nan}, BAD_DROPOUT + "nan"),
        ("charlm-lstm", {"dropout": 1.5}, BAD_DROPOUT + "1.5"),
        ("digits-mlp", {"classes": []}, BAD_CLASSES + r"\[\]"),
        ("digits-logreg", {"classes": [10]}, BAD_CLASSES + r"\[10\] \(bad label 10\)"),
        ("digits-cnn", {"classes": [-1, 2]}, BAD_CLASSES + r"\[-1, 2\] \(bad label -1\)"),
        ("digits-mlp", {"classes": [1, 1]}, BAD_CLASSES + r"\[1, 1\] \(a label repeats\)"),
        ("digits-mlp", {"classes": "01"}, BAD_CLASSES + "'01'"),
        ("digits-mlp", {"classes": 3}, BAD_CLASSES + "3"),
        ("digits-mlp", {"classes": [1.0]}, BAD_CLASSES + r"\[1\.0\] \(bad label 1\.0\)"),
        ("mnist1d-mlp", {"classes": [True]}, BAD_CLASSES + r"\[True\] \(bad label True\)"),
        ("digits-logreg", {"normalization": "batch"}, r"no option normalization; its options: "),
        ("digits-logreg", {"dropout": 0.1}, r"no option dropout; its options: classes, n_train$"),
        ("charlm-lstm", {"normalization": "layer"}, r"no option normalization"),
        ("wilson-linreg", {"classes": [0]}, r"no option classes"),
    ],
)
def test_invalid_options(build, name, options, match):
    with pytest.raises(ValueError, match=match):
        build(name, **options)


@pytest.mark.parametrize("name", ["mnist-cnn", "cifar10-resnet20"])
def test_invalid_options_of_the_file_problems(build, name):
    with pytest.raises(ValueError, match=BAD_NORMALIZATION + "'group'"):
        build(name, normalization="group")
    with pytest.raises(ValueError, match=BAD_DROPOUT + "1"):
        build(name, dropout=1)


def test_resnet20_options():
    torch.manual_seed(0)
    net = ResNet20(normalization="none", dropout=0.1)
    assert not any(isinstance(m, NORMS) for m in net.modules())
    assert all(m.bias is not None for m in net.modules() if isinstance(m, nn.Conv2d))
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
