"""The writer stage of `add` (`BatchWriter`) and the runner that drives reader → mapper → writer (`add_paths`), on a
real store and real image files. The model is a parameter (`runtime_factory`); here a small deterministic function
of the pixels stands in for it, so that what lands in the store can be checked number by number."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mmindex.config import IngestConfig
from mmindex.errors import MediaError
from mmindex.extract.reader import UNCHANGED
from mmindex.index.ingest import BatchWriter, add_paths
from mmindex.index.store import Store
from mmindex.models.weights import DataConfig
from mmindex.records import MediaRecord, SegmentRecord

C, D = 6, 4
SMALL = DataConfig(16, 16, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bilinear")  # frames of 3 x 16 x 16: cheap


@pytest.fixture
def store(tmp_path):
    s = Store.create(tmp_path / "idx", "m", D, [(f"c{i}", f"concept {i}", "imagenet") for i in range(C)])
    yield s
    s.close()


def record(path: str, keyframes: int = 1, seed: int = 0) -> MediaRecord:
    rng = np.random.default_rng(seed)
    e = rng.standard_normal(D)
    kf = [(float(i), i) for i in range(keyframes)] if keyframes > 1 else [(None, None)]
    return MediaRecord(path, "video" if keyframes > 1 else "image", f"{seed:064x}", 10, 1,
                       [SegmentRecord(rng.dirichlet(np.ones(C)), e / np.linalg.norm(e), keyframes=kf)])


def committed(store: Store) -> tuple[int, int, int]:
    """(batches, media, errors) committed so far, read through a second connection."""
    with Store.open(store.root) as reader:
        c = reader.counts()
        return c["batches"], c["media"], len(reader.errors())


def test_a_batch_is_committed_once_it_holds_batch_size_keyframes(store):
    writer = BatchWriter(store, batch_size=4)
    writer.take("/a.jpg", record("/a.jpg", seed=1))
    writer.take("/bad.jpg", MediaError("corrupt or truncated image: x"))
    writer.take("/v.mp4", record("/v.mp4", keyframes=2, seed=2))
    assert committed(store) == (0, 0, 0)  # 3 keyframes pending: nothing visible yet
    writer.take("/b.jpg", record("/b.jpg", seed=3))  # the 4th keyframe fills the batch
    assert committed(store) == (1, 3, 1)  # media and the error in one transaction
    writer.take("/c.mp4", record("/c.mp4", keyframes=5, seed=4))  # one media larger than a batch: alone
    assert committed(store) == (2, 4, 1)
    writer.take("/d.jpg", record("/d.jpg", seed=5))
    writer.take("/gone.jpg", MediaError("cannot read file: No such file or directory"))
    assert committed(store) == (2, 4, 1)
    writer.flush()
    assert committed(store) == (3, 5, 2)
    writer.flush()  # nothing pending: no empty batch
    assert committed(store) == (3, 5, 2)
    report = writer.report
    assert (report.added, report.updated, report.unchanged, report.failed) == (5, 0, 0, 2)
    assert report.errors == [("/bad.jpg", "corrupt or truncated image: x"),
                             ("/gone.jpg", "cannot read file: No such file or directory")]
    assert {e["path"]: e["error"] for e in store.errors()} == dict(report.errors)
    # the rows are the records: keyframes and values, in order
    snap = store.snapshot()
    row = snap.row_of(store.segment_ids_of("/v.mp4")[0])
    np.testing.assert_allclose(snap.embeddings[row], record("/v.mp4", keyframes=2, seed=2).segments[0].embedding,
                               atol=1e-3)
    assert store.counts()["keyframes"] == 1 + 2 + 1 + 5 + 1


def test_errors_alone_are_committed_and_unchanged_files_only_counted(store):
    store.write_batch([record("/old.jpg", seed=1)])
    writer = BatchWriter(store, batch_size=8)
    assert writer.known == {"/old.jpg": f"{1:064x}"}  # what the reader compares hashes with
    writer.take("/old.jpg", UNCHANGED)
    writer.take("/x.jpg", MediaError("empty file (0 bytes)"))
    writer.flush()
    assert committed(store) == (1, 1, 1)  # no new batch for errors alone
    writer.take("/old.jpg", record("/old.jpg", seed=9))  # new content under a known path
    writer.take("/x.jpg", record("/x.jpg", seed=10))  # a file that failed before and now reads
    writer.flush()
    assert (writer.report.added, writer.report.updated, writer.report.unchanged) == (1, 1, 1)
    assert store.errors() == [] and store.counts()["media"] == 2  # replaced, not duplicated


def test_the_mapper_runs_at_flush_on_what_is_pending(store):
    seen: list[list[str]] = []

    def mapper(pending):
        seen.append([r.path for r in pending])
        return pending

    writer = BatchWriter(store, batch_size=2, mapper=mapper)
    for name in ["/1.jpg", "/2.jpg", "/3.jpg"]:
        writer.take(name, record(name))
    writer.take("/e.jpg", MediaError("x"))
    writer.flush()
    assert seen == [["/1.jpg", "/2.jpg"], ["/3.jpg"]]


class PixelModel:
    """Scores: softmax of the mean of the first C pixel values of each channel row; embedding: channel means + 1."""

    def run(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        z = np.exp(frames[:, 0, 0, :C])
        emb = np.concatenate([frames.mean(axis=(2, 3)), np.ones((len(frames), D - 3))], axis=1)
        return (z / z.sum(axis=1, keepdims=True)).astype(np.float32), emb.astype(np.float32)


def photos(folder, n: int) -> list:
    folder.mkdir(exist_ok=True)
    paths = []
    for i in range(n):
        rng = np.random.default_rng(i)
        paths.append(folder / f"{i:02d}.png")
        Image.fromarray(rng.integers(0, 256, (20 + i, 24, 3), dtype=np.uint8)).save(paths[-1])
    return paths


def test_add_paths_indexes_records_errors_and_skips_what_did_not_change(store, tmp_path):
    files = photos(tmp_path / "in", 7)
    (tmp_path / "in" / "broken.jpg").write_bytes(b"not an image")
    created, progress = [], []

    def factory():
        created.append(1)
        return PixelModel()

    config = IngestConfig(batch_size=3, workers=2)
    report = add_paths(store, [tmp_path / "in"], config, factory, SMALL, progress=lambda *a: progress.append(a))
    assert (report.added, report.updated, report.unchanged, report.failed) == (7, 0, 0, 1)
    assert report.errors[0][0] == str(tmp_path / "in" / "broken.jpg") and "not a recognised image" in \
        report.errors[0][1]
    assert created == [1]  # one model for the whole run
    assert progress == [(i, 8) for i in range(1, 9)]
    assert store.counts()["batches"] == 3  # 7 keyframes in batches of 3
    # what is stored is the model's output for each file (float16 in the batch files)
    from mmindex.extract.reader import read_media

    snap = store.snapshot()
    for path in files:
        decoded = read_media(str(path), None, SMALL, config)
        probs, emb = PixelModel().run(np.stack(decoded.segments[0].frames))
        row = snap.row_of(store.segment_ids_of(str(path))[0])
        np.testing.assert_allclose(snap.scores[:, row], probs[0], atol=2e-3)
        np.testing.assert_allclose(snap.embeddings[row], emb[0] / np.linalg.norm(emb[0]), atol=2e-3)

    # a second run: nothing new, so no model is created; one changed file is updated
    again = add_paths(store, [tmp_path / "in"], config, factory, SMALL)
    assert (again.added, again.updated, again.unchanged, again.failed) == (0, 0, 7, 1) and created == [1]
    old_id = store.segment_ids_of(str(files[2]))
    Image.new("RGB", (30, 30), (9, 9, 9)).save(files[2])
    third = add_paths(store, [tmp_path / "in", files[2]], config, factory, SMALL)
    assert (third.added, third.updated, third.unchanged) == (0, 1, 6) and created == [1, 1]
    assert store.counts()["media"] == 7 and store.segment_ids_of(str(files[2])) != old_id


def test_add_paths_confines_symbolic_links(store, tmp_path):
    photos(tmp_path / "in", 1)
    outside = photos(tmp_path / "out", 1)[0]
    (tmp_path / "in" / "link.png").symlink_to(outside)
    report = add_paths(store, [tmp_path / "in"], IngestConfig(), PixelModel, SMALL, confine_to=[tmp_path / "in"])
    assert report.added == 1 and [p for p, _ in report.errors] == [str(tmp_path / "in" / "link.png")]
    assert "outside the allowed folders" in report.errors[0][1]
