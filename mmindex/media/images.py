"""Decode still images safely and preprocess them for a backbone.

Every failure becomes a `MediaError` with a reason a person can act on: empty file, not an image,
truncated, too many pixels (decompression bomb).

JPEGs in RGB or grey are decoded by libjpeg-turbo through simplejpeg, which scales while decoding by any
factor M/8 (Pillow's `draft` only halves): a 640x480 photo decodes at 5/8 (400x300) for a 256-pixel resize,
and a full-size decode skips Pillow's own copies. At the same scale both run the same libjpeg-turbo code
and give the same pixels (tests/media/test_images.py checks it). Any other format, CMYK JPEGs, and any JPEG
that simplejpeg refuses go through Pillow, which also gives the error message. The figures are in
docs/benchmarks.md ("Hardware speed (issue 20)"); bench/decode_jpeg.py measures them.
"""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
import simplejpeg
from PIL import Image, ImageFile, UnidentifiedImageError

from mmindex.errors import MediaError

_INTERPOLATION = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}
_ORIENTATION = 0x0112  # the EXIF tag; values 5 to 8 turn the image by a quarter (its sides swap)
# How to undo each EXIF orientation (what ImageOps.exif_transpose does, without its copy of an upright image).
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
            5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}
_SWAPS_SIDES = frozenset({5, 6, 7, 8})
# libjpeg-turbo keeps both sides >= draft size x this margin, so that the bicubic resize after it still does some
# of the reduction. On 1,000 ImageNet photos (about 500x375) against a full decode: top-1 agreement 98.2% with no
# margin, 99.4% with 1.15; a 640x480 photo decodes at 5/8 either way, 12 MP at 1/8 (docs/benchmarks.md).
DRAFT_MARGIN = 1.15


def open_image(data: bytes, max_pixels: int, draft_size: int | None = None) -> Image.Image:
    """Decode `data` into an RGB image, EXIF orientation applied, first frame of an animation.

    `draft_size` lets the JPEG decoder scale down while decoding (by M/8), keeping both sides at least
    `draft_size`: this is cheaper and, since we resize further anyway, it does not change what the model
    sees in any way that matters (checked in bench/decode_jpeg.py). The returned image then has the
    reduced size; `open_image_sized` also gives the full one.
    """
    return open_image_sized(data, max_pixels, draft_size)[0]


def open_image_sized(data: bytes, max_pixels: int, draft_size: int | None = None
                     ) -> tuple[Image.Image, tuple[int, int]]:
    """`open_image`, and the image's full (width, height) as a viewer shows it: from the header, before
    any draft reduction, with the EXIF orientation applied (a rotated photo has its sides swapped)."""
    if not data:
        raise MediaError("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))  # reads the header only
            width, height = img.size
            if width * height > max_pixels:
                raise MediaError(
                    f"image too large: {width}x{height} = {width * height:,} pixels > limit {max_pixels:,}"
                    " (possible decompression bomb)"
                )
            rgb = _decode_jpeg(data, img, draft_size)
            if rgb is None:
                if draft_size and img.format == "JPEG":  # (Pillow's draft: by 1/2, 1/4 or 1/8 only)
                    img.draft("RGB", (draft_size, draft_size))
                img.seek(0)
                img.load()
                rgb = _to_rgb(img)
            # Read after load: a PNG may carry its EXIF after the pixels. A JPEG's is in its header.
            orientation = img.getexif().get(_ORIENTATION)
            if orientation in _SWAPS_SIDES:
                width, height = height, width
            if orientation in _UPRIGHT:
                rgb = rgb.transpose(_UPRIGHT[orientation])
            return rgb, (width, height)
    except MediaError:
        raise
    except UnidentifiedImageError:
        raise MediaError("not a recognised image (unknown or corrupt format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise MediaError(f"image too large (possible decompression bomb): {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise MediaError(f"corrupt or truncated image: {exc}") from None


def _decode_jpeg(data: bytes, header: Image.Image, draft_size: int | None) -> Image.Image | None:
    """An RGB or grey JPEG decoded by libjpeg-turbo (simplejpeg), scaled by the smallest M/8 that keeps both
    sides >= `draft_size` x `DRAFT_MARGIN`; None for anything else, and for any file it refuses, so that
    Pillow decodes it (or says what is wrong with it) exactly as before."""
    if header.format not in ("JPEG", "MPO") or header.mode not in ("RGB", "L"):
        return None  # (an MPO is a phone's JPEG with more pictures after it: libjpeg reads the first, as Pillow does)
    floor = math.ceil(draft_size * DRAFT_MARGIN) if draft_size else 0
    try:
        # strict: a warning (truncated data, a corrupt segment) is an error here, and Pillow's to report.
        pixels = simplejpeg.decode_jpeg(data, "RGB", min_height=floor, min_width=floor, strict=True)
    except ValueError:
        return None
    return Image.fromarray(pixels)


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Transparent pixels over white, as a viewer shows them, rather than over black garbage.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def preprocess(img: Image.Image, input_size: int, resize: int, mean, std, interpolation: str) -> np.ndarray:
    """Resize the short side to `resize`, centre-crop `input_size`, normalise: float32 (3, H, W)."""
    width, height = img.size
    scale = resize / min(width, height)
    new_w, new_h = max(input_size, round(width * scale)), max(input_size, round(height * scale))
    img = img.resize((new_w, new_h), _INTERPOLATION[interpolation])
    left, top = (new_w - input_size) // 2, (new_h - input_size) // 2
    img = img.crop((left, top, left + input_size, top + input_size))
    x = np.asarray(img, dtype=np.float32).transpose(2, 0, 1) * (1.0 / 255.0)
    x -= np.asarray(mean, dtype=np.float32)[:, None, None]
    x /= np.asarray(std, dtype=np.float32)[:, None, None]
    return x


# Truncated files must fail loudly, never be padded with grey and indexed as if whole.
ImageFile.LOAD_TRUNCATED_IMAGES = False
