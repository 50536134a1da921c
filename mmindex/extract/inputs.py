"""What a trained model takes as input (issue 18), and how a decoded frame or a segment's keyframes become it.

Every detector bundle records one `ModelInput` (`learn.applicable` derives it for bundles written before), so that
`apply` can check it against the index and `add` can hand each applied detector what it scores:

    kind        what the model scores                                  who trains it
    embedding   the segment's embedding, as the index stores it        probe detectors (`train --mode probe`)
                (backbone + weights id, `dim`)
    pixels      each keyframe, preprocessed as training did; the       scratch and finetune detectors
                scores are pooled over a segment's keyframes
    sequence    the segment's keyframe embeddings in time order,       temporal models (`train-sequence`)
                sampled `rate` times a second, at most `frames`
    clip        `frames` frames of `size`×`width` around the           3D CNNs (`train-clips`)
                segment's middle, `rate` frames a second (or `clips`
                whole clips spread over the segment, `apply --clips-per-shot`)

Pixels come in two fits: "stretch" (scratch: the whole image resized to `size`×`size`, grey or RGB, in [0, 1], as
`learn.features.decode_pixels` makes training inputs) and "crop" (finetune: the backbone's own preprocessing, short
side to `resize`, centre crop, mean and std, as `add` does). A rate of None means every stored keyframe (sequence)
or the video's own frame rate (clip). This module is pure: no file is read here (`extract.readback` reads media).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from functools import cached_property

import numpy as np

from mmindex.errors import DetectorError

KINDS = ("embedding", "pixels", "sequence", "clip")
FITS = ("stretch", "crop")


@dataclass(frozen=True)
class IndexFacts:
    """What an index offers its detectors: the backbone and weights of its embeddings, their size, and whether
    it stores each keyframe's embedding (`add --keyframe-embeddings`)."""

    backbone: str
    weights_id: str
    dim: int
    keyframe_embeddings: bool = False


@dataclass(frozen=True)
class ModelInput:
    """A model's input (see the module docstring); the fields a kind does not use stay None."""

    kind: str
    backbone: str | None = None  # embedding, sequence: the features' backbone (None: unknown, the size is checked)
    weights_id: str | None = None
    dim: int | None = None  # embedding, sequence: feature size
    size: int | None = None  # pixels: the square input's side; clip: frame height
    width: int | None = None  # clip: frame width
    channels: int | None = None  # pixels, clip: 1 (grey) or 3 (RGB)
    fit: str | None = None  # pixels: "stretch" or "crop"
    resize: int | None = None  # pixels "crop": the short side before the centre crop
    mean: tuple[float, ...] | None = None  # pixels "crop": per-channel normalisation
    std: tuple[float, ...] | None = None
    interpolation: str = "bilinear"
    frames: int | None = None  # sequence: the longest sequence; clip: T
    rate: float | None = None  # sequence: keyframes a second; clip: frames a second (None: see the docstring)
    unit: float = 1.0  # clip: the value of white in the training clips (255 for uint8 frames)
    clips: int | None = None  # clip: clips a segment, spread evenly over it, their scores averaged (None: one)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise DetectorError(f"unknown model input kind {self.kind!r}; one of {', '.join(KINDS)}")
        if self.kind == "pixels" and self.fit not in FITS:
            raise DetectorError(f"pixel input fit must be one of {', '.join(FITS)}, not {self.fit!r}")

    # ---- persistence -------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> ModelInput:
        names = {f.name for f in fields(cls)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in names}
        return cls(**values)

    @cached_property
    def key(self) -> str:
        """One string per distinct input: detectors that take the same pixels share one decoding."""
        return self.to_json()

    # ---- what it says and whether an index fits it -------------------------------------------------------
    def describe(self) -> str:
        """One phrase for messages: what the model takes."""
        feats = f"{self.backbone or 'unknown backbone'} features ({self.dim}-d)"
        rate = "every keyframe" if self.rate is None else f"{self.rate:g} a second"
        if self.kind == "embedding":
            return f"the index embedding of {feats}, weights {self.weights_id}"
        if self.kind == "pixels":
            how = ("whole image resized" if self.fit == "stretch"
                   else f"short side {self.resize}, centre crop, {self.interpolation}")
            return f"keyframe pixels {self.size}×{self.size}×{self.channels} ({how})"
        if self.kind == "sequence":
            return f"sequences of up to {self.frames} keyframe embeddings ({feats}, {rate})"
        fps = "the video's own rate" if self.rate is None else f"{self.rate:g} frames a second"
        pooled = f", {self.clips} a shot, pooled" if (self.clips or 1) > 1 else ""
        return f"clips of {self.frames} frames of {self.size}×{self.width}×{self.channels} at {fps}{pooled}"

    def misfit(self, index: IndexFacts) -> str | None:
        """Why this input cannot be had from `index` (a sentence), or None when it can."""
        if self.kind in ("pixels", "clip"):
            return None  # read back from the media files
        if self.backbone is not None and (self.backbone, self.weights_id) != (index.backbone, index.weights_id):
            return (f"it takes {self.describe()}, but the index holds {index.backbone} features (weights "
                    f"{index.weights_id})")
        if self.dim is not None and self.dim != index.dim:
            return f"it takes {self.dim}-d features, but the index holds {index.dim}-d {index.backbone} features"
        if self.kind == "sequence" and not index.keyframe_embeddings:
            return (f"it takes {self.describe()}, but the index stores no keyframe embeddings (index with "
                    "`mmindex add --keyframe-embeddings`, and `--keyframe-rate` for more keyframes a shot)")
        return None

    def is_preprocessing(self, data_config) -> bool:
        """Whether these are pixels exactly as `data_config` (a backbone's) preprocesses them: a finetune detector
        of the index's own backbone takes the frames `add` makes anyway."""
        dc = data_config
        return self.kind == "pixels" and self.fit == "crop" and dc is not None and (
            self.size, self.resize, tuple(self.mean or ()), tuple(self.std or ()), self.interpolation) == (
            dc.input_size, dc.resize, tuple(dc.mean), tuple(dc.std), dc.interpolation)

    # ---- making the input ----------------------------------------------------------------------------
    def pixels(self, img) -> np.ndarray:
        """A PIL image as this model's pixel input, float32 (C, S, S)."""
        if self.fit == "crop":
            from mmindex.media import images  # deferred: PIL

            return images.preprocess(img.convert("RGB"), self.size, self.resize, self.mean, self.std,
                                     self.interpolation)
        return stretch(img, self.size, self.channels)

    def clip_frame(self, frame: np.ndarray) -> np.ndarray:
        """A decoded frame (H, W, 3) uint8 as one clip frame (C, H, W) in the training clips' units."""
        x = frame if self.channels == 3 else _grey(frame)[..., None]
        x = np.ascontiguousarray(x.transpose(2, 0, 1))
        return x if self.unit == 255 else x.astype(np.float32) * np.float32(self.unit / 255.0)


