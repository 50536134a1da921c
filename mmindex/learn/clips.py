"""Video clips for 3D CNNs (issue 9): the (N, T, C, H, W) arrays, their .npz file, and the motion task.

    from mmindex.learn.clips import motion_task, save_clips
    train, test = motion_task("fashion-mnist", 2000, 500, frames=16, size=32)

Data (.npz): `x` (N, T, C, H, W) uint8 (0–255) or float frames; `y` (N,) int class ids; optional `labels`
(names) and `fps` (the frames' rate, frames a second: `mmindex apply` decodes a video's shots at it; without it, at
the video's own rate). Frames are kept as stored (uint8 stays uint8 in memory) and made float batch by batch.

**The motion task.** A real image (Fashion-MNIST, or any image set `learn.data.load_dataset` reads) moves
across a black canvas or is zoomed: the four labels are `left`, `right`, `in` (grows) and `out` (shrinks).
A `left` clip is a `right` clip played backwards, and an `out` clip an `in` clip played backwards, drawn
from the same distribution of images and trajectories; so for a given image a label and its opposite hold
the same *set* of frames, and only their order tells them apart. A model that averages per-frame features
over time can tell the axis (moving vs zooming) but not the direction: it cannot beat chance between left
and right, or between in and out. On a *paired* set (each trajectory in both directions) its 4-class
accuracy is at most 0.5, whatever it learned.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from mmindex.errors import DataError

MOTIONS = ("left", "right", "in", "out")
#: each label's opposite: the same frames in reverse order (the generator draws `right` and `in`, then reverses)
OPPOSITE = {"left": "right", "right": "left", "in": "out", "out": "in"}


@dataclass
class ClipData:
    """Clips `x` (N, T, C, H, W), class ids `y` (N,) and the label names."""

    x: np.ndarray
    y: np.ndarray
    labels: list[str]
    fps: float | None = None  # frames a second (None: unknown; applied at a video's own rate)

    def __len__(self) -> int:
        return len(self.x)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(T, C, H, W) of one clip."""
        return tuple(self.x.shape[1:])  # type: ignore[return-value]

    def subset(self, idx: np.ndarray) -> ClipData:
        return ClipData(self.x[idx], self.y[idx], self.labels, self.fps)


def make_clips(x: np.ndarray, y: np.ndarray, labels: list[str] | None = None) -> ClipData:
    """Check and wrap arrays (the npz format above); raises `DataError` saying what is wrong."""
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 5 or 0 in x.shape or not np.issubdtype(x.dtype, np.number):
        raise DataError(f"x must be a non-empty numeric array of clips (N, T, C, H, W), not {x.dtype} {x.shape}")
    if x.shape[1] < 2:
        raise DataError(f"clips of {x.shape[1]} frame show no motion; at least 2 frames are needed")
    if x.shape[2] not in (1, 3):
        raise DataError(f"clips must have 1 or 3 channels (axis 2 of (N, T, C, H, W)), not {x.shape[2]}")
    if x.dtype != np.uint8 and not np.isfinite(x).all():
        raise DataError("x holds NaN or infinite values")
    if y.shape != x.shape[:1] or not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
        raise DataError(f"y must be (N,) non-negative integer class ids with N = {len(x)}, not {y.dtype} {y.shape}")
    n_classes = max(int(y.max()) + 1, len(labels or ()))
    if n_classes < 2:
        raise DataError("y holds one class only; a classifier needs at least two")
    names = [str(n) for n in labels] if labels is not None else [str(i) for i in range(n_classes)]
    if len(names) != n_classes:
        raise DataError(f"{len(names)} label names for class ids up to {n_classes - 1}")
    return ClipData(x if x.dtype == np.uint8 else x.astype(np.float32), y.astype(np.int64), names)


def load_clips(path: str | os.PathLike) -> ClipData:
    """Read clips from an .npz with `x` (N, T, C, H, W), `y` (N,) and optional `labels`."""
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise DataError(f"{path} is empty; an .npz with arrays x (N, T, C, H, W) and y (N,) is needed")
    try:
        with np.load(path, allow_pickle=False) as z:
            if "x" not in z or "y" not in z:
                raise DataError(f"{path}: an .npz with arrays x (N, T, C, H, W) and y (N,) is needed; "
                                f"found {sorted(z.files)}")
            arrays = {k: z[k] for k in ("x", "y", "labels", "fps") if k in z}
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"cannot read clips from {path}: {exc or type(exc).__name__}") from None
    labels = arrays.get("labels")
    data = make_clips(arrays["x"], arrays["y"], None if labels is None else [str(n) for n in labels])
    if "fps" in arrays:
        data.fps = float(arrays["fps"])
        if not data.fps > 0:
            raise DataError(f"{path}: fps must be > 0, not {data.fps}")
    return data


