"""Batches without a DataLoader give the DataLoader's batches and leave the global generator where
it left it (so 0.1.0's numbers stay); streamed batches are the same batches; tasks move."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, TensorDataset

from descentlab import problems
from descentlab.problems import IndexBatches, StreamedBatches


def _data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(50, 3, generator=g), torch.arange(50)


def _epochs(loader, n=3):
    out = []
    for _ in range(n):
        out.append([(x.clone(), y.clone()) for x, y in loader])
        out.append(torch.rand(2))  # what dropout would draw next from the global generator
    return out


def _same(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        if isinstance(u, torch.Tensor):
            assert torch.equal(u, v)
        else:
            assert len(u) == len(v) and all(
                torch.equal(x, x2) and torch.equal(y, y2) for (x, y), (x2, y2) in zip(u, v)
            )


def _batches(x, seed=3):
    return BatchSampler(
        RandomSampler(range(len(x)), generator=torch.Generator().manual_seed(seed)), 8, False
    )


def test_index_batches_are_the_dataloaders_batches_and_random_stream():
    x, y = _data()
    torch.manual_seed(11)
    old = _epochs(DataLoader(TensorDataset(x, y), sampler=_batches(x), batch_size=None))
    torch.manual_seed(11)
    new = _epochs(IndexBatches(x, y, _batches(x)))
    _same(old, new)
    assert len(IndexBatches(x, y, _batches(x))) == 7


def test_streamed_batches_are_the_same_batches():
    x, y = _data()
    torch.manual_seed(5)
    streamed = _epochs(StreamedBatches(TensorDataset(x, y), _batches(x), torch.device("cpu")))
    torch.manual_seed(5)
    _same(streamed, _epochs(IndexBatches(x, y, _batches(x))))


@pytest.mark.parametrize("stream", [False, True])
def test_a_task_moved_to_its_device_trains_as_before(stream):
    def run(move):
        torch.manual_seed(0)
        task = problems.get("digits-mlp").build(0, n_train=96, batch_size=32)
        task.stream = stream
        task.set_order()
        if move:
            assert task.to(torch.device("cpu")) is task
        opt = {"model": torch.optim.SGD(task.model.parameters(), lr=0.1)}
        losses = [task.train_step(opt, b) for _ in range(2) for b in task.epoch_batches()]
        return losses, task.evaluate("val")

    assert run(True) == run(False)


def test_the_gan_draws_on_its_device_and_cartpole_stays_on_the_cpu():
    gan = problems.get("gan-mog").build(0, steps_per_epoch=2, n_eval=16, width=8)
    assert gan.to(torch.device("cpu")) is gan and gan.generator.device.type == "cpu"
    real, z = next(iter(gan.epoch_batches()))
    assert real.shape == (256, 2) and z.device.type == "cpu"
    pytest.importorskip("gymnasium")
    pole = problems.get("cartpole-pg").build(0)
    with pytest.raises(ValueError, match="cartpole-pg runs on the CPU only"):
        pole.to(torch.device("meta"))
