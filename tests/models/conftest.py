"""Fixtures for the model tests: the sample photos preprocessed per a DataConfig, written here with PIL."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image

from mmindex.models import DataConfig

_RESAMPLE = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}


def preprocess(img: Image.Image, dc: DataConfig) -> np.ndarray:
    """Short side to dc.resize (dc.interpolation), centre crop dc.input_size, [0,1], (x-mean)/std, CHW float32."""
    img = img.convert("RGB")
    w, h = img.size
    scale = dc.resize / min(w, h)
    img = img.resize((max(dc.resize, round(w * scale)), max(dc.resize, round(h * scale))), _RESAMPLE[dc.interpolation])
    w, h = img.size
    left, top = (w - dc.input_size) // 2, (h - dc.input_size) // 2
    img = img.crop((left, top, left + dc.input_size, top + dc.input_size))
    x = np.asarray(img, dtype=np.float32) / 255.0
    x = (x - np.array(dc.mean, np.float32)) / np.array(dc.std, np.float32)
    return x.transpose(2, 0, 1).copy()


@pytest.fixture(scope="session")
def photos() -> dict[str, Image.Image]:
    data = pytest.importorskip("skimage.data")
    return {"chelsea": Image.fromarray(data.chelsea()), "coffee": Image.fromarray(data.coffee())}


@pytest.fixture(scope="session")
def photo_batch(photos) -> Callable[[DataConfig], np.ndarray]:
    """(2, 3, S, S) float32: chelsea then coffee, preprocessed per the given DataConfig."""

    def make(dc: DataConfig) -> np.ndarray:
        return np.stack([preprocess(photos["chelsea"], dc), preprocess(photos["coffee"], dc)])

    return make