def save_clips(path: str | os.PathLike, data: ClipData) -> None:
    """Write `data` in the npz format `load_clips` reads."""
    fps = {} if data.fps is None else {"fps": np.array(data.fps)}
    np.savez_compressed(path, x=data.x, y=data.y, labels=np.array(data.labels), **fps)


# ---- the motion task ------------------------------------------------------------------------------------------

def render(images: np.ndarray, centres: np.ndarray, extents: np.ndarray, size: int) -> np.ndarray:
    """Frames (B, T, C, size, size) float32: image b drawn at centre (x, y) `centres[b, t]` (pixels) with its
    longer side `extents[b, t]` pixels long, bilinear, on black. `images` is (B, C, h, w) in [0, 1]."""
    import torch
    import torch.nn.functional as F

    b, c, h, w = images.shape
    t = centres.shape[1]
    k = extents / max(h, w)  # output pixels per image pixel
    # affine_grid maps output coordinates u ∈ [−1, 1] to image coordinates v ∈ [−1, 1]:
    # v = size/(w·k)·u + (size − 2·cx)/(w·k), from x_image = (x_out − cx)/k + w/2
    theta = np.zeros((b, t, 2, 3), np.float32)
    theta[..., 0, 0] = size / (w * k)
    theta[..., 0, 2] = (size - 2 * centres[..., 0]) / (w * k)
    theta[..., 1, 1] = size / (h * k)
    theta[..., 1, 2] = (size - 2 * centres[..., 1]) / (h * k)
    src = torch.from_numpy(images.astype(np.float32)).repeat_interleave(t, 0)  # (B·T, C, h, w)
    grid = F.affine_grid(torch.from_numpy(theta.reshape(b * t, 2, 3)), [b * t, c, size, size], align_corners=False)
    frames = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return frames.reshape(b, t, c, size, size).numpy()


