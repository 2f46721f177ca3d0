"""MNIST, Fashion-MNIST and CIFAR-10 from files the user has: ``mnist-cnn``,
``fashion-mnist-cnn`` and ``cifar10-resnet20``.

The files are never downloaded here, and torchvision is not needed: the raw MNIST IDX files
(LeCun et al. 1998; Xiao, Rasul & Vollgraf 2017 for Fashion-MNIST) and the CIFAR-10 "python
version" pickles (Krizhevsky 2009) are parsed with numpy. They are looked for in torchvision's
layout under ``data_dir`` (default ``./data``), so a torchvision download works as is:
``DATA/MNIST/raw/train-images-idx3-ubyte[.gz]``, ``DATA/FashionMNIST/raw/...`` and
``DATA/cifar-10-batches-py/data_batch_1`` ... ``test_batch`` (also directly in ``DATA``). Without
them a ``FileNotFoundError`` names the paths searched and how to get the files.

Splits: the last ``n_val`` (default 5,000) training images are the validation split, the official
test set is the test split. Images stay ``uint8`` in memory; the model's first layer scales them
and standardises each channel with the training split's mean and standard deviation. No data
augmentation. The seed sets the initialisation and the data order.

ResNet-20: He, Zhang, Ren & Sun 2016, "Deep Residual Learning for Image Recognition", section 4.2
(3 stages of 3 basic blocks, 16/32/64 channels, identity shortcuts with zero-padded channels,
"option A").

Options (see :mod:`descentlab.problems._options`): ``normalization`` after every convolution
(the CNN's default ``"none"``, ResNet-20's ``"batch"``) and ``dropout`` before the linear
read-out.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ._base import Budget, Problem, SupervisedTask, Target
from ._options import check_dropout, check_normalization, conv_layers, dropout_layers, norm_layers

__all__ = [
    "CIFAR10_RESNET20",
    "FASHION_MNIST_CNN",
    "MNIST_CNN",
    "ResNet20",
    "read_cifar10",
    "read_idx",
    "read_mnist",
]

_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (``.gz`` or not) as an array: 2 zero bytes, a type code, the number of
    dimensions, then each dimension as a big-endian uint32, then the data."""
    path = Path(path)
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    count, offset = int(np.prod(shape)), 4 + 4 * ndim
    if len(raw) < offset + count * dtype.itemsize:
        raise ValueError(f"{path} is truncated: expected shape {shape}")
    data = np.frombuffer(raw, dtype, count=count, offset=offset)
    return data.reshape(shape).copy()  # writable, detached from the file buffer


def _find(data_dir: Path, sub: str, names: list[str], *, gz: bool, problem: str, how: str) -> Path:
    """The first directory among ``data_dir/sub/raw``, ``data_dir/sub``, ``data_dir`` holding all
    ``names`` (each possibly ``.gz``)."""
    candidates = [data_dir / sub / "raw", data_dir / sub, data_dir]
    for d in candidates:
        if all((d / n).is_file() or (gz and (d / f"{n}.gz").is_file()) for n in names):
            return d
    searched = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"{problem} needs the files {', '.join(names)} (none found in: {searched}). "
        f"They are not downloaded here. {how} Then pass --data-dir {data_dir} "
        "(data_dir= in Python)."
    )


def _idx_file(d: Path, name: str) -> Path:
    return d / name if (d / name).is_file() else d / f"{name}.gz"


