"""The one table of problem test cases: tiny build options per problem (so each trains in
seconds), the optional package it needs, and the tiny data files a test writes for it."""

from __future__ import annotations

import gzip
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


def write_idx(path: Path, array: np.ndarray, *, compress: bool = False) -> Path:
    """Write ``array`` (uint8) as an IDX file: 0, 0, type 0x08, ndim, big-endian dims, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    raw = header + np.ascontiguousarray(array, np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        raw = gzip.compress(raw)
    path.write_bytes(raw)
    return path


def write_mnist(root: Path, sub: str = "MNIST", *, n_train: int = 40, n_test: int = 12) -> Path:
    """Tiny random MNIST-format files in torchvision's layout ``root/sub/raw``; returns root."""
    raw = root / sub / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 60, (n, 28, 28))
        images[:, labels + 5, 5:20] = 255  # a class-dependent stripe, so it is learnable
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images, compress=prefix == "train")
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return root


def write_cifar10(root: Path, *, per_batch: int = 8) -> Path:
    """Tiny random CIFAR-10 python pickles in ``root/cifar-10-batches-py``; returns root."""
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
            b"labels": [int(v) for v in rng.integers(0, 10, per_batch)],
        }
        (d / name).write_bytes(pickle.dumps(batch))
    return root


@dataclass(frozen=True)
class Case:
    options: dict = field(default_factory=dict)
    requires: str | None = None  # an optional package
    files: Callable[[Path], Path] | None = None  # writes tiny data, returns the data_dir


CASES: dict[str, Case] = {
    "digits-logreg": Case({"n_train": 200}),
    "digits-mlp": Case({"n_train": 200}),
    "digits-cnn": Case({"n_train": 200}),
    "mnist1d-mlp": Case({"n_train": 300}, requires="mnist1d"),
    "mnist1d-cnn": Case({"n_train": 300}, requires="mnist1d"),
    "charlm-lstm": Case({"corpus_chars": 5000, "seq_len": 16, "hidden": 16}),
    "charlm-transformer": Case(
        {"corpus_chars": 20_000, "seq_len": 16, "width": 32, "steps_per_epoch": 5, "n_eval": 2}
    ),
    "wilson-linreg": Case({"n_train": 20, "n_val": 10, "n_test": 20}),
    "gan-mog": Case({"width": 16, "steps_per_epoch": 5, "n_eval": 200}),
    "cartpole-pg": Case(
        {"batch_size": 2, "width": 8, "steps_per_epoch": 3, "n_eval": 2}, requires="gymnasium"
    ),
    "mnist-cnn": Case({"n_val": 8, "batch_size": 8}, files=write_mnist),
    "fashion-mnist-cnn": Case(
        {"n_val": 8, "batch_size": 8}, files=lambda root: write_mnist(root, "FashionMNIST")
    ),
    "cifar10-resnet20": Case({"n_val": 8, "batch_size": 8}, files=write_cifar10),
}
