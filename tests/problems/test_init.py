"""Weight initialization: each scheme's statistics, what it touches, errors, and the symmetry of a
constant initialization (Glorot & Bengio 2010; He et al. 2015)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from descentlab import problems
from descentlab.problems.init import INITS, initialize

# A wide layer: 600 x 400 = 240,000 weights, so a standard deviation is estimated to ~0.2%.
FAN_IN, FAN_OUT = 400, 600


def _wide(scheme: str, **options) -> nn.Linear:
    torch.manual_seed(0)
    return initialize(nn.Linear(FAN_IN, FAN_OUT), scheme, **options)


# scheme -> (options, expected standard deviation, bound of |w| or None)
STATS = {
    "normal": ({"std": 0.05}, 0.05, None),
    "xavier_uniform": (
        {},
        math.sqrt(2 / (FAN_IN + FAN_OUT)),
        math.sqrt(6 / (FAN_IN + FAN_OUT)),
    ),
    "xavier_normal": ({}, math.sqrt(2 / (FAN_IN + FAN_OUT)), None),
    "kaiming_uniform": ({}, math.sqrt(2 / FAN_IN), math.sqrt(6 / FAN_IN)),
    "kaiming_normal": ({}, math.sqrt(2 / FAN_IN), None),
}


def test_inits_lists_every_scheme():
    assert INITS == (
        "default",
        "zeros",
        "constant",
        "normal",
        "xavier_uniform",
        "xavier_normal",
        "kaiming_uniform",
        "kaiming_normal",
    )
    assert set(INITS) == {"default", "zeros", "constant", *STATS}


@pytest.mark.parametrize("scheme", sorted(STATS))
def test_random_scheme_statistics(scheme):
    options, std, bound = STATS[scheme]
    layer = _wide(scheme, **options)
    w = layer.weight.detach()
    assert abs(float(w.mean())) < 0.05 * std
    assert float(w.std()) == pytest.approx(std, rel=0.03)
    if bound is not None:  # uniform on [-bound, bound]: reaches close to the bound, never beyond
        assert float(w.abs().max()) <= bound
        assert float(w.abs().max()) > 0.99 * bound
    assert torch.equal(layer.bias, torch.zeros(FAN_OUT))


def test_kaiming_uses_the_fan_in_of_a_kernel():
    torch.manual_seed(0)
    conv = initialize(nn.Conv2d(16, 64, 5), "kaiming_normal")  # fan_in = 16 * 5 * 5
    assert float(conv.weight.detach().std()) == pytest.approx(math.sqrt(2 / (16 * 25)), rel=0.05)
    assert torch.equal(conv.bias, torch.zeros(64))


@pytest.mark.parametrize(
    ("scheme", "options", "fill"),
    [
        ("zeros", {}, 0.0),
        ("constant", {}, 0.1),
        ("constant", {"value": -0.25}, -0.25),
        ("normal", {"std": 0.0}, 0.0),
    ],
)
def test_constant_schemes(scheme, options, fill):
    layer = _wide(scheme, **options)
    assert torch.equal(layer.weight, torch.full((FAN_OUT, FAN_IN), fill))
    assert torch.equal(layer.bias, torch.zeros(FAN_OUT))


def test_every_weight_matrix_gets_the_scheme_and_norm_layers_keep_theirs():
    model = nn.Sequential(
        nn.Embedding(20, 8),
        nn.LSTM(8, 6, batch_first=True),
        nn.Conv1d(6, 4, 3),
        nn.BatchNorm1d(4),
        nn.LayerNorm(4),
        nn.Linear(4, 3),
    )
    with torch.no_grad():  # distinguishable norm parameters, so "kept" can fail
        for norm in (model[3], model[4]):
            norm.weight.fill_(2.0)
            norm.bias.fill_(0.5)
    initialize(model, "constant", value=0.3)
    names = dict(model.named_parameters())
    matrices = [
        n for n, p in names.items() if n.split(".")[-1].startswith("weight") and p.dim() >= 2
    ]
    assert sorted(matrices) == [
        "0.weight",
        "1.weight_hh_l0",
        "1.weight_ih_l0",
        "2.weight",
        "5.weight",
    ]
    for n in matrices:
        assert torch.all(names[n] == 0.3), n
    for n in ("1.bias_ih_l0", "1.bias_hh_l0", "2.bias", "5.bias"):
        assert torch.all(names[n] == 0), n
    for n in ("3.weight", "4.weight"):
        assert torch.all(names[n] == 2.0), n
    for n in ("3.bias", "4.bias"):
        assert torch.all(names[n] == 0.5), n


def test_batchnorm_of_a_problem_model_stays_at_its_default():
    task = problems.get("digits-cnn").build(0, n_train=50)
    torch.manual_seed(0)
    initialize(task.model, "kaiming_normal")
    norms = [m for m in task.model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 2
    for m in norms:
        assert torch.equal(m.weight, torch.ones_like(m.weight))
        assert torch.equal(m.bias, torch.zeros_like(m.bias))


def test_default_changes_nothing():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert initialize(model, "default") is model
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_the_global_generator_makes_it_reproducible():
    def draw(seed: int) -> torch.Tensor:
        model = nn.Linear(10, 10)
        torch.manual_seed(seed)
        return initialize(model, "kaiming_uniform").weight.clone()

    assert torch.equal(draw(1), draw(1))
    assert not torch.equal(draw(1), draw(2))


@pytest.mark.parametrize(
    ("model", "scheme", "options", "match"),
    [
        (
            nn.Linear(3, 2),
            "orthogonal",
            {},
            r"init scheme must be one of default, zeros, .*'orthogonal'",
        ),
        (nn.Linear(3, 2), "normal", {"std": -0.1}, r"init std .* >= 0, got -0\.1"),
        (nn.Linear(3, 2), "normal", {"std": math.nan}, r"init std"),
        (nn.Linear(3, 2), "constant", {"value": math.inf}, r"init value .*inf"),
        (nn.BatchNorm1d(3), "xavier_uniform", {}, r"BatchNorm1d has no weight matrix or kernel"),
        (nn.Sequential(nn.ReLU()), "zeros", {}, r"Sequential has no weight matrix"),
    ],
)
def test_errors(model, scheme, options, match):
    with pytest.raises(ValueError, match=match):
        initialize(model, scheme, **options)


def _hidden_weights(scheme: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Train digits-mlp initialised with ``scheme`` for 3 epochs of SGD; its hidden layers."""
    task = problems.get("digits-mlp").build(0, n_train=200)
    torch.manual_seed(0)
    initialize(task.model, scheme)
    problems.train(task, problems.optimizers_for(task, "sgd", lr=0.1), 3, eval_splits=())
    hidden = [m for m in task.model if isinstance(m, nn.Linear)][:-1]
    assert len(hidden) == 2
    return [(m.weight.detach(), m.bias.detach()) for m in hidden]


def _units_identical(w: torch.Tensor, b: torch.Tensor) -> bool:
    """Every row of ``w`` (one hidden unit's weights) and every entry of ``b`` is the same."""
    # A tiny tolerance: a BLAS may sum each unit's products in a different order.
    same_rows = torch.allclose(w, w[:1].expand_as(w), rtol=1e-5, atol=1e-7)
    return same_rows and torch.allclose(b, b[:1].expand_as(b), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("scheme", ["zeros", "constant"])
def test_a_constant_initialization_keeps_the_hidden_units_identical(scheme):
    layers = _hidden_weights(scheme)
    for w, b in layers:
        assert _units_identical(w, b)
    if scheme == "constant":  # the units moved, together
        first, _ = layers[0]
        assert float((first - 0.1).abs().max()) > 1e-3


@pytest.mark.parametrize("scheme", ["xavier_uniform", "kaiming_normal"])
def test_a_random_initialization_breaks_the_symmetry(scheme):
    for w, b in _hidden_weights(scheme):
        assert not _units_identical(w, b)
