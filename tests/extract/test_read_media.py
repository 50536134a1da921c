"""`read_media` for images: the stored width and height are the file's, not those of the reduced decode."""

from __future__ import annotations

import types

import numpy as np
import pytest
from PIL import Image

from mmindex.config import IngestConfig
from mmindex.extract.reader import read_media

DATA_CONFIG = types.SimpleNamespace(input_size=224, resize=256, mean=(0.485, 0.456, 0.406),
                                    std=(0.229, 0.224, 0.225), interpolation="bilinear")


def _photo(path, size, orientation=None):
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    img.save(path, quality=90, exif=exif.tobytes())
    return str(path)


@pytest.mark.parametrize("suffix", ["jpg", "png"])
def test_width_and_height_are_the_full_size_of_the_file(tmp_path, suffix):
    path = _photo(tmp_path / f"big.{suffix}", (2000, 1200))
    decoded = read_media(path, None, DATA_CONFIG, IngestConfig())
    assert (decoded.width, decoded.height) == (2000, 1200)  # the JPEG draft decodes at 500x300
    assert decoded.segments[0].frames[0].shape == (3, 224, 224)


def test_a_rotated_jpeg_has_its_sides_as_shown(tmp_path):
    path = _photo(tmp_path / "turned.jpg", (2000, 1200), orientation=6)  # EXIF: turn by a quarter
    decoded = read_media(path, None, DATA_CONFIG, IngestConfig())
    assert (decoded.width, decoded.height) == (1200, 2000)
