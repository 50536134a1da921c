"""Fixtures of the learning tests: the committed Fashion-MNIST subset, as arrays and as class folders of PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TRAIN_NPZ = FIXTURES / "fmnist-train.npz"  # 30 images per class from Fashion-MNIST's training set (MIT)
TEST_NPZ = FIXTURES / "fmnist-test.npz"  # 10 per class from its test set


def write_class_folders(npz: Path, root: Path, classes: list[int] | None = None, per_class: int | None = None) -> Path:
    """PNG files in one folder per class (class names as in FASHION_MNIST_LABELS)."""
    with np.load(npz) as z:
        images, labels, names = z["images"], z["labels"], [str(n) for n in z["label_names"]]
    for c in classes if classes is not None else range(len(names)):
        folder = root / names[c]
        folder.mkdir(parents=True, exist_ok=True)
        for i in np.flatnonzero(labels == c)[:per_class]:
            Image.fromarray(images[i]).save(folder / f"{i:04d}.png")
    return root


@pytest.fixture(scope="session")
def fmnist_folders(shared_tmp) -> Path:
    """Three classes (trouser, sneaker, bag), 30 training images each, as PNG class folders."""
    return write_class_folders(TRAIN_NPZ, shared_tmp / "fm3-train", [1, 7, 8])


@pytest.fixture(scope="session")
def fmnist_test_folders(shared_tmp) -> Path:
    return write_class_folders(TEST_NPZ, shared_tmp / "fm3-test", [1, 7, 8])