def read_mnist(
    data_dir: str | Path, *, sub: str = "MNIST", problem: str = "mnist-cnn"
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train": (images, labels), "test": ...}`` from MNIST-format IDX files under ``data_dir``
    (``sub="FashionMNIST"`` for Fashion-MNIST); images ``(n, 28, 28)`` uint8."""
    dataset = "FashionMNIST" if sub == "FashionMNIST" else "MNIST"
    how = (
        f"Get them with torchvision (torchvision.datasets.{dataset}(root='{data_dir}', "
        "download=True)) or copy the four IDX files there."
    )
    names = [n for pair in _MNIST_FILES.values() for n in pair]
    d = _find(Path(data_dir), sub, names, gz=True, problem=problem, how=how)
    out = {}
    for split, (images, labels) in _MNIST_FILES.items():
        x, y = read_idx(_idx_file(d, images)), read_idx(_idx_file(d, labels))
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise ValueError(f"{d}: {images} {x.shape} and {labels} {y.shape} do not match")
        out[split] = (x, y)
    return out


def read_cifar10(data_dir: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train": (images, labels), "test": ...}`` from the CIFAR-10 python pickles under
    ``data_dir``; images ``(n, 3, 32, 32)`` uint8."""
    how = (
        f"Get them with torchvision (torchvision.datasets.CIFAR10(root='{data_dir}', download=True)) "
        "or unpack cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html "
        f"into {data_dir}."
    )
    d = _find(
        Path(data_dir),
        "cifar-10-batches-py",
        _CIFAR_FILES,
        gz=False,
        problem="cifar10-resnet20",
        how=how,
    )

    def load(name: str) -> tuple[np.ndarray, np.ndarray]:
        with open(d / name, "rb") as f:
            batch = pickle.load(f, encoding="bytes")  # the official files are pickles
        x = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        return x, np.asarray(batch[b"labels"], dtype=np.int64)

    parts = [load(n) for n in _CIFAR_FILES[:-1]]
    train = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    return {"train": train, "test": load("test_batch")}


class _Standardise(nn.Module):
    """uint8 images -> floats in [0, 1] -> per-channel standardised (statistics as buffers)."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.view(1, -1, 1, 1))
        self.register_buffer("std", std.view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() / 255 - self.mean) / self.std


def _mnist_cnn(*, normalization: str = "none", dropout: float = 0.0) -> nn.Sequential:
    norm = check_normalization(normalization)
    return nn.Sequential(
        *conv_layers(norm, 1, 32, 3, spatial=2, padding=1),
        nn.MaxPool2d(2),  # 28 -> 14
        *conv_layers(norm, 32, 64, 3, spatial=2, padding=1),
        nn.MaxPool2d(2),  # 14 -> 7
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 128),
        nn.ReLU(),
        *dropout_layers(check_dropout(dropout)),
        nn.Linear(128, 10),
    )


class _Block(nn.Module):
    """A basic residual block; the shortcut subsamples and zero-pads channels (option A)."""

    def __init__(self, cin: int, cout: int, stride: int, normalization: str) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *conv_layers(normalization, cin, cout, 3, spatial=2, stride=stride, padding=1),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=normalization != "batch"),
            *norm_layers(normalization, cout, spatial=2),
        )
        self.stride, self.pad = stride, cout - cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x[:, :, :: self.stride, :: self.stride] if self.stride > 1 else x
        if self.pad:
            shortcut = nn.functional.pad(shortcut, (0, 0, 0, 0, 0, self.pad))
        return torch.relu(self.body(x) + shortcut)


class ResNet20(nn.Module):
    """ResNet-20 for 32x32 images (He et al. 2016, section 4.2): 6n + 2 layers with n = 3.

    ``normalization`` replaces the batch normalization after every convolution (``"none"``,
    ``"layer"``); ``dropout`` acts on the pooled features before the read-out.
    """

    def __init__(
        self, classes: int = 10, *, n: int = 3, normalization: str = "batch", dropout: float = 0.0
    ) -> None:
        super().__init__()
        norm, p = check_normalization(normalization), check_dropout(dropout)
        layers: list[nn.Module] = conv_layers(norm, 3, 16, 3, spatial=2, padding=1)
        cin = 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(n):
                layers.append(_Block(cin, cout, stride if i == 0 else 1, norm))
                cin = cout
        layers += [
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            *dropout_layers(p),
            nn.Linear(64, classes),
        ]
        self.net = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _factory(reader, model_fn):
    def build(
        seed: int,
        *,
        data_dir: str | None,
        batch_size: int,
        n_train: int | None = None,
        n_val: int = 5000,
        **model_options: Any,
    ) -> SupervisedTask:
        arrays = reader(Path(data_dir) if data_dir is not None else Path("data"))
        x, y = arrays["train"]
        if not 0 < n_val < len(x):
            raise ValueError(f"n_val must be in [1, {len(x) - 1}], got {n_val}")
        x_train, y_train = x[:-n_val][:n_train], y[:-n_val][:n_train]
        images = x_train if x_train.ndim == 4 else x_train[:, None]
        scaled = images.astype(np.float64) / 255
        axes = (0, 2, 3)
        mean, std = scaled.mean(axes), scaled.std(axes)

        def pair(a: np.ndarray, b: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
            a = a if a.ndim == 4 else a[:, None]
            return torch.from_numpy(np.ascontiguousarray(a)), torch.from_numpy(b.astype(np.int64))

        splits = {
            "train": pair(x_train, y_train),
            "val": pair(x[-n_val:], y[-n_val:]),
            "test": pair(*arrays["test"]),
        }
        torch.manual_seed(seed)
        model = nn.Sequential(
            _Standardise(torch.tensor(mean).float(), torch.tensor(std).float() + 1e-8),
            model_fn(**model_options),
        )
        return SupervisedTask(  # the images stay on the host: batches are copied, pinned
            model, splits, nn.CrossEntropyLoss(), seed=seed, batch_size=batch_size, stream=True
        )

    return build


def _problem(name, description, source, reader, model_fn, *, epochs, target) -> Problem:
    return Problem(
        name=name,
        description=description,
        source=source + "; needs the files under --data-dir (never downloaded here)",
        kind="supervised",
        budget=Budget(epochs=epochs, batch_size=128),
        target=Target("accuracy", target, higher_is_better=True),
        main_metric="accuracy",
        higher_is_better=True,
        axes=frozenset({"batch_size", "data_dir", "n_train", "n_val", "normalization", "dropout"}),
        factory=_factory(reader, model_fn),
    )


MNIST_CNN = _problem(
    "mnist-cnn",
    "CNN (two 3x3 conv + max-pool, 128 hidden) on MNIST",
    "MNIST (LeCun et al. 1998), raw IDX files; 55,000/5,000/10,000",
    read_mnist,
    _mnist_cnn,
    epochs=3,
    target=0.98,
)
FASHION_MNIST_CNN = _problem(
    "fashion-mnist-cnn",
    "CNN (two 3x3 conv + max-pool, 128 hidden) on Fashion-MNIST",
    "Fashion-MNIST (Xiao, Rasul & Vollgraf 2017), raw IDX files; 55,000/5,000/10,000",
    lambda d: read_mnist(d, sub="FashionMNIST", problem="fashion-mnist-cnn"),
    _mnist_cnn,
    epochs=5,
    target=0.88,
)
CIFAR10_RESNET20 = _problem(
    "cifar10-resnet20",
    "ResNet-20 (He et al. 2016) on CIFAR-10, no augmentation (slow on CPU)",
    "CIFAR-10 (Krizhevsky 2009), python pickles; 45,000/5,000/10,000",
    read_cifar10,
    ResNet20,
    epochs=10,
    target=0.8,
)
