"""Datasets: class folders, CSV/JSON annotations, IDX files, splits, and every bad input of the issue."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from mmindex.errors import DataError
from mmindex.learn.data import load_dataset, mosaics, read_idx, split
from mmindex.learn.features import decode_pixels
from tests.learn.conftest import TRAIN_NPZ, write_class_folders


def test_class_folders(tmp_path):
    ds = load_dataset(write_class_folders(TRAIN_NPZ, tmp_path, [1, 7], per_class=5))
    assert ds.labels == ["sneaker", "trouser"] and len(ds) == 10 and not ds.multilabel
    assert (ds.targets.sum(1) == 1).all() and list(ds.targets.sum(0)) == [5, 5]


def test_empty_class_and_single_class_are_errors(tmp_path):
    root = write_class_folders(TRAIN_NPZ, tmp_path / "a", [1, 7], per_class=3)
    (root / "bag").mkdir()
    with pytest.raises(DataError, match="empty class folder.*bag"):
        load_dataset(root)
    one = write_class_folders(TRAIN_NPZ, tmp_path / "b", [1], per_class=3)
    with pytest.raises(DataError, match="only one class"):
        load_dataset(one)
    with pytest.raises(DataError, match="no class folders"):
        load_dataset(tmp_path / "b" / "trouser")
    with pytest.raises(DataError, match="no such dataset"):
        load_dataset(tmp_path / "missing")


def test_csv_and_json_multilabel_with_soft_labels(tmp_path):
    root = write_class_folders(TRAIN_NPZ, tmp_path, [1, 7, 8], per_class=2)
    files = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.png"))
    csv = tmp_path / "ann.csv"
    csv.write_text("image,labels\n" + "".join(f"{f},{f.parent.name};shoe=0.5\n" for f in files))
    ds = load_dataset(csv)
    assert ds.multilabel and ds.labels == ["bag", "shoe", "sneaker", "trouser"] and len(ds) == 6
    assert ds.targets[:, 1].tolist() == [0.5] * 6
    doc = {"labels": ["bag", "sneaker", "trouser"],
           "images": [{"image": str(f), "labels": [f.parent.name]} for f in files]}
    (tmp_path / "ann.json").write_text(json.dumps(doc))
    ds = load_dataset(tmp_path / "ann.json")
    assert ds.labels == ["bag", "sneaker", "trouser"] and ds.targets.sum() == 6
    del root


def test_annotation_labels_without_images_and_missing_files(tmp_path):
    write_class_folders(TRAIN_NPZ, tmp_path, [1, 7], per_class=2)
    files = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.png"))
    doc = {"labels": ["sneaker", "trouser", "hat"], "images": [{"image": str(f), "labels": [f.parent.name]}
                                                              for f in files]}
    (tmp_path / "a.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match="no images for label: hat"):
        load_dataset(tmp_path / "a.json")
    (tmp_path / "b.csv").write_text("gone.png,sneaker\n" + "".join(f"{f},{f.parent.name}\n" for f in files))
    ds = load_dataset(tmp_path / "b.csv")
    assert len(ds) == 4 and ds.skipped[0][1] == "no such file"
    (tmp_path / "c.csv").write_text("gone.png,hat\n" + "".join(f"{f},{f.parent.name}\n" for f in files))
    with pytest.raises(DataError, match="no images for label: hat"):
        load_dataset(tmp_path / "c.csv")
    (tmp_path / "d.json").write_text("{not json")
    with pytest.raises(DataError, match="cannot read annotation"):
        load_dataset(tmp_path / "d.json")
    (tmp_path / "e.csv").write_text(f"{files[0]},sneaker=2\n")
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        load_dataset(tmp_path / "e.csv")


def test_unreadable_images_are_skipped_and_reported(tmp_path):
    root = write_class_folders(TRAIN_NPZ, tmp_path, [1, 7], per_class=3)
    (root / "sneaker" / "broken.png").write_bytes(b"\x89PNG not really")
    ds = load_dataset(root)
    x, kept = decode_pixels(ds, 28, 1)
    assert x.shape == (6, 1, 28, 28) and len(kept) == 6
    assert kept.skipped and kept.skipped[0][0].endswith("broken.png")


def test_read_idx_and_truncation(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    head = bytes([0, 0, 8, 3]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    (tmp_path / "a.gz").write_bytes(gzip.compress(head + arr.tobytes()))
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), arr)
    (tmp_path / "b").write_bytes(head + arr.tobytes()[:-1])
    with pytest.raises(DataError, match="truncated"):
        read_idx(tmp_path / "b")
    (tmp_path / "c").write_bytes(b"hello world")
    with pytest.raises(DataError, match="IDX"):
        read_idx(tmp_path / "c")


def test_npz_split_is_stratified_and_seeded():
    ds = load_dataset(TRAIN_NPZ)
    assert len(ds) == 300 and len(ds.labels) == 10
    a, b = split(ds, 0.2, seed=1)
    assert len(b) == 60 and (b.targets.sum(0) == 6).all()
    a2, b2 = split(ds, 0.2, seed=1)
    assert all(np.array_equal(x, y) for x, y in zip(b.sources, b2.sources, strict=True))


def test_mosaics_targets_are_the_contained_classes():
    ds = load_dataset(TRAIN_NPZ)
    images = np.stack(ds.sources)
    m, t = mosaics(images, ds.classes, 5, 10, seed=0)
    assert m.shape == (5, 56, 56) and t.shape == (5, 10)
    assert ((t.sum(1) >= 1) & (t.sum(1) <= 4)).all()


def test_multilabel_npz_from_real_mosaics(tmp_path):
    with np.load(TRAIN_NPZ) as z:
        images, y = z["images"], z["labels"]
    x, t = mosaics(images, y, 40, 10, seed=0)
    names = np.array([f"c{i}" for i in range(10)])
    np.savez(tmp_path / "m.npz", images=x, labels=t, label_names=names)
    ds = load_dataset(str(tmp_path / "m.npz"))
    assert ds.multilabel and ds.targets.shape == (40, 10) and (ds.targets == t).all()
    assert all((s == im).all() for s, im in zip(ds.sources, x, strict=True))
    np.savez(tmp_path / "bad.npz", images=x, labels=t[:, :5], label_names=names)
    with pytest.raises(DataError, match="multi-label"):
        load_dataset(str(tmp_path / "bad.npz"))
