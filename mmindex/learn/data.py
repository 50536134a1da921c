"""Labelled data for training and evaluation: class folders, CSV/JSON annotation files, Fashion-MNIST.

A `Dataset` is a list of image sources (file paths, or uint8 arrays for in-memory sets) with a target
matrix (N, C): one-hot rows for exclusive classes (a class folder), multi-hot or soft rows for an
annotation file (multi-label). Every check that can fail does so before any training starts:
an empty class, a single class, a label without images, an unreadable annotation file. Unreadable
images are skipped and reported when they are decoded (`decode_pixels`, `extract_features`).

Specs accepted by `load_dataset`:
    DIR                      one sub-folder per class (multi-class)
    FILE.csv                 rows `image,labels`; labels separated by ';' or '|'; a soft label as `name=0.7`
    FILE.json                {"labels": [...] (optional), "images": [{"image": path, "labels": [...] | {name: p}}]}
                             (or just the list, or a {path: labels} object); paths relative to the file
    FILE.npz                 arrays `images` (N, H, W[, 3]) uint8, `label_names` (C,), and `labels`: (N,) class
                             ids, or (N, C) multi-label targets in [0, 1]
    fashion-mnist[:train|:test][:N]   the Debian `dataset-fashion-mnist` files (first N images)
"""

from __future__ import annotations

import csv
import gzip
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmindex.errors import DataError, MediaError
from mmindex.media.scan import IMAGE_EXTENSIONS

