"""Fashion-MNIST from its IDX files (Debian package `dataset-fashion-mnist`, or any folder holding them)."""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from mmindex.errors import MmindexError

DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


class DatasetMissing(MmindexError):
    """The data set files are not where they were looked for."""


def fashion_mnist_root() -> Path:
    """$MMINDEX_FASHION_MNIST if set, else the Debian package's folder."""
    return Path(os.environ.get("MMINDEX_FASHION_MNIST", DEFAULT_ROOT))


def read_idx(path: Path) -> np.ndarray:
    """Read one (optionally gzipped) IDX file: a big-endian header of dimensions, then unsigned bytes."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if data[:2] != b"\0\0" or data[2] != 0x08:
        raise MmindexError(f"{path}: not an IDX file of unsigned bytes")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_split(split: str = "train", root: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 28, 28), labels int64 (N,)) for split "train" (60,000) or "test" (10,000).

    The arrays are read-only and cached: decompressing the training images takes about a second.
    """
    return _load_split(split, Path(root) if root else fashion_mnist_root())


@lru_cache(maxsize=4)
def _load_split(split: str, root: Path) -> tuple[np.ndarray, np.ndarray]:
    stem = {"train": "train", "test": "t10k"}[split]
    files = [root / f"{stem}-images-idx3-ubyte.gz", root / f"{stem}-labels-idx1-ubyte.gz"]
    for f in files:
        if not f.exists():
            raise DatasetMissing(f"{f} not found: install the Debian package dataset-fashion-mnist "
                                 "or set MMINDEX_FASHION_MNIST to a folder with the IDX files")
    labels = read_idx(files[1]).astype(np.int64)
    labels.flags.writeable = False
    return read_idx(files[0]), labels


@dataclass
class FashionMNIST:
    """Standardised images (zero mean, unit variance, statistics of the training part) and labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...] = CLASSES


def load_fashion_mnist(n_train: int | None = None, n_test: int | None = None, images: bool = False,
                       dtype=np.float32, root: Path | None = None) -> FashionMNIST:
    """The first `n_train` / `n_test` images, flattened to (N, 784), or (N, 1, 28, 28) with `images=True`.

    Inputs are normalised to zero mean and unit variance, as LeCun recommends.
    """
    xtr, ytr = load_split("train", root)
    xte, yte = load_split("test", root)
    xtr, ytr, xte, yte = xtr[:n_train], ytr[:n_train], xte[:n_test], yte[:n_test]
    mean, std = xtr.mean(), xtr.std()
    shape = (-1, 1, 28, 28) if images else (-1, 784)
    return FashionMNIST(((xtr - mean) / std).astype(dtype).reshape(shape), ytr,
                        ((xte - mean) / std).astype(dtype).reshape(shape), yte)