def stretch(img, size: int, channels: int) -> np.ndarray:
    """The whole image resized to size×size (bilinear), grey or RGB, in [0, 1]: float32 (C, size, size). Scratch
    detectors are trained on exactly this (`learn.features.decode_pixels`)."""
    from PIL import Image  # deferred: only pixel inputs need it

    img = img.convert("L" if channels == 1 else "RGB").resize((size, size), Image.Resampling.BILINEAR)
    a = np.asarray(img, np.float32) / 255.0
    return a[None] if channels == 1 else a.transpose(2, 0, 1)


def _grey(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma, as PIL's convert("L") computes it, uint8 (H, W)."""
    rgb = rgb.astype(np.int32)
    y = rgb[..., 0] * 299 + rgb[..., 1] * 587 + rgb[..., 2] * 114
    return ((y + 500) // 1000).astype(np.uint8)


def clip_times(start: float, end: float, frames: int, rate: float, clips: int = 1) -> list[float]:
    """`frames` times `1/rate` apart for each of `clips` clips, clip after clip. One clip is centred on the middle of
    [start, end); several are spread evenly from the first whole clip in the segment to the last (in a segment too
    short for two different whole clips, all are the middle one). Each time is kept inside the segment (a shot
    shorter than the clip repeats its first and last frames)."""
    last, half = max(start, end - 1e-6), (frames - 1) / 2 / rate
    first_centre, last_centre = start + half, end - 1 / rate - half  # the segment's last frame: 1/rate before its end
    if clips == 1 or last_centre - first_centre < 1 / rate:
        centres = [(start + end) / 2] * clips
    else:
        centres = [first_centre + (last_centre - first_centre) * c / (clips - 1) for c in range(clips)]
    return [min(max(m + (i - (frames - 1) / 2) / rate, start), last) for m in centres for i in range(frames)]


def sample_sequence(times: list[float], embeddings: np.ndarray, frames: int, rate: float | None) -> np.ndarray:
    """A segment's keyframe embeddings (k, D), in time order, as a model sequence (t ≤ frames, D).

    rate None: every keyframe, or `frames` of them evenly spread when there are more. Else times `1/rate` apart from
    the first keyframe to the last, at most `frames`, each taking the nearest keyframe's embedding."""
    k = len(times)
    if k == 0:
        raise DetectorError("a segment without keyframes has no sequence")
    if rate is None:
        pick = np.arange(k) if k <= frames else np.round(np.linspace(0, k - 1, frames)).astype(int)
    else:
        n = min(frames, int(math.floor((times[-1] - times[0]) * rate + 1e-9)) + 1)
        grid = times[0] + np.arange(n) / rate
        pick = np.abs(np.asarray(times)[None, :] - grid[:, None]).argmin(1)
    return np.asarray(embeddings, np.float32)[pick]
