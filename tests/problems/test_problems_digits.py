"""The digits problems: the fixed split, standardisation and the models' shapes."""

from __future__ import annotations

import pytest
import torch

from descentlab import problems
from descentlab.problems.digits import digits_splits


def test_split_is_fixed_stratified_and_disjoint():
    s = digits_splits()
    sizes = {k: len(v[0]) for k, v in s.items()}
    assert sizes == {"train": 1078, "val": 359, "test": 360}
    for _, y in s.values():
        counts = torch.bincount(y, minlength=10).float() / len(y)
        assert torch.all((counts - 0.1).abs() < 0.02)  # stratified: about 10% per class
    rows = {tuple(r.tolist()) for x, _ in s.values() for r in x}
    assert len(rows) > 0.98 * sum(sizes.values())  # (load_digits has a few duplicate images)
    assert problems.get("digits-mlp").build(0).splits["test"][1].equal(s["test"][1])


def test_standardised_with_the_training_statistics():
    x = digits_splits()["train"][0]
    varying = x.std(0) > 0
    assert torch.allclose(x.mean(0), torch.zeros(64), atol=1e-5)
    assert torch.allclose(
        x.std(0, unbiased=False)[varying], torch.ones(int(varying.sum())), atol=1e-4
    )


@pytest.mark.parametrize(
    ("name", "shape"), [("digits-logreg", (64,)), ("digits-mlp", (64,)), ("digits-cnn", (1, 8, 8))]
)
def test_input_shapes_and_outputs(name, shape):
    task = problems.get(name).build(0, n_train=64, batch_size=16)
    x, y = next(iter(task.epoch_batches()))
    assert x.shape == (16, *shape) and y.shape == (16,)
    assert task.model(x).shape == (16, 10)


def test_cnn_has_batchnorm_and_evaluates_in_eval_mode():
    task = problems.get("digits-cnn").build(0, n_train=64)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in task.model.modules())
    running = task.model[1].running_mean.clone()
    task.evaluate("val")
    assert torch.equal(task.model[1].running_mean, running)  # eval mode: stats untouched
    assert task.model.training


def test_mlp_reaches_its_target_in_its_budget():
    p = problems.get("digits-mlp")
    task = p.build(0)
    h = problems.train(task, problems.optimizers_for(task, "adam"), p.budget.epochs)
    assert p.target.reached(h.epochs[-1]["val"]["accuracy"])


def test_unknown_option_names_the_allowed_ones():
    with pytest.raises(ValueError, match="n_train"):
        problems.get("digits-mlp").build(0, width=3)
