"""Service fixtures: a real index with photos and a video, small synthetic indexes, a live server."""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from mmindex.concepts import Vocabulary
from mmindex.index.store import Store
from mmindex.records import MediaRecord, SegmentRecord
from tests.conftest import run_cli


@pytest.fixture(scope="session")
def service_index(shared_tmp, photo_index) -> Path:
    """The sample photos' index plus bikes.mp4 (6 shots): real thumbnails, a real video to play."""
    from mmindex.samples import write_sample_videos

    index = shared_tmp / "service-index"
    shutil.copytree(photo_index, index)
    (video,) = [v for v in write_sample_videos(shared_tmp / "service-videos") if v.name == "bikes.mp4"]
    for other in video.parent.iterdir():
        if other != video:
            other.unlink()
    run_cli("add", str(video), "--index", str(index), "-q")
    return index


def make_store(root: Path, files: Sequence[Path], dim: int = 8, seed: int = 0) -> Path:
    """An index whose media are `files`, with random scores and embeddings: no model needed to build it."""
    rng = np.random.default_rng(seed)
    concepts = [(c.id, c.name, c.source) for c in Vocabulary.imagenet().classes]
    records = []
    for i, f in enumerate(files):
        p = rng.dirichlet(np.full(1000, 0.05))
        e = rng.standard_normal(dim)
        records.append(MediaRecord(str(Path(f).absolute()), "image", f"{i:064x}", 1, 0,
                                   [SegmentRecord(p, e / np.linalg.norm(e))]))
    with Store.create(root, "efficientnet_lite0", dim, concepts) as store:
        store.write_batch(records)
    return root


def write_jpeg(path: Path, color=(200, 60, 40)) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 48), color).save(path, quality=90)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def live_server(app) -> Iterator[str]:
    """Run `app` under uvicorn on 127.0.0.1 in a thread; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture()
def service_copy(service_index, tmp_path) -> Path:
    """A private copy of the service index, for a test that writes to it (teaches a concept, records judgments)."""
    return Path(shutil.copytree(service_index, tmp_path / "index"))



def segments_by_kind(client) -> tuple[list[int], list[int]]:
    """(the shots of bikes.mp4 in time order, the photos in name order) of the service index, by segment id, from
    a search every segment answers ("entity" is the root of WordNet's nouns)."""
    r = client.get("/api/search", params={"concept": "entity", "k": 100})
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    shots = [h["segment_id"] for h in sorted(hits, key=lambda h: h["start"] or 0) if h["kind"] == "video"]
    photos = [h["segment_id"] for h in sorted(hits, key=lambda h: h["path"]) if h["kind"] == "image"]
    return shots, photos
