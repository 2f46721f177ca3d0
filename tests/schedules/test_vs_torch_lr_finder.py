"""The range test against torch-lr-finder (a test extra) on the same seed and data."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from descentlab.schedules import lr_range_test

torch_lr_finder = pytest.importorskip("torch_lr_finder")


def setup() -> tuple[nn.Module, torch.optim.Optimizer, DataLoader]:
    torch.manual_seed(0)
    x = torch.randn(96, 5)
    y = (x[:, 0] + x[:, 1] > 0).long()
    model = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return model, opt, DataLoader(TensorDataset(x, y), batch_size=32)  # 3 batches: cycled


def theirs(smooth_f: float, **kw) -> tuple[list[float], list[float]]:
    model, opt, loader = setup()
    finder = torch_lr_finder.LRFinder(model, opt, nn.CrossEntropyLoss())
    finder.range_test(
        loader, start_lr=1e-4, end_lr=100, num_iter=60, smooth_f=smooth_f, diverge_th=5, **kw
    )
    return finder.history["lr"], finder.history["loss"]


def ours(smooth: float, **kw):
    model, opt, loader = setup()
    return lr_range_test(
        model,
        opt,
        nn.CrossEntropyLoss(),
        loader,
        start_lr=1e-4,
        end_lr=100,
        num_steps=60,
        smooth=smooth,
        diverge_factor=5,
        **kw,
    )


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_same_lrs_losses_and_stop_without_smoothing() -> None:
    lrs, losses = theirs(0.0)  # torch-lr-finder's smooth_f=0 is no smoothing: our smooth=1
    res = ours(1.0)
    assert res.stop_reason == "diverged" and len(res.lrs) < 60
    assert res.lrs == lrs  # the same floats, step for step, up to the same stop
    assert res.raw_losses == losses == res.losses


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_smoothed_curves_differ_only_by_the_bias_correction() -> None:
    lrs, smoothed = theirs(0.05)
    res = ours(0.05)
    n = min(len(lrs), len(res.lrs))
    assert n > 30 and res.lrs[:n] == lrs[:n]
    # torch-lr-finder: EMA started at the first loss; ours: zero-started EMA, bias corrected
    start_at_first = [res.raw_losses[0]]
    for loss in res.raw_losses[1:n]:
        start_at_first.append(0.05 * loss + 0.95 * start_at_first[-1])
    assert smoothed[:n] == pytest.approx(start_at_first, rel=1e-12)
    # the exact relation: theirs_i = ours_i - 0.95^(i+1) (ours_i - loss_0), a gap that decays
    first = res.raw_losses[0]
    related = [m - 0.95 ** (i + 1) * (m - first) for i, m in enumerate(res.losses[:n])]
    assert smoothed[:n] == pytest.approx(related, rel=1e-12)
    assert max(abs(a - b) / b for a, b in zip(res.losses[:n], smoothed[:n])) > 1e-3  # not equal


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_same_validation_losses() -> None:
    _, _, val = setup()
    lrs, losses = theirs(0.0, val_loader=val)
    res = ours(1.0, val_loader=val)
    assert res.lrs == lrs
    assert res.raw_losses == pytest.approx(losses, rel=1e-12)
