"""wilson-linreg and gan-mog: the constructions and the metrics."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from descentlab import problems
from descentlab.problems.gan import ring_modes
from descentlab.problems.wilson import wilson_data

# --- Wilson et al. 2017, section 3.3 ---------------------------------------------------------


def test_wilson_features_follow_the_paper():
    data = wilson_data(0, n_train=6, n_val=2, n_test=4)
    x = torch.cat([data[s][0] for s in ("train", "val", "test")])
    y = torch.cat([data[s][1] for s in ("train", "val", "test")])
    n = len(y)
    assert x.shape == (n, 6 * n)
    assert torch.equal(x[:, 0], y) and torch.all(x[:, 1:3] == 1)
    for i in range(n):  # the example's own block: 1 feature if y = 1, 5 if y = -1
        own = x[i, 3:].nonzero().flatten() + 3
        width = 1 if y[i] == 1 else 5
        assert own.tolist() == list(range(3 + 5 * i, 3 + 5 * i + width))
    assert torch.all((x[:, 3:] != 0).sum(0) <= 1)  # no two examples share a block feature


def test_wilson_seed_draws_the_labels_and_p_biases_them():
    a, b = wilson_data(0)["train"][1], wilson_data(1)["train"][1]
    assert not torch.equal(a, b)
    assert (wilson_data(0, n_train=2000, p=0.7)["train"][1] == 1).float().mean() == pytest.approx(
        0.7, abs=0.04
    )
    with pytest.raises(ValueError, match="p must be"):
        wilson_data(0, p=0.5)


@pytest.mark.parametrize(("name", "adaptive"), [("sgd", False), ("sgdm", False), ("adam", True)])
def test_wilson_adaptive_methods_label_everything_positive(name, adaptive):
    p = problems.get("wilson-linreg")
    task = p.build(3, n_train=40, n_val=10, n_test=200)
    h = problems.train(task, problems.optimizers_for(task, name), 200, eval_splits=())
    assert h.final["train"]["accuracy"] == 1.0
    positive = float((task.splits["test"][1] == 1).float().mean())
    expected = positive if adaptive else 1.0  # the paper: error 1 - p versus zero test error
    assert h.final["test"]["accuracy"] == pytest.approx(expected)


# --- gan-mog ---------------------------------------------------------------------------------


class _Fixed(nn.Module):
    """A 'generator' that ignores its noise and returns the given points, cycled."""

    def __init__(self, points: torch.Tensor) -> None:
        super().__init__()
        self.points = points

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.points[torch.arange(len(z)) % len(self.points)]


def test_ring_modes():
    m = ring_modes()
    assert m.shape == (8, 2)
    assert torch.allclose(m.norm(dim=1), torch.full((8,), 2.0))


def test_gan_metrics_on_perfect_collapsed_and_off_generators():
    task = problems.get("gan-mog").build(0, width=8, n_eval=800)
    real = task.sample_real(800, torch.Generator().manual_seed(0))
    task.model["generator"] = _Fixed(real)
    result = task.evaluate("test")
    assert result["mode_coverage"] == 1.0 and result["high_quality"] > 0.98
    task.model["generator"] = _Fixed(ring_modes()[:1])  # mode collapse onto one mode
    result = task.evaluate("test")
    assert result["mode_coverage"] == 1 / 8 and result["high_quality"] == 1.0
    task.model["generator"] = _Fixed(torch.zeros(1, 2))  # the centre: no mode
    result = task.evaluate("test")
    assert result["mode_coverage"] == 0.0 and result["high_quality"] == 0.0


def test_gan_has_two_optimizers_and_steps_both():
    task = problems.get("gan-mog").build(0, width=8, steps_per_epoch=2)
    opts = problems.optimizers_for(task, "adam")
    assert set(opts) == {"generator", "discriminator"}
    before = {k: [p.detach().clone() for p in v] for k, v in task.param_groups().items()}
    assert len(task.train_loader) == 2
    task.train_step(opts, next(iter(task.epoch_batches())))
    for k, params in task.param_groups().items():
        assert any(not torch.equal(a, b) for a, b in zip(before[k], params)), k


def test_gan_evaluation_does_not_touch_the_training_stream():
    a = problems.get("gan-mog").build(0, width=8)
    b = problems.get("gan-mog").build(0, width=8)
    a.evaluate("val")
    assert all(
        torch.equal(x, y)
        for x, y in zip(next(iter(a.epoch_batches())), next(iter(b.epoch_batches())))
    )
