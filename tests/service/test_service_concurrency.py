"""The server keeps answering while a writer commits batches to the same index, and never shows half a batch."""

from __future__ import annotations

import threading
import time

import numpy as np
from fastapi.testclient import TestClient

from mmindex.concepts import Vocabulary
from mmindex.config import ServiceConfig
from mmindex.index.store import Store
from mmindex.records import MediaRecord, SegmentRecord
from mmindex.service import create_app
from tests.service.conftest import make_store, write_jpeg

BATCH = 50


def test_reads_during_writes_see_only_whole_batches(tmp_path):
    first = [write_jpeg(tmp_path / "media" / f"{i:03d}.jpg") for i in range(BATCH)]
    index = make_store(tmp_path / "index", first)
    client = TestClient(create_app(index, ServiceConfig(max_k=1000)), raise_server_exceptions=False)
    rng = np.random.default_rng(1)
    batches, done, errors = 12, threading.Event(), []

    def writer():  # what `mmindex add` does: one SQLite transaction + one array file per batch
        try:
            with Store.open(index, write=True) as store:
                for b in range(1, batches + 1):
                    records = []
                    for i in range(BATCH):
                        e = rng.standard_normal(8)
                        records.append(MediaRecord(f"{tmp_path}/media/new-{b:02d}-{i:02d}.jpg", "image", f"{b}-{i}", 1,
                                                   0, [SegmentRecord(rng.dirichlet(np.full(1000, .05)),
                                                                     e / np.linalg.norm(e))]))
                    store.write_batch(records)
                    time.sleep(0.02)
        except Exception as exc:  # noqa: BLE001 (reported by the main thread)
            errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    seen, answers = [], 0
    while not done.is_set() or answers < 20:
        health = client.get("/api/health")
        assert health.status_code == 200, health.text
        n = health.json()["segments"]
        assert n % BATCH == 0, f"saw {n} segments: half a batch"
        seen.append(n)
        r = client.get("/api/search", params={"like": "1", "k": 1000})
        assert r.status_code == 200, r.text
        hits = r.json()["hits"]
        assert len(hits) % BATCH == 0 and len(hits) >= seen[-1] - BATCH  # a whole number of batches
        answers += 1
    thread.join()
    assert not errors, errors
    seen.append(client.get("/api/health").json()["segments"])  # the loop may end between a commit and its read
    assert seen == sorted(seen) and seen[-1] == BATCH * (batches + 1)
    assert len(set(seen)) > 2, "the reads did not overlap the writes"
    final = client.get("/api/search", params={"like": "1", "k": 1000}).json()["hits"]
    assert len(final) == BATCH * (batches + 1)


def test_search_answers_while_the_writer_lock_is_held(tmp_path):
    index = make_store(tmp_path / "index", [write_jpeg(tmp_path / "a.jpg")])
    client = TestClient(create_app(index), raise_server_exceptions=False)
    with Store.open(index, write=True):  # another process's `mmindex add` holds the lock
        assert client.get("/api/search", params={"like": "1"}).status_code == 200
        locked = client.post("/api/media", json={"paths": [str(tmp_path)]})
        assert locked.status_code == 403  # writes are off without a token; with one it would be 409
    assert Vocabulary.imagenet()  # the vocabulary stays loadable after the lock is released