def _trajectories(rng: np.random.Generator, zoom: np.ndarray, frames: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Centres (B, T, 2) and extents (B, T) of `right` (moving) or `in` (zooming) clips, in pixels."""
    n = len(zoom)
    s = np.linspace(0.0, 1.0, frames)[None, :]
    centres = np.empty((n, frames, 2))
    extents = np.empty((n, frames))
    # moving: a fixed size, travelling 30–55% of the canvas to the right, its centre kept 15% inside the border
    travel = rng.uniform(0.30, 0.55, n)[:, None] * size
    x0 = rng.uniform(0.15 * size, 0.85 * size - travel[:, 0])[:, None]
    move_x, move_y = x0 + travel * s, np.broadcast_to(rng.uniform(0.35, 0.65, (n, 1)) * size, (n, frames))
    move_e = np.broadcast_to(rng.uniform(0.45, 0.60, (n, 1)) * size, (n, frames))
    # zooming: a fixed centre near the middle, growing ×1.8–2.5 at a constant rate (geometric in time)
    e0 = rng.uniform(0.30, 0.45, (n, 1)) * size
    zoom_e = e0 * rng.uniform(1.8, 2.5, (n, 1)) ** s
    zoom_c = rng.uniform(0.42, 0.58, (n, 2)) * size
    z = zoom[:, None]
    centres[..., 0] = np.where(z, zoom_c[:, :1], move_x)
    centres[..., 1] = np.where(z, zoom_c[:, 1:], move_y)
    extents[:] = np.where(z, zoom_e, move_e)
    return centres, extents


def motion_clips(images: np.ndarray, n: int, *, frames: int = 16, size: int = 32, paired: bool = False,
                 seed: int = 0, batch: int = 512) -> ClipData:
    """`n` clips (N, T, C, size, size) uint8 labelled with MOTIONS, drawn from `images` (M, C, h, w) in [0, 1].

    Each clip draws an image, an axis (moving or zooming) and a trajectory, renders it forward (`right`,
    `in`) and, for the opposite label, reverses the frames. `paired`: clips 2i and 2i+1 are the same
    rendering in both directions (n must be even), so a model that ignores frame order gets at most one of
    the two right.
    """
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or len(images) == 0 or images.shape[1] not in (1, 3):
        raise DataError(f"images must be (M, C, h, w) with C = 1 or 3, not {images.shape}")
    if n < 1 or (paired and n % 2):
        raise DataError(f"{n} clips: need n ≥ 1, and an even n for a paired set")
    if frames < 2 or size < 8:
        raise DataError(f"a motion clip needs at least 2 frames of 8×8 pixels, not {frames} of {size}×{size}")
    rng = np.random.default_rng(seed)
    bases = n // 2 if paired else n
    zoom = rng.random(bases) < 0.5
    pick = rng.integers(0, len(images), bases)
    centres, extents = _trajectories(rng, zoom, frames, size)
    forward = np.empty((bases, frames, images.shape[1], size, size), np.uint8)
    for i in range(0, bases, batch):
        f = render(images[pick[i:i + batch]], centres[i:i + batch], extents[i:i + batch], size)
        forward[i:i + batch] = np.clip(np.rint(f * 255), 0, 255).astype(np.uint8)
    base_label = np.where(zoom, MOTIONS.index("in"), MOTIONS.index("right"))
    if paired:
        reverse = np.tile([False, True], bases)
        base_of = np.repeat(np.arange(bases), 2)
    else:
        reverse = rng.random(bases) < 0.5
        base_of = np.arange(bases)
    x = forward[base_of]
    x[reverse] = x[reverse][:, ::-1]
    opposite = np.array([MOTIONS.index(OPPOSITE[m]) for m in MOTIONS])
    y = np.where(reverse, opposite[base_label[base_of]], base_label[base_of])
    return ClipData(x, y.astype(np.int64), list(MOTIONS))


def write_videos(data: ClipData, folder: str | os.PathLike, fps: float = 8.0, prefix: str = "clip"
                 ) -> list[tuple[str, str]]:
    """Each clip as a real video file, `folder/<prefix>-<i>-<label>.mp4` (H.264, lossless, encoded by PyAV; grey
    frames written as RGB), at `fps` frames a second; returns (path, label) per clip. Frame sides must be even."""
    import av  # deferred: PyAV

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    t, c, h, w = data.shape
    if h % 2 or w % 2:
        raise DataError(f"H.264 frames need even sides, not {h}×{w}")
    out = []
    for i, (clip, y) in enumerate(zip(data.x, data.y, strict=True)):
        path = folder / f"{prefix}-{i:04d}-{data.labels[y]}.mp4"
        frames = np.asarray(clip if data.x.dtype == np.uint8 else np.clip(np.rint(clip * 255), 0, 255), np.uint8)
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv444p"
            stream.options = {"crf": "0", "preset": "ultrafast"}
            for frame in frames:
                rgb = np.repeat(frame, 3, axis=0) if c == 1 else frame
                container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb.transpose(1, 2, 0).copy(), "rgb24")))
            container.mux(stream.encode())
        out.append((str(path), data.labels[y]))
    return out


def source_images(spec: str, object_px: int = 28, channels: int = 1) -> np.ndarray:
    """Images (M, C, object_px, object_px) in [0, 1] from any `learn.data.load_dataset` spec
    (`fashion-mnist[:train|:test][:N]`, a folder of class folders, an .npz of images, ...); labels are ignored."""
    from mmindex.learn.data import load_dataset  # deferred: PyTorch, through mmindex.learn
    from mmindex.learn.features import decode_pixels  # deferred: PyTorch, through mmindex.learn

    return decode_pixels(load_dataset(spec), object_px, channels)[0]


def motion_task(source: str | np.ndarray, n_train: int, n_test: int, *, frames: int = 16, size: int = 32,
                test_fraction: float = 0.2, channels: int = 1, seed: int = 0) -> tuple[ClipData, ClipData]:
    """Training clips and a *paired* test set drawn from disjoint images (a seeded `test_fraction` of them).

    `source` is a `load_dataset` spec or an image array (M, C, h, w) in [0, 1]; `n_test` is rounded up to even.
    """
    images = source if isinstance(source, np.ndarray) else source_images(source, channels=channels)
    order = np.random.default_rng(seed).permutation(len(images))
    n_img_test = max(1, round(len(images) * test_fraction))
    if len(images) - n_img_test < 1:
        raise DataError(f"{len(images)} source images are too few to keep test images apart")
    train = motion_clips(images[order[n_img_test:]], n_train, frames=frames, size=size, seed=seed + 1)
    test = motion_clips(images[order[:n_img_test]], n_test + n_test % 2, frames=frames, size=size, paired=True,
                        seed=seed + 2)
    return train, test