FASHION_MNIST_DIR = Path(os.environ.get("MMINDEX_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))
FASHION_MNIST_LABELS = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                        "ankle boot")
MAX_PIXELS = 89_478_485

Source = str | np.ndarray


@dataclass
class Dataset:
    """Images and their targets. `multilabel` False means exactly one 1 per row (exclusive classes)."""

    sources: list[Source]
    targets: np.ndarray  # (N, C) float32 in [0, 1]
    labels: list[str]
    multilabel: bool
    name: str = ""
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (item, reason)

    def __len__(self) -> int:
        return len(self.sources)

    @property
    def classes(self) -> np.ndarray:
        """(N,) class index of each item (argmax of its target row)."""
        return self.targets.argmax(1)

    def subset(self, idx: np.ndarray) -> Dataset:
        return Dataset([self.sources[i] for i in idx], self.targets[idx], self.labels, self.multilabel, self.name,
                       list(self.skipped))

    def describe(self, i: int) -> str:
        s = self.sources[i]
        return s if isinstance(s, str) else f"{self.name}[{i}]"

    def check(self) -> Dataset:
        """Raise `DataError` if the set cannot train a detector: fewer than 2 labels, a label with no image."""
        if len(self.sources) == 0:
            raise DataError(f"{self.name}: no images")
        if len(self.labels) < 2 and not self.multilabel:
            raise DataError(f"{self.name}: only one class ({', '.join(self.labels) or 'none'}); "
                            "a detector needs at least two (add a folder of counter-examples)")
        empty = [lab for lab, n in zip(self.labels, (self.targets > 0).sum(0), strict=True) if n == 0]
        if empty:
            kind = "label" if self.multilabel else "class"
            raise DataError(f"{self.name}: no images for {kind}{'s' if len(empty) > 1 else ''}: {', '.join(empty)}")
        return self


def load_dataset(spec: str | os.PathLike, labels: list[str] | None = None) -> Dataset:
    """Load a dataset from a spec (see the module docstring); `labels` fixes the label order (evaluation)."""
    s = os.fspath(spec)
    if s.startswith("fashion-mnist"):
        parts = s.split(":")
        split = parts[1] if len(parts) > 1 and parts[1] else "train"
        limit = int(parts[2]) if len(parts) > 2 else None
        ds = load_fashion_mnist(split, limit=limit)
    else:
        p = Path(s).expanduser()
        if p.is_dir():
            ds = load_folder(p)
        elif not p.exists():
            raise DataError(f"no such dataset: {s}")
        elif p.suffix.lower() == ".csv":
            ds = load_annotations_csv(p)
        elif p.suffix.lower() == ".json":
            ds = load_annotations_json(p)
        elif p.suffix.lower() == ".npz":
            ds = load_npz(p)
        else:
            raise DataError(f"{s}: expected a folder of class folders, a .csv, .json or .npz file")
    return reorder_labels(ds, labels) if labels is not None else ds


def reorder_labels(ds: Dataset, labels: list[str]) -> Dataset:
    """The same data with target columns in `labels` order (a detector's); unknown labels raise DataError."""
    unknown = sorted(set(ds.labels) - set(labels))
    if unknown:
        raise DataError(f"{ds.name}: labels the detector does not know: {', '.join(unknown)}")
    t = np.zeros((len(ds), len(labels)), np.float32)
    for j, lab in enumerate(ds.labels):
        t[:, labels.index(lab)] = ds.targets[:, j]
    return Dataset(ds.sources, t, list(labels), ds.multilabel, ds.name, ds.skipped)


def _images_in(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def load_folder(root: Path) -> Dataset:
    """One sub-folder per class; the class name is the folder name. Hidden folders are ignored."""
    classes = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataError(f"{root}: no class folders (expected one sub-folder of images per class)")
    files = {d.name: _images_in(d) for d in classes}
    empty = [c for c, f in files.items() if not f]
    if empty:
        raise DataError(f"{root}: empty class folder{'s' if len(empty) > 1 else ''}: {', '.join(empty)}")
    labels = [d.name for d in classes]
    sources = [f for c in labels for f in files[c]]
    targets = np.zeros((len(sources), len(labels)), np.float32)
    targets[np.arange(len(sources)), np.repeat(np.arange(len(labels)), [len(files[c]) for c in labels])] = 1
    return Dataset(sources, targets, labels, False, str(root)).check()


def _parse_labels(value: object, where: str) -> dict[str, float]:
    """Labels of one annotation: a list of names, a {name: p} dict, or a ';' / '|' separated string."""
    if isinstance(value, str):
        items = [v.strip() for v in value.replace("|", ";").split(";") if v.strip()]
        out = {}
        for it in items:
            name, _, p = it.partition("=")
            out[name.strip()] = float(p) if p else 1.0
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        out = {v: 1.0 for v in value}
    elif isinstance(value, dict):
        out = {str(k): float(v) for k, v in value.items()}
    else:
        raise DataError(f"{where}: labels must be a list of names, a {{name: probability}} object or a string")
    if any(not 0.0 <= p <= 1.0 for p in out.values()):
        raise DataError(f"{where}: label probabilities must be in [0, 1]")
    return out


def _from_annotations(path: Path, rows: list[tuple[str, dict[str, float]]], declared: list[str] | None) -> Dataset:
    if not rows:
        raise DataError(f"{path}: no annotated images")
    base = path.parent
    seen = list(dict.fromkeys(lab for _, labs in rows for lab in labs))
    labels = list(declared) if declared else sorted(seen)
    undeclared = [lab for lab in seen if lab not in labels]
    if undeclared:
        raise DataError(f"{path}: labels not in the declared label list: {', '.join(undeclared)}")
    sources, targets, skipped = [], [], []
    for image, labs in rows:
        p = Path(image).expanduser()
        p = p if p.is_absolute() else base / p
        if not p.is_file():
            skipped.append((str(p), "no such file"))
            continue
        sources.append(str(p))
        targets.append([labs.get(lab, 0.0) for lab in labels])
    t = np.asarray(targets, np.float32).reshape(len(sources), len(labels))
    ds = Dataset(sources, t, labels, True, str(path), skipped)
    if len(labels) < 2:
        raise DataError(f"{path}: only one label ({', '.join(labels)}); a detector needs at least two")
    return ds.check()


def load_annotations_csv(path: Path) -> Dataset:
    """Rows `image,labels` (a header row `image,labels` is optional)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            raw = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read annotation file {path}: {exc}") from None
    if raw and [c.strip().lower() for c in raw[0][:2]] in (["image", "labels"], ["path", "labels"]):
        raw = raw[1:]
    rows = []
    for n, r in enumerate(raw, 1):
        if len(r) < 2:
            raise DataError(f"{path}:{n}: expected `image,labels`")
        rows.append((r[0].strip(), _parse_labels(",".join(r[1:]), f"{path}:{n}")))
    return _from_annotations(path, rows, None)


def load_annotations_json(path: Path) -> Dataset:
    """See the module docstring for the accepted shapes."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read annotation file {path}: {exc}") from None
    declared = None
    if isinstance(doc, dict) and "images" in doc:
        declared = doc.get("labels")
        doc = doc["images"]
    if isinstance(doc, dict):
        rows = [(k, _parse_labels(v, f"{path}: {k}")) for k, v in doc.items()]
    elif isinstance(doc, list):
        rows = []
        for i, item in enumerate(doc):
            if not isinstance(item, dict) or "image" not in item or "labels" not in item:
                raise DataError(f"{path}: item {i} must be an object with `image` and `labels`")
            rows.append((str(item["image"]), _parse_labels(item["labels"], f"{path}: item {i}")))
    else:
        raise DataError(f"{path}: expected a list of {{image, labels}} objects")
    return _from_annotations(path, rows, declared)


def load_npz(path: Path) -> Dataset:
    """Arrays `images` uint8, `labels` and `label_names` (C,): `labels` is (N,) class ids (exclusive
    classes) or an (N, C) matrix of 0/1 or soft targets (multi-label)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            images, y, names = z["images"], z["labels"], [str(n) for n in z["label_names"]]
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if y.ndim == 2:
        if y.shape != (len(images), len(names)) or y.min() < 0 or y.max() > 1:
            raise DataError(f"{path}: multi-label `labels` must be ({len(images)}, {len(names)}) values in [0, 1]")
        return Dataset(list(images), y.astype(np.float32), names, True, str(path)).check()
    return _from_arrays(images, y.astype(np.int64), names, str(path))


def _from_arrays(images: np.ndarray, y: np.ndarray, names: list[str], name: str) -> Dataset:
    targets = np.zeros((len(y), len(names)), np.float32)
    targets[np.arange(len(y)), y] = 1
    return Dataset(list(images), targets, list(names), False, name).check()


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (LeCun's MNIST format), gzip'd or not: magic 0x0000 08 <ndim>, big-endian dims, uint8."""
    opener = gzip.open if os.fspath(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(f"{path}: not an unsigned-byte IDX file")
    ndim = data[3]
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    arr = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise DataError(f"{path}: truncated IDX file")
    return arr.reshape(dims)


def load_fashion_mnist(split: str = "train", root: str | os.PathLike | None = None,
                       limit: int | None = None) -> Dataset:
    """Fashion-MNIST from the Debian package (`apt-get install dataset-fashion-mnist`); split train|test."""
    prefix = {"train": "train", "test": "t10k", "t10k": "t10k"}.get(split)
    if prefix is None:
        raise DataError(f"fashion-mnist split must be train or test, not {split!r}")
    folder = Path(root) if root else FASHION_MNIST_DIR
    images_path = folder / f"{prefix}-images-idx3-ubyte.gz"
    if not images_path.is_file():
        raise DataError(f"Fashion-MNIST not found in {folder} (apt-get install dataset-fashion-mnist)")
    images = read_idx(images_path)[:limit]
    y = read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz")[:limit]
    return _from_arrays(images, y, list(FASHION_MNIST_LABELS), f"fashion-mnist:{split}")


def mosaics(images: np.ndarray, y: np.ndarray, n: int, num_classes: int,
            seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` 2×2 mosaics of random images (N, 2H, 2W) and their multi-hot targets (the classes they contain)."""
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(images), size=(n, 4))
    h, w = images.shape[1:3]
    out = np.empty((n, 2 * h, 2 * w), np.uint8)
    out[:, :h, :w], out[:, :h, w:] = images[pick[:, 0]], images[pick[:, 1]]
    out[:, h:, :w], out[:, h:, w:] = images[pick[:, 2]], images[pick[:, 3]]
    targets = np.zeros((n, num_classes), np.float32)
    np.put_along_axis(targets, y[pick], 1.0, axis=1)
    return out, targets


def split(ds: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """A seeded train/validation split; stratified per class for exclusive classes (each class in both)."""
    rng = np.random.default_rng(seed)
    if ds.multilabel:
        order = rng.permutation(len(ds))
        k = max(1, round(fraction * len(ds)))
        val, train = order[:k], order[k:]
    else:
        val, train = [], []
        for c in range(len(ds.labels)):
            idx = rng.permutation(np.flatnonzero(ds.classes == c))
            k = min(len(idx) - 1, max(1, round(fraction * len(idx)))) if len(idx) > 1 else 0
            val += list(idx[:k])
            train += list(idx[k:])
        val, train = np.sort(np.asarray(val, int)), np.sort(np.asarray(train, int))
    if len(train) == 0 or len(val) == 0:
        raise DataError(f"{ds.name}: too few images ({len(ds)}) to hold out a validation split; give --val")
    return ds.subset(train), ds.subset(val)


def open_source(src: Source):
    """A PIL RGB image of a source (a file path or a uint8 array). Raises `MediaError`."""
    from PIL import Image

    from mmindex.media import images  # deferred: only image data needs the decoder

    if isinstance(src, str):
        try:
            with open(src, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise MediaError(f"cannot read file: {exc.strerror or exc}") from None
        return images.open_image(data, MAX_PIXELS)
    return Image.fromarray(np.asarray(src, np.uint8)).convert("RGB")
