"""Turning a `Dataset` into model inputs: pixels for scratch / finetune, cached backbone features for probe.

Unreadable images are skipped and reported (`Dataset.skipped`), never fatal on their own; if a class
loses all its images that way, `Dataset.check` fails before any training.

The probe-mode feature cache is one SQLite file per backbone and weights (`$MMINDEX_CACHE/features/
<backbone>-<weights_id>.sqlite`), keyed by the SHA-256 of each image's bytes (file content, or array
bytes for in-memory sets): a file renamed or listed in another dataset is not computed twice, and
other weights can never be mistaken for these. The features are exactly what `mmindex add` stores for
the same image (same decoding, same preprocessing, L2-normalised), which is what lets a probe detector
be applied to an index from its stored embeddings.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mmindex.config import cache_dir
from mmindex.errors import MediaError
from mmindex.learn.data import Dataset, Source, open_source

ProgressFn = Callable[[int, int], None]


def source_key(src: Source) -> str:
    """SHA-256 of an image's bytes: the file's content, or the array's raw bytes."""
    if isinstance(src, str):
        with open(src, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    a = np.ascontiguousarray(src)
    return hashlib.sha256(f"{a.shape}{a.dtype}".encode() + a.tobytes()).hexdigest()


def _drop(ds: Dataset, bad: dict[int, str]) -> Dataset:
    if not bad:
        return ds
    keep = np.asarray([i for i in range(len(ds)) if i not in bad], int)
    out = ds.subset(keep)
    out.skipped = ds.skipped + [(ds.describe(i), why) for i, why in sorted(bad.items())]
    return out.check()


def decode_pixels(ds: Dataset, size: int, channels: int) -> tuple[np.ndarray, Dataset]:
    """(N, channels, size, size) float32 in [0, 1], and the dataset without the unreadable images. Each image is
    `extract.inputs.stretch`ed, as `mmindex apply` makes a scratch detector's input from indexed media."""
    from mmindex.extract.inputs import stretch

    if all(isinstance(s, np.ndarray) and s.shape == (size, size) for s in ds.sources) and channels == 1:
        return np.stack(ds.sources)[:, None].astype(np.float32) / 255.0, ds  # fast path: in-memory grey arrays
    out, bad = [], {}
    for i, s in enumerate(ds.sources):
        try:
            img = open_source(s)
        except MediaError as exc:
            bad[i] = str(exc)
            continue
        out.append(stretch(img, size, channels))
    if not out:
        raise MediaError(f"{ds.name}: no readable image")
    return np.stack(out), _drop(ds, bad)


def decode_for_backbone(ds: Dataset, data_config) -> tuple[np.ndarray, Dataset]:
    """(N, 3, S, S) float16, preprocessed as `mmindex add` does for the backbone (finetune mode)."""
    from mmindex.media import images  # deferred: only image data needs the decoder

    dc = data_config
    out, bad = [], {}
    for i, s in enumerate(ds.sources):
        try:
            img = open_source(s)
        except MediaError as exc:
            bad[i] = str(exc)
            continue
        out.append(images.preprocess(img, dc.input_size, dc.resize, dc.mean, dc.std, dc.interpolation)
                   .astype(np.float16))
    if not out:
        raise MediaError(f"{ds.name}: no readable image")
    return np.stack(out), _drop(ds, bad)


class FeatureCache:
    """Backbone features by image hash, in one SQLite file per backbone + weights id."""

    def __init__(self, backbone: str, weights_id: str, folder: Path | None = None):
        folder = folder or cache_dir() / "features"
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{backbone}-{weights_id}.sqlite"
        self.db = sqlite3.connect(self.path, timeout=30)
        self.db.execute("CREATE TABLE IF NOT EXISTS features (sha256 TEXT PRIMARY KEY, vec BLOB NOT NULL)")

    def get(self, keys: list[str]) -> dict[str, np.ndarray]:
        out = {}
        for i in range(0, len(keys), 500):
            part = keys[i:i + 500]
            rows = self.db.execute(f"SELECT sha256, vec FROM features WHERE sha256 IN ({','.join('?' * len(part))})",
                                   part)
            out.update({k: np.frombuffer(v, np.float32) for k, v in rows})
        return out

    def put(self, items: dict[str, np.ndarray]) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO features VALUES (?, ?)",
                                [(k, np.asarray(v, np.float32).tobytes()) for k, v in items.items()])

    def close(self) -> None:
        self.db.close()


def extract_features(ds: Dataset, backbone: str, progress: ProgressFn | None = None, batch_size: int = 32,
                     backend: str = "auto", device=None) -> tuple[np.ndarray, Dataset, str]:
    """Probe features (N, D) float32 (L2-normalised pooled features), the kept dataset, and the weights id.

    Cached images are not decoded again; the backbone is built only if some image is not cached. With a
    CUDA `device`, PyTorch runs the backbone there (in float32, TF32 off, so that the features stay within
    float tolerance of the ONNX Runtime ones `mmindex add` stores).
    """
    on_gpu = device is not None and str(device).startswith("cuda")
    from mmindex.media import images  # deferred: only image data needs the decoder
    from mmindex.models import Runtime, create_model  # deferred: the backbone registry builds PyTorch models

    model = create_model(backbone)
    cache = FeatureCache(backbone, model.weights_id)
    try:
        bad: dict[int, str] = {}
        keys: list[str | None] = []
        for i, s in enumerate(ds.sources):
            try:
                keys.append(source_key(s))
            except OSError as exc:
                keys.append(None)
                bad[i] = f"cannot read file: {exc.strerror or exc}"
        found = cache.get([k for k in keys if k])
        todo = [i for i, k in enumerate(keys) if k and k not in found]
        runtime = (Runtime(model, backend="torch" if on_gpu else backend, device=device if on_gpu else None)
                   if todo else None)
        dc = model.data_config
        done = len(ds) - len(todo)
        for b in range(0, len(todo), batch_size):
            frames, idx = [], []
            for i in todo[b:b + batch_size]:
                try:
                    img = open_source(ds.sources[i])
                except MediaError as exc:
                    bad[i] = str(exc)
                    continue
                frames.append(images.preprocess(img, dc.input_size, dc.resize, dc.mean, dc.std, dc.interpolation))
                idx.append(i)
            if frames:
                _, emb = runtime.run(np.stack(frames))
                new = {keys[i]: e for i, e in zip(idx, emb, strict=True)}
                cache.put(new)
                found.update(new)
            done += len(todo[b:b + batch_size])
            if progress:
                progress(done, len(ds))
        feats = np.stack([found[k] for i, k in enumerate(keys) if i not in bad]) if len(bad) < len(ds) else None
    finally:
        cache.close()
    if feats is None:
        raise MediaError(f"{ds.name}: no readable image")
    return feats.astype(np.float32), _drop(ds, bad), model.weights_id
