"""Problems that need something from outside: files under --data-dir, or Gymnasium."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from descentlab import problems
from descentlab.problems import torchvision_data as tv

from .problem_cases import write_cifar10, write_idx, write_mnist

# --- IDX and CIFAR-10 parsers ------------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip(tmp_path, compress):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = write_idx(tmp_path / "x-idx3-ubyte", a, compress=compress)
    back = tv.read_idx(path)
    assert back.dtype == np.uint8 and np.array_equal(back, a) and back.flags.writeable


def test_idx_bad_magic_and_truncated(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="not an IDX file"):
        tv.read_idx(tmp_path / "bad")
    path = write_idx(tmp_path / "short", np.zeros((4, 5), np.uint8))
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(ValueError, match="truncated"):
        tv.read_idx(path)


def test_read_mnist_in_torchvision_layout_and_flat(tmp_path):
    root = write_mnist(tmp_path / "a", n_train=30, n_test=10)
    data = tv.read_mnist(root)
    assert data["train"][0].shape == (30, 28, 28) and data["test"][1].tolist() == list(range(10))
    flat = tmp_path / "b"
    (root / "MNIST" / "raw").rename(flat)  # the four files directly in data_dir
    assert np.array_equal(tv.read_mnist(flat)["train"][0], data["train"][0])


def test_read_cifar10(tmp_path):
    data = tv.read_cifar10(write_cifar10(tmp_path, per_batch=4))
    assert data["train"][0].shape == (20, 3, 32, 32) and data["train"][0].dtype == np.uint8
    assert data["test"][1].shape == (4,)


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("mnist-cnn", "datasets.MNIST"),
        ("fashion-mnist-cnn", "datasets.FashionMNIST"),
        ("cifar10-resnet20", "cs.toronto.edu"),
    ],
)
def test_missing_files_name_the_path_and_how_to_get_them(tmp_path, name, hint):
    with pytest.raises(FileNotFoundError) as err:
        problems.get(name).build(0, data_dir=str(tmp_path / "nowhere"))
    message = str(err.value)
    assert str(tmp_path / "nowhere") in message and hint in message and "--data-dir" in message


def test_standardised_by_the_training_split(tmp_path):
    task = problems.get("mnist-cnn").build(0, data_dir=str(write_mnist(tmp_path)), n_val=8)
    x = task.splits["train"][0]
    assert x.dtype == torch.uint8 and x.shape[1:] == (1, 28, 28)
    z = task.model[0](x)
    assert abs(float(z.mean())) < 1e-4 and float(z.std(unbiased=False)) == pytest.approx(
        1, abs=1e-3
    )
    assert len(task.splits["val"][0]) == 8 and len(x) == 32


def test_resnet20_is_the_papers():
    m = tv.ResNet20()
    layers = [x for x in m.modules() if isinstance(x, torch.nn.Conv2d | torch.nn.Linear)]
    assert len(layers) == 20  # 6n + 2 with n = 3
    assert sum(p.numel() for p in m.parameters()) == pytest.approx(0.27e6, rel=0.01)  # Table 6
    assert m(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


# --- cartpole-pg -------------------------------------------------------------------------------


def test_cartpole_without_gymnasium_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "gymnasium", None)
    with pytest.raises(ImportError, match=r"descentlab\[rl\]"):
        problems.get("cartpole-pg").build(0)


def test_cartpole_policy_gradient_improves_the_return():
    pytest.importorskip("gymnasium")
    task = problems.get("cartpole-pg").build(0, width=16, steps_per_epoch=10, n_eval=4)
    before = task.evaluate("val")["return"]
    assert 8 <= before <= 500
    h = problems.train(task, problems.optimizers_for(task, "adam", lr=0.02), 2, eval_splits=())
    assert h.final["val"]["return"] > 1.5 * before
