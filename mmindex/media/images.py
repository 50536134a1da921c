"""Decode still images safely and preprocess them for a backbone.

Every failure becomes a `MediaError` with a reason a person can act on: empty file, not an image,
truncated, too many pixels (decompression bomb).
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from mmindex.errors import MediaError

_INTERPOLATION = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}
_ORIENTATION = 0x0112  # the EXIF tag; values 5 to 8 turn the image by a quarter (exif_transpose swaps its sides)
_SWAPS_SIDES = frozenset({5, 6, 7, 8})


def open_image(data: bytes, max_pixels: int, draft_size: int | None = None) -> Image.Image:
    """Decode `data` into an RGB image, EXIF orientation applied, first frame of an animation.

    `draft_size` lets the JPEG decoder scale down by a power of two while decoding, keeping both
    sides at least `draft_size`: this is cheaper and, since we resize further anyway, it does not
    change what the model sees in any way that matters (checked in bench/ingest_throughput.py).
    The returned image then has the reduced size; `open_image_sized` also gives the full one.
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
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            if width * height > max_pixels:
                raise MediaError(
                    f"image too large: {width}x{height} = {width * height:,} pixels > limit {max_pixels:,}"
                    " (possible decompression bomb)"
                )
            if draft_size and img.format == "JPEG":
                img.draft("RGB", (draft_size, draft_size))
            img.seek(0)
            img.load()
            if img.getexif().get(_ORIENTATION) in _SWAPS_SIDES:
                width, height = height, width
            img = ImageOps.exif_transpose(img)
            return _to_rgb(img), (width, height)
    except MediaError:
        raise
    except UnidentifiedImageError:
        raise MediaError("not a recognised image (unknown or corrupt format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise MediaError(f"image too large (possible decompression bomb): {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise MediaError(f"corrupt or truncated image: {exc}") from None


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
