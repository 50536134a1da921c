"""HTTP hardening: bad text in write paths, Range errors as JSON, writes confined to the roots by real path."""

from __future__ import annotations

import os
import shutil

import httpx
import pytest
from fastapi.testclient import TestClient

from mmindex.config import ServiceConfig
from mmindex.service import create_app
from tests.service.conftest import live_server, make_store, write_jpeg

TOKEN = "s3cret-token-value-1234"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture()
def small(tmp_path) -> dict:
    """media/a.jpg indexed with synthetic scores (no model); a secret outside the root."""
    media = tmp_path / "media"
    a = write_jpeg(media / "a.jpg")
    secret = write_jpeg(tmp_path / "outside" / "secret.jpg", (0, 0, 255))
    return {"media": media, "a": a, "secret": secret, "index": make_store(tmp_path / "index", [a])}


def _local_port(response: httpx.Response) -> int:
    return response.extensions["network_stream"].get_extra_info("client_addr")[1]


def test_a_lone_surrogate_in_a_write_path_is_a_400_and_the_connection_stays_open(small):
    app = create_app(small["index"], ServiceConfig(token=TOKEN))
    bad = b'{"paths": ["' + str(small["media"]).encode() + b'/x\\ud800.jpg"]}'
    with live_server(app) as base, httpx.Client(base_url=base, timeout=60) as client:
        first = client.post("/api/media", content=bad, headers={**AUTH, "Content-Type": "application/json"})
        assert first.status_code == 400
        assert first.headers["content-type"] == "application/json"
        assert "surrogate" in first.json()["error"]
        assert first.headers.get("connection") != "close"
        second = client.get("/api/health")
        assert second.status_code == 200
        assert _local_port(second) == _local_port(first)  # the same keep-alive connection
        # A name that is not UTF-8, as JSON carries it (surrogateescape, 'caf\udce9'), is a file name:
        # refused only because no such file exists, not as bad text.
        escaped = b'{"paths": ["' + str(small["media"]).encode() + b'/caf\\udce9.jpg"]}'
        r = client.post("/api/media", content=escaped, headers={**AUTH, "Content-Type": "application/json"})
        assert r.status_code == 404 and r.headers["content-type"] == "application/json"


@pytest.mark.parametrize(("header", "status"), [
    ("bytes=100000-", 416), ("bytes=5-2", 400), ("items=0-10", 400), ("bytes=abc", 400), ("bytes", 400),
])
def test_range_errors_are_json(small, header, status):
    c = TestClient(create_app(small["index"]), raise_server_exceptions=False)
    size = small["a"].stat().st_size
    for method in ("GET", "HEAD"):
        r = c.request(method, "/api/media/1", headers={"Range": header})
        assert r.status_code == status, (method, header)
        assert r.headers["content-type"] == "application/json", (method, header)
        assert r.headers["x-content-type-options"] == "nosniff"
        if method == "GET":
            assert r.json()["error"]
            assert int(r.headers["content-length"]) == len(r.content)
    if status == 416:
        assert r.headers["content-range"] == f"bytes */{size}"
        assert str(size) in c.get("/api/media/1", headers={"Range": header}).json()["error"]
    ok = c.get("/api/media/1", headers={"Range": "bytes=0-9"})
    assert ok.status_code == 206 and ok.content == small["a"].read_bytes()[:10]


def test_delete_takes_a_name_that_is_not_utf8_as_the_index_keeps_it(tmp_path):
    media = tmp_path / "media"
    named = write_jpeg(media / os.fsdecode(b"caf\xe9.jpg"))  # 'caf\udce9.jpg': not UTF-8 on disk
    index = make_store(tmp_path / "index", [write_jpeg(media / "a.jpg"), named])
    c = TestClient(create_app(index, ServiceConfig(token=TOKEN)), raise_server_exceptions=False)
    # %E9 alone is not UTF-8: it must reach the index as 'caf\udce9', not as 'caf\ufffd' (which matches nothing).
    r = c.delete(f"/api/media?path={media}/caf%E9.jpg", headers=AUTH)
    assert r.status_code == 200 and r.json() == {"removed": 1}
    r = c.delete(f"/api/media?path={media}/a.jpg", headers=AUTH)
    assert r.status_code == 200 and r.json() == {"removed": 1}


def test_adding_a_folder_does_not_follow_symlinks_out_of_the_roots(tmp_path, photo_index):
    index = shutil.copytree(photo_index, tmp_path / "index")
    media, outside = tmp_path / "media", tmp_path / "outside"
    write_jpeg(media / "inside.jpg", (10, 200, 30))
    write_jpeg(outside / "secret.jpg", (0, 0, 255))
    write_jpeg(outside / "folder" / "deep.jpg", (90, 0, 90))
    (media / "sub").mkdir()
    links = {media / "sub" / "secret.jpg": outside / "secret.jpg",
             media / "outdir": outside / "folder",
             media / "passwd.jpg": "/etc/passwd"}
    for link, target in links.items():
        link.symlink_to(target)
    (media / "sub" / "ok.jpg").symlink_to(media / "inside.jpg")  # a link that stays inside is followed
    c = TestClient(create_app(index, ServiceConfig(token=TOKEN, media_roots=(str(media),))),
                   raise_server_exceptions=False)
    r = c.post("/api/media", json={"paths": [str(media)]}, headers=AUTH)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["added"] == 2  # inside.jpg and sub/ok.jpg
    refused = {path: error for path, error in report["errors"]}
    assert set(refused) == {str(p) for p in links}
    assert all("outside" in e for e in refused.values())
    # Nothing outside was read into the index: no segment names it.
    hits = c.get("/api/search", params={"like": "1", "k": 500}).json()["hits"]
    assert not any(h["path"].startswith(str(outside)) or "outdir" in h["path"] for h in hits)
