"""mnist1d and charlm: the data each problem generates or reads, offline."""

from __future__ import annotations

import math
import random
import sys

import numpy as np
import pytest
import torch

from descentlab import problems
from descentlab.problems import charlm, mnist1d

# --- MNIST-1D ----------------------------------------------------------------------------------


def test_mnist1d_splits_are_the_package_recipe():
    pytest.importorskip("mnist1d")
    from mnist1d.data import get_dataset_args, make_dataset

    s = mnist1d.mnist1d_splits()
    assert {k: tuple(v[0].shape) for k, v in s.items()} == {
        "train": (3500, 40),
        "val": (500, 40),
        "test": (1000, 40),
    }
    assert set(torch.cat([v[1] for v in s.values()]).tolist()) == set(range(10))
    state = np.random.get_state()
    reference = make_dataset(get_dataset_args())  # the package's own generator, seed 42
    np.random.set_state(state)
    assert np.allclose(s["test"][0].numpy(), reference["x_test"], atol=1e-6)
    assert np.array_equal(s["val"][1].numpy(), reference["y"][-500:])


def test_mnist1d_restores_the_global_random_state():
    pytest.importorskip("mnist1d")
    mnist1d._arrays.cache_clear()
    np.random.seed(7)
    random.seed(7)
    mnist1d.mnist1d_splits()
    assert np.random.randint(1 << 30) == np.random.RandomState(7).randint(1 << 30)
    assert random.random() == random.Random(7).random()


def test_mnist1d_missing_package_names_the_extra(monkeypatch):
    mnist1d._arrays.cache_clear()
    monkeypatch.setitem(sys.modules, "mnist1d", None)
    monkeypatch.setitem(sys.modules, "mnist1d.data", None)
    with pytest.raises(ImportError, match=r"descentlab\[lab\]"):
        problems.get("mnist1d-mlp").build(0)
    monkeypatch.undo()
    mnist1d._arrays.cache_clear()


def test_mnist1d_cnn_input_has_a_channel():
    pytest.importorskip("mnist1d")
    task = problems.get("mnist1d-cnn").build(0, n_train=100, batch_size=10)
    x, _ = next(iter(task.epoch_batches()))
    assert x.shape == (10, 1, 40) and task.model(x).shape == (10, 10)


# --- charlm ----------------------------------------------------------------------------------


def test_stdlib_corpus_is_deterministic_python_source():
    text = charlm.stdlib_text(3000)
    assert len(text) == 3000 and text == charlm.stdlib_text.__wrapped__(3000)
    assert "import" in text or "def " in text


def test_charlm_sequences_predict_the_next_character(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("abcdefghij" * 40, encoding="utf-8")
    task = problems.get("charlm-lstm").build(0, text_file=str(path), seq_len=8, hidden=8)
    x, y = task.splits["train"]
    assert x.shape[1] == 8 and torch.equal(x[:, 1:], y[:, :-1])
    assert torch.equal((x + 1) % 10, y)  # the cyclic text: the next letter
    out = task.model(x[:4])
    assert out.shape == (4, 8, 10)
    result = task.evaluate("val")
    assert result["bpc"] == pytest.approx(result["loss"] / math.log(2))
    assert result["bpc"] == pytest.approx(math.log2(10), abs=0.5)  # untrained: about uniform


def test_charlm_learns_a_simple_text(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("abcdefghij" * 200, encoding="utf-8")
    task = problems.get("charlm-lstm").build(0, text_file=str(path), seq_len=16, hidden=16)
    problems.train(task, problems.optimizers_for(task, "adam", lr=0.02), 3, eval_splits=())
    assert task.evaluate("test")["bpc"] < 1.0 < math.log2(10)


def test_charlm_missing_text_file_names_the_path(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(FileNotFoundError, match=r"nope\.txt"):
        problems.get("charlm-lstm").build(0, text_file=str(missing))
