"""`mmindex.media.images` on real files written with PIL: EXIF orientation, animations, transparency, every bad
input as a `MediaError` that says why, and the preprocessing a `DataConfig` asks for (checked against torchvision)."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image

from mmindex.errors import MediaError
from mmindex.media.images import open_image, open_image_sized, preprocess
from mmindex.models.weights import IMAGENET_224, DataConfig, tf_inception_config

RED, BLUE, GREEN, WHITE = (255, 0, 0), (0, 0, 255), (0, 255, 0), (255, 255, 255)
LIMIT = 10_000_000


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def halves(width: int, height: int, left=RED, right=BLUE) -> Image.Image:
    """Left half one colour, right half another: where each lands shows how the image was turned."""
    img = Image.new("RGB", (width, height), right)
    img.paste(left, (0, 0, width // 2, height))
    return img


def with_orientation(img: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(img, "JPEG", quality=95, exif=exif.tobytes())


def colour_at(img: Image.Image, x: int, y: int) -> tuple[int, int, int]:
    return tuple(int(round(v / 255)) * 255 for v in img.getpixel((x, y)))  # JPEG: snap to pure colours


@pytest.mark.parametrize(("orientation", "size", "where_red"), [
    (1, (80, 40), "left"), (2, (80, 40), "right"),  # 2: mirrored
    (3, (80, 40), "right"),  # 3: half a turn
    (6, (40, 80), "top"),  # 6: a quarter turn clockwise: the left side goes to the top
    (8, (40, 80), "bottom"),  # 8: a quarter turn anticlockwise
])
def test_exif_orientation_is_applied(orientation, size, where_red):
    data = with_orientation(halves(80, 40), orientation)
    img, full = open_image_sized(data, LIMIT)
    assert img.size == size and full == size and img.mode == "RGB"
    w, h = size
    probe = {"left": (w // 4, h // 2), "right": (3 * w // 4, h // 2), "top": (w // 2, h // 4),
             "bottom": (w // 2, 3 * h // 4)}
    opposite = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}
    assert colour_at(img, *probe[where_red]) == RED
    assert colour_at(img, *probe[opposite[where_red]]) == BLUE


def test_the_size_is_the_file_s_while_the_jpeg_draft_decodes_smaller():
    data = encode(halves(2000, 1200), "JPEG", quality=90)
    img, full = open_image_sized(data, LIMIT, draft_size=256)
    assert full == (2000, 1200)
    assert img.size == (500, 300)  # scaled by 1/4 while decoding: both sides still >= 256
    assert open_image(data, LIMIT, draft_size=256).size == (500, 300)
    assert open_image(data, LIMIT).size == (2000, 1200)  # no draft: full size
    png = encode(halves(600, 400), "PNG")
    assert open_image_sized(png, LIMIT, draft_size=256)[0].size == (600, 400)  # only JPEG decodes in draft
    turned, full = open_image_sized(with_orientation(halves(2000, 1200), 6), LIMIT, draft_size=256)
    assert full == (1200, 2000) and turned.size == (300, 500)


def test_an_animation_gives_its_first_frame():
    frames = [Image.new("RGB", (32, 24), c) for c in (GREEN, RED, BLUE)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    with Image.open(io.BytesIO(data)) as check:
        assert check.n_frames == 3  # the file really is animated
    img = open_image(data, LIMIT)
    assert img.mode == "RGB" and img.size == (32, 24)
    assert np.all(np.asarray(img) == GREEN)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparent_pixels_are_shown_over_white(mode):
    img = Image.new("RGBA", (20, 10), (0, 0, 0, 0))  # fully transparent black...
    img.paste((0, 0, 255, 255), (10, 0, 20, 10))  # ...beside opaque blue
    if mode == "LA":
        img = img.convert("LA")
    elif mode == "P":
        img = img.convert("RGB").quantize(4)
        img.info["transparency"] = img.getpixel((0, 0))
    out = np.asarray(open_image(encode(img, "PNG"), LIMIT))
    assert out.shape == (10, 20, 3)
    assert np.all(out[:, :10] == WHITE)
    assert np.all(out[:, 10:] == ((29, 29, 29) if mode == "LA" else BLUE))  # LA: the grey of blue


def test_grey_and_palette_images_become_rgb():
    grey = open_image(encode(Image.new("L", (8, 6), 77), "PNG"), LIMIT)
    assert grey.mode == "RGB" and np.all(np.asarray(grey) == 77)
    cmyk = open_image(encode(Image.new("CMYK", (8, 6), (0, 255, 255, 0)), "JPEG", quality=100), LIMIT)
    assert cmyk.mode == "RGB" and colour_at(cmyk, 4, 3) == RED


def test_bad_input_raises_a_media_error_that_says_why():
    good = encode(halves(200, 100), "JPEG", quality=90)
    png = encode(halves(200, 100), "PNG")
    noise = bytes(np.random.default_rng(0).integers(0, 256, 3000, np.uint8))
    cases = {
        b"": "empty file (0 bytes)",
        b"this is a text file, not a photo\n": "not a recognised image",
        good[: len(good) // 3]: "corrupt or truncated image",
        png[: len(png) - 40]: "corrupt or truncated image",
        good[: len(good) // 2] + noise: "corrupt or truncated image",  # whole headers, garbage data
    }
    for data, reason in cases.items():
        with pytest.raises(MediaError, match=re.escape(reason)):
            open_image(data, LIMIT)


def test_more_pixels_than_the_limit_is_refused_before_decoding():
    data = encode(Image.new("RGB", (100, 50)), "PNG")
    assert open_image(data, 5000).size == (100, 50)  # exactly the limit: fine
    with pytest.raises(MediaError, match=r"image too large: 100x50 = 5,000 pixels > limit 4,999"):
        open_image(data, 4999)


def test_pillows_own_bomb_guard_is_a_media_error_too():
    # 120 Mpx of 1-bit pixels: a small file that Pillow itself refuses, whatever limit we were given
    data = encode(Image.new("1", (12_000, 10_000)), "PNG")
    assert len(data) < 1_000_000
    with pytest.raises(MediaError, match="decompression bomb"):
        open_image(data, 10**10)


def _torchvision(img: Image.Image, dc: DataConfig) -> np.ndarray:
    from torchvision import transforms as T

    mode = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC}[dc.interpolation]
    pipeline = T.Compose([T.Resize(dc.resize, interpolation=mode), T.CenterCrop(dc.input_size), T.ToTensor(),
                          T.Normalize(dc.mean, dc.std)])
    return pipeline(img).numpy()


@pytest.mark.parametrize("dc", [IMAGENET_224, tf_inception_config(224), tf_inception_config(240)],
                         ids=["imagenet-224", "lite-224", "lite-240"])
def test_preprocess_follows_the_data_config_as_torchvision_does(dc):
    rng = np.random.default_rng(0)
    assert (dc.resize - dc.input_size) % 2 == 0  # a centre crop on whole pixels, where torchvision's rounding is ours
    for size in [(dc.resize + 128, dc.resize), (dc.resize, dc.resize + 256), (2 * dc.resize, 2 * dc.resize)]:
        img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
        x = preprocess(img, dc.input_size, dc.resize, dc.mean, dc.std, dc.interpolation)
        assert x.shape == (3, dc.input_size, dc.input_size) and x.dtype == np.float32
        np.testing.assert_allclose(x, _torchvision(img, dc), atol=1e-5)


@pytest.mark.parametrize("dc", [IMAGENET_224, tf_inception_config(240)], ids=["imagenet-224", "lite-240"])
def test_preprocess_normalises_per_channel_and_crops_the_centre(dc):
    colour = (200, 100, 30)
    x = preprocess(Image.new("RGB", (300, 500), colour), dc.input_size, dc.resize, dc.mean, dc.std, dc.interpolation)
    expected = (np.array(colour) / 255 - np.array(dc.mean)) / np.array(dc.std)
    np.testing.assert_allclose(x, np.broadcast_to(expected[:, None, None], x.shape), atol=1e-5)
    # a wide image whose middle third is exactly the crop: the crop holds only that third, not squashed sides
    img = Image.new("RGB", (3 * dc.resize, dc.resize), RED)
    img.paste(BLUE, (dc.resize, 0, 2 * dc.resize, dc.resize))
    x = preprocess(img, dc.input_size, dc.resize, dc.mean, dc.std, dc.interpolation)
    blue = (np.array(BLUE) / 255 - np.array(dc.mean)) / np.array(dc.std)
    np.testing.assert_allclose(x[:, :, 2:-2], np.broadcast_to(blue[:, None, None], x[:, :, 2:-2].shape), atol=1e-5)
    # a tiny image is scaled up to the full input
    tiny = preprocess(Image.new("RGB", (7, 5), colour), dc.input_size, dc.resize, dc.mean, dc.std, dc.interpolation)
    assert tiny.shape == (3, dc.input_size, dc.input_size)
    np.testing.assert_allclose(tiny, np.broadcast_to(expected[:, None, None], tiny.shape), atol=1e-5)


# ---- the libjpeg-turbo path (simplejpeg) against Pillow, on a real photo ----------------------------------------

def _photo_jpeg(name: str = "chelsea", size: tuple[int, int] | None = None, grey: bool = False) -> bytes:
    from mmindex.samples import photo_array

    img = Image.fromarray(photo_array(name)).convert("L" if grey else "RGB")
    return encode(img.resize(size, Image.Resampling.LANCZOS) if size else img, "JPEG", quality=90)


def _pillow(data: bytes, draft: int | None = None) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        if draft:
            img.draft("RGB", (draft, draft))
        return np.asarray(img.convert("RGB"))


@pytest.mark.parametrize("grey", [False, True], ids=["rgb", "grey"])
def test_a_jpeg_decodes_to_pillow_s_very_pixels_at_full_size_and_at_pillow_s_draft_scales(grey):
    data = _photo_jpeg(size=(1600, 1200), grey=grey)
    np.testing.assert_array_equal(np.asarray(open_image(data, LIMIT)), _pillow(data))
    for draft, size in [(500, (800, 600)), (250, (400, 300)), (120, (200, 150))]:  # 1/2, 1/4, 1/8: Pillow's scales
        img = open_image(data, LIMIT, draft_size=draft)
        assert img.size == size and img.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(img), _pillow(data, draft))


def test_the_jpeg_draft_scales_by_eighths_keeping_both_sides_at_least_the_draft_size():
    data = _photo_jpeg(size=(640, 480))
    img, full = open_image_sized(data, LIMIT, draft_size=256)
    assert full == (640, 480)
    assert img.size == (400, 300)  # 5/8: the smallest M/8 that keeps 480 -> >= 256 (Pillow's draft cannot: 1/2 is 240)
    assert _pillow(data, 256).shape == (480, 640, 3)
    # the same picture: against Pillow's full decode resized to 400x300, a small mean difference
    reference = np.asarray(Image.fromarray(_pillow(data)).resize((400, 300), Image.Resampling.BICUBIC), np.float32)
    assert np.abs(np.asarray(img, np.float32) - reference).mean() < 3.0


def test_a_jpeg_that_libjpeg_only_warns_about_decodes_as_pillow_decodes_it():
    good = _photo_jpeg()
    extra = good[:-2] + b"\x00" * 7 + good[-2:]  # stray bytes before the end marker: libjpeg warns, Pillow reads on
    np.testing.assert_array_equal(np.asarray(open_image(extra, LIMIT, draft_size=128)), _pillow(extra, 128))
    with pytest.raises(MediaError, match="corrupt or truncated image: image file is truncated"):
        open_image(good[: len(good) // 3], LIMIT, draft_size=128)  # cut short: Pillow's message, not libjpeg's


def test_an_upright_jpeg_and_a_turned_one_decode_to_the_same_picture_at_any_draft():
    photo = _photo_jpeg(size=(1200, 800))
    with Image.open(io.BytesIO(photo)) as img:
        turned = with_orientation(img.transpose(Image.Transpose.ROTATE_90), 6)  # stored on its side, EXIF turns it back
    for draft in (None, 256):
        a, b = open_image(photo, LIMIT, draft_size=draft), open_image(turned, LIMIT, draft_size=draft)
        assert a.size == b.size
        assert np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).mean() < 4.0  # re-encoded once more
