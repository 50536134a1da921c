"""File and folder names that are not UTF-8 (common on disks written by other systems).

Python holds such a name as a str with lone surrogates ('caf\\udce9' for b'caf\\xe9'). They are indexed
like any other, stored losslessly, shown escaped (JSON "\\udce9", terminal "caf\\xe9"), removable and
served over HTTP.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from mmindex import Engine
from mmindex.config import ServiceConfig
from mmindex.index.store import Store
from mmindex.records import MediaRecord, SegmentRecord
from mmindex.service import create_app
from tests.conftest import run_cli

TOKEN = "names-token-0123456789"


def name(raw: bytes) -> str:
    """A file name as Python gives it for the bytes `raw`."""
    return os.fsdecode(raw)


def record(path: str, seed: int = 0) -> MediaRecord:
    rng = np.random.default_rng(seed)
    e = rng.normal(size=8)
    segment = SegmentRecord(rng.dirichlet(np.ones(5)), e / np.linalg.norm(e))
    return MediaRecord(path, "image", f"{seed:064x}", 1, 0, [segment])


def test_the_store_keeps_names_that_are_not_utf8(tmp_path):
    folder = name(b"/r/caf\xe9")
    inside, beside, good = f"{folder}/a.jpg", name(b"/r/good/b\xe9.jpg"), "/r/good/c.jpg"
    with Store.create(tmp_path / "idx", "m", 8, [(f"c{i}", f"c{i}", "imagenet") for i in range(5)]) as store:
        store.write_batch([record(inside, 1), record(beside, 2), record(good, 3)],
                          errors=[(name(b"/r/bad\xff.jpg"), "corrupt")])
        assert store.media_hashes() == {inside: f"{1:064x}", beside: f"{2:064x}", good: f"{3:064x}"}
        assert store.errors() == [{"path": name(b"/r/bad\xff.jpg"), "error": "corrupt"}]
        (sid,) = store.segment_ids_of(inside)
        assert store.segments([sid])[sid]["path"] == inside
        store.write_batch([record(inside, 4)])  # a changed file replaces its record: no duplicate
        assert store.counts()["media"] == 3
        assert store.remove([folder]) == 1  # a folder that is not UTF-8
        assert store.remove(["/r/good"]) == 2  # a UTF-8 folder holding a name that is not
        assert store.remove([name(b"/r/bad\xff.jpg")]) == 0 and store.errors() == []
        assert store.counts()["media"] == 0


@pytest.fixture
def tree(tmp_path, sample_photos) -> dict[str, bytes]:
    """A folder with a non-UTF-8 sub-folder, a non-UTF-8 file name and a corrupt JPEG with such a name."""
    root = os.fsencode(tmp_path)
    photos = sorted(sample_photos.glob("*.jpg"))
    files = {
        "good": root + b"/r1/good/" + os.fsencode(photos[0].name),
        "folder": root + b"/r1/caf\xe9/" + os.fsencode(photos[1].name),
        "file": root + b"/r1/good/na\xefve.jpg",
    }
    for key, source in zip(files, photos, strict=False):
        os.makedirs(os.path.dirname(files[key]), exist_ok=True)
        shutil.copyfile(source, files[key])
    files["bad"] = root + b"/r1/bad\xff.jpg"
    with open(files["bad"], "wb") as f:
        f.write(b"\xff\xd8\xff\xe0 not really a JPEG")
    files["root"] = root + b"/r1"
    files["index"] = root + b"/idx"
    return files


def cli(*args, **kw):
    return run_cli(*[name(a) if isinstance(a, bytes) else a for a in args], **kw)


def info(tree) -> dict:
    return json.loads(cli("info", "--index", tree["index"], "--json").stdout)


def search_paths(tree, **kw) -> list[bytes]:
    out = cli("search", "--index", tree["index"], "--concept", "entity", "-k", "100", "--json", **kw).stdout
    return sorted(os.fsencode(h["path"]) for h in json.loads(out)["hits"])


def test_cli_indexes_shows_and_removes_names_that_are_not_utf8(tree):
    add = cli("add", tree["root"], "--index", tree["index"], "-q")
    assert "added 3, updated 0, unchanged 0, failed 1" in add.stdout
    assert "bad\\xff.jpg: " in add.stderr  # escaped, not a traceback
    data = info(tree)
    assert data["media"] == 3
    assert [os.fsencode(e["path"]) for e in data["errors"]] == [tree["bad"]]
    assert search_paths(tree) == sorted([tree["good"], tree["folder"], tree["file"]])
    assert "bad\\xff.jpg" in cli("info", "--index", tree["index"]).stdout
    table = cli("search", "--index", tree["index"], "--concept", "entity", "-k", "100", env={"COLUMNS": "500"}).stdout
    assert "caf\\xe9" in table and "na\\xefve.jpg" in table

    again = cli("add", tree["root"], "--index", tree["index"], "-q")
    assert "added 0, updated 0, unchanged 3, failed 1" in again.stdout
    assert info(tree)["media"] == 3 and len(info(tree)["errors"]) == 1

    assert "removed 1 media" in cli("remove", tree["root"] + b"/caf\xe9", "--index", tree["index"]).stdout
    assert "removed 1 media" in cli("remove", tree["file"], "--index", tree["index"]).stdout
    assert search_paths(tree) == [tree["good"]]


def test_http_serves_and_adds_names_that_are_not_utf8(tree):
    engine = Engine(name(tree["index"]))
    engine.add([name(tree["good"])])  # the index exists before the server starts
    root = name(tree["root"])
    app = create_app(engine, ServiceConfig(token=TOKEN, media_roots=(root,)))
    client = TestClient(app, raise_server_exceptions=False)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with open(tree["root"] + b"/caf\xe9/broken\xe8.jpg", "wb") as f:
        f.write(b"\xff\xd8 truncated")
    r = client.post("/api/media", json={"paths": [root]}, headers=auth)
    assert r.status_code == 200, r.text
    broken = tree["root"] + b"/caf\xe9/broken\xe8.jpg"
    assert sorted(os.fsencode(p) for p, _ in r.json()["errors"]) == sorted([tree["bad"], broken])

    r = client.get("/api/search", params={"concept": "entity", "k": 100})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    hits = {os.fsencode(h["path"]): h for h in r.json()["hits"]}
    assert sorted(hits) == sorted([tree["good"], tree["folder"], tree["file"]])
    for key in ("folder", "file"):
        sid = hits[tree[key]]["segment_id"]
        segment = client.get(f"/api/segments/{sid}")
        assert segment.status_code == 200 and os.fsencode(segment.json()["path"]) == tree[key]
        media = client.get(f"/api/media/{sid}")
        assert media.status_code == 200 and media.content == Path(name(tree[key])).read_bytes()
        thumb = client.get(f"/api/segments/{sid}/thumbnail")
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
