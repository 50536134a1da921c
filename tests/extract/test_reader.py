"""The reader stage (`mmindex.extract.reader`) on real image files: a file becomes a `Decoded` (hash, sizes, one
preprocessed keyframe), an indexed file whose content did not change becomes `UNCHANGED`, and a file that cannot be
used becomes the `MediaError` that says why, never a raise out of `read_item` / `read_all`."""

from __future__ import annotations

import hashlib
import os
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmindex.config import IngestConfig
from mmindex.errors import MediaError
from mmindex.extract.reader import UNCHANGED, read_all, read_item, read_media
from mmindex.media.images import open_image, preprocess
from mmindex.media.scan import ScanItem
from mmindex.models.weights import IMAGENET_224, DataConfig
from mmindex.records import DecodedSegment, Media

DC = IMAGENET_224


def photo(path: Path, size=(320, 240), seed=0, fmt=None) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path, fmt)
    return path


def test_an_image_becomes_one_segment_of_one_preprocessed_keyframe(tmp_path):
    path = photo(tmp_path / "p.png", (320, 240))
    data = path.read_bytes()
    decoded = read_media(str(path), None, DC, IngestConfig())
    assert isinstance(decoded, Media) and isinstance(decoded.segments[0], DecodedSegment)
    st = os.stat(path)
    assert (decoded.path, decoded.kind, decoded.size, decoded.mtime_ns) == (str(path), "image", len(data),
                                                                            st.st_mtime_ns)
    assert decoded.sha256 == hashlib.sha256(data).hexdigest()
    assert (decoded.width, decoded.height, decoded.duration) == (320, 240, None)
    [segment] = decoded.segments
    assert (segment.start, segment.end, list(segment.keyframes)) == (None, None, [(None, None)])
    [frame] = segment.frames
    assert frame.shape == (3, 224, 224) and frame.dtype == np.float32
    expected = preprocess(open_image(data, 10**8), DC.input_size, DC.resize, DC.mean, DC.std, DC.interpolation)
    np.testing.assert_array_equal(frame, expected)  # exactly what the data config asks for


def test_the_data_config_decides_the_frame(tmp_path):
    Image.new("RGB", (400, 300), (200, 100, 30)).save(tmp_path / "flat.png")
    small = DataConfig(64, 80, (0.5, 0.25, 0.125), (0.25, 0.5, 2.0), "bicubic")
    frame = read_media(str(tmp_path / "flat.png"), None, small, IngestConfig()).segments[0].frames[0]
    assert frame.shape == (3, 64, 64)
    expected = (np.array([200, 100, 30]) / 255 - small.mean) / np.array(small.std)
    np.testing.assert_allclose(frame, np.broadcast_to(expected[:, None, None], frame.shape), atol=1e-5)
    # a JPEG is decoded at a reduced size (draft) no smaller than the resize, then preprocessed as usual
    data = photo(tmp_path / "p.jpg", (1600, 1200)).read_bytes()
    frame = read_media(str(tmp_path / "p.jpg"), None, small, IngestConfig()).segments[0].frames[0]
    reduced = open_image(data, 10**8, draft_size=small.resize)
    assert reduced.size == (200, 150)
    np.testing.assert_array_equal(frame, preprocess(reduced, 64, 80, small.mean, small.std, "bicubic"))


def test_an_unchanged_file_is_not_decoded_again_and_a_changed_one_is(tmp_path):
    path = photo(tmp_path / "p.png")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert read_media(str(path), digest, DC, IngestConfig()) is UNCHANGED
    assert isinstance(read_media(str(path), "0" * 64, DC, IngestConfig()), Media)
    photo(path, seed=1)  # new content under the same name
    again = read_media(str(path), digest, DC, IngestConfig())
    assert isinstance(again, Media) and again.sha256 != digest


def test_a_file_named_like_a_video_that_did_not_change_is_not_opened_by_the_decoder(tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"not really a video")  # hashed before any decoding: never reaches PyAV
    assert read_media(str(path), hashlib.sha256(b"not really a video").hexdigest(), DC, IngestConfig()) is UNCHANGED


@pytest.mark.parametrize(("content", "reason"), [
    (b"", "empty file"), (b"plain text\n", "not a recognised image"), (None, "cannot read file: No such file"),
])
def test_bad_files_raise_a_media_error_that_says_why(tmp_path, content, reason):
    path = tmp_path / "bad.jpg"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(MediaError, match=reason):
        read_media(str(path), None, DC, IngestConfig())
    assert isinstance(read_item(ScanItem(str(path)), {}, DC, IngestConfig()), MediaError)


def test_the_pixel_limit_comes_from_the_ingest_config(tmp_path):
    path = photo(tmp_path / "p.png", (320, 240))
    with pytest.raises(MediaError, match="image too large"):
        read_media(str(path), None, DC, IngestConfig(max_pixels=320 * 240 - 1))
    assert isinstance(read_media(str(path), None, DC, IngestConfig(max_pixels=320 * 240)), Media)


def test_read_item_turns_every_failure_into_a_media_error(tmp_path):
    path = photo(tmp_path / "p.png")
    known = {str(path): hashlib.sha256(path.read_bytes()).hexdigest()}
    assert read_item(ScanItem(str(path)), known, DC, IngestConfig()) is UNCHANGED  # looked up by path
    assert isinstance(read_item(ScanItem(str(path)), {}, DC, IngestConfig()), Media)
    scanned = read_item(ScanItem(str(tmp_path / "loop"), "symbolic link loop"), {}, DC, IngestConfig())
    assert isinstance(scanned, MediaError) and str(scanned) == "symbolic link loop"  # the scan's error, as is
    # a decoder failure nobody foresaw (here: an interpolation PIL is not given) is reported, not raised
    broken = types.SimpleNamespace(**{**vars(DC), "interpolation": "lanczos"})
    failed = read_item(ScanItem(str(path)), {}, broken, IngestConfig())
    assert isinstance(failed, MediaError) and str(failed).startswith("unexpected error while decoding: KeyError")


@pytest.mark.parametrize("workers", [1, 3])
def test_read_all_yields_every_item_in_scan_order(tmp_path, workers):
    items, expected = [], []
    for i in range(23):  # more than the read-ahead window (4 or 2 x batch size)
        if i % 5 == 3:
            items.append(ScanItem(str(tmp_path / f"{i:02d}.jpg"), "broken symbolic link"))
            expected.append(MediaError)
        elif i % 7 == 6:
            (tmp_path / f"{i:02d}.png").write_bytes(b"junk")
            items.append(ScanItem(str(tmp_path / f"{i:02d}.png")))
            expected.append(MediaError)
        else:
            items.append(ScanItem(str(photo(tmp_path / f"{i:02d}.png", (40 + i, 30), seed=i))))
            expected.append(Media)
    known = {items[0].path: hashlib.sha256(Path(items[0].path).read_bytes()).hexdigest()}
    expected[0] = UNCHANGED
    out = list(read_all(items, known, DC, IngestConfig(batch_size=2, workers=workers)))
    assert [item for item, _ in out] == items
    for i, ((item, result), kind) in enumerate(zip(out, expected, strict=True)):
        if kind is UNCHANGED:
            assert result is UNCHANGED
        else:
            assert isinstance(result, kind), (item, result)
        if kind is Media:
            assert result.path == item.path and result.width == 40 + i  # each result with its own item
    assert expected.count(MediaError) == 6
    assert list(read_all([], {}, DC, IngestConfig())) == []
