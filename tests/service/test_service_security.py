"""Security: media only from the roots, path traversal in every form, the token, limits, no leaks."""

from __future__ import annotations

import http.client
import io
import logging
import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from mmindex.config import ServiceConfig
from mmindex.service import create_app
from tests.service.conftest import live_server, make_store, write_jpeg

TOKEN = "s3cret-token-value-1234"


@pytest.fixture()
def layout(tmp_path) -> dict:
    """media/{a,b,victim}.jpg and media/sub/link.jpg (a symlink out of the root) indexed; secret outside."""
    media = tmp_path / "media"
    secret = write_jpeg(tmp_path / "outside" / "secret.jpg", (0, 0, 255))
    a, b = write_jpeg(media / "a.jpg"), write_jpeg(media / "b.jpg", (0, 255, 0))
    victim = write_jpeg(media / "victim.jpg")
    (media / "sub").mkdir()
    link = media / "sub" / "link.jpg"
    link.symlink_to(secret)
    gone = write_jpeg(media / "gone.jpg")
    index = make_store(tmp_path / "index", [a, b, victim, link, gone])
    gone.unlink()
    return {"tmp": tmp_path, "media": media, "secret": secret, "index": index,
            "ids": {"a": 1, "b": 2, "victim": 3, "link": 4, "gone": 5}}


def client(layout, **config) -> TestClient:
    return TestClient(create_app(layout["index"], ServiceConfig(**config)), raise_server_exceptions=False)


def test_media_served_from_the_roots_only(layout):
    c, ids = client(layout), layout["ids"]
    assert c.get(f"/api/media/{ids['a']}").content == (layout["media"] / "a.jpg").read_bytes()
    assert c.get(f"/api/segments/{ids['a']}/thumbnail").status_code == 200
    # An indexed symlink that points out of the root is refused, as media and as thumbnail.
    assert c.get(f"/api/media/{ids['link']}").status_code == 403
    assert c.get(f"/api/segments/{ids['link']}/thumbnail").status_code == 403
    # A file deleted since indexing: 404.
    assert c.get(f"/api/media/{ids['gone']}").status_code == 404


def test_file_swapped_for_a_symlink_after_indexing(layout):
    c, ids = client(layout), layout["ids"]
    assert c.get(f"/api/media/{ids['victim']}").status_code == 200
    victim = layout["media"] / "victim.jpg"
    victim.unlink()
    victim.symlink_to(layout["secret"])
    r = c.get(f"/api/media/{ids['victim']}")
    assert r.status_code == 403 and r.content != layout["secret"].read_bytes()
    assert c.get(f"/api/segments/{ids['victim']}/thumbnail").status_code == 403


def test_configured_roots_exclude_other_media(layout):
    c = client(layout, media_roots=(str(layout["media"] / "sub"),))
    assert c.get(f"/api/media/{layout['ids']['a']}").status_code == 403


RAW_PATHS = [
    "/api/media/../../../../etc/passwd",
    "/api/media/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "/api/media/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/api/media/%252e%252e%252fetc%252fpasswd",
    "/api/media/%2Fetc%2Fpasswd",
    "/api/media//etc/passwd",
    "/api/media/1/../../../../etc/passwd",
    "/api/segments/1/../../../../../etc/passwd/thumbnail",
    "/api/segments/..%2F..%2Fetc%2Fpasswd/thumbnail",
    "/../../../../etc/passwd",
    "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/..%5c..%5c..%5cetc%5cpasswd",
    "/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
    "//etc/passwd",
    "/etc/passwd",
    "/../app.py",
    "/..%2fapp.py",
    "/api/media/1%00.jpg",
]


@pytest.mark.parametrize("raw", RAW_PATHS)
def test_path_traversal_over_a_real_socket(layout, raw):
    """Raw request lines (an HTTP client would normalise `..` away) against uvicorn."""
    with live_server(create_app(layout["index"])) as base:
        host, port = base.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.putrequest("GET", raw, skip_accept_encoding=True)
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
    assert resp.status in (400, 403, 404), (raw, resp.status)
    assert b"root:" not in body and b"create_app" not in body


def test_writes_need_the_token(layout):
    media = str(layout["media"])
    off = client(layout)
    assert off.post("/api/media", json={"paths": [media]}).status_code == 403
    c = client(layout, token=TOKEN)
    assert c.post("/api/media", json={"paths": [media]}).status_code == 401
    assert c.post("/api/media", json={"paths": [media]}, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert c.post("/api/media", json={"paths": [media]}, headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    assert off.post("/api/detectors", json={"detector": media}).status_code == 403
    assert c.post("/api/detectors", json={"detector": media}).status_code == 401
    c.cookies.set("mmindex_token", TOKEN)  # a cookie never authorises a write (no CSRF)
    assert c.delete("/api/media", params={"path": media}).status_code == 401


def test_write_paths_must_stay_inside_the_roots(layout):
    c = client(layout, token=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    outside = [str(layout["secret"]), str(layout["secret"].parent), "/etc", "/",
               f"{layout['media']}/../outside/secret.jpg", str(layout["media"] / "sub" / "link.jpg")]
    for p in outside:
        assert c.post("/api/media", json={"paths": [p]}, headers=auth).status_code == 403, p
        assert c.delete("/api/media", params={"path": p}, headers=auth).status_code == 403, p
        assert c.post("/api/detectors", json={"detector": p}, headers=auth).status_code == 403, p
    not_a_model = c.post("/api/detectors", json={"detector": str(layout["media"] / "a.jpg")}, headers=auth)
    assert not_a_model.status_code == 400 and "a.jpg" in not_a_model.json()["error"], not_a_model.text
    assert c.post("/api/media", json={"paths": ["media/a.jpg"]}, headers=auth).status_code == 400
    assert c.post("/api/media", json={"paths": [str(layout["media"] / "nope.jpg")]}, headers=auth).status_code == 404
    assert c.post("/api/media", json={"paths": []}, headers=auth).status_code == 422
    r = c.delete("/api/media", params={"path": str(layout["media"] / "b.jpg")}, headers=auth)
    assert r.status_code == 200 and r.json() == {"removed": 1}
    assert c.get(f"/api/segments/{layout['ids']['b']}").status_code == 404


def test_private_reads(layout):
    c = client(layout, token=TOKEN, public_read=False)
    a = layout["ids"]["a"]
    for url in (f"/api/search?like={a}", f"/api/media/{a}", f"/api/segments/{a}/thumbnail", "/api/metrics"):
        assert c.get(url).status_code == 401, url
        assert c.get(url, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200, url
    assert c.get("/api/health").status_code == 200
    c.cookies.set("mmindex_token", TOKEN)  # what the web UI uses, since <img> cannot send headers
    assert c.get(f"/api/media/{a}").status_code == 200


def test_token_is_never_logged_or_shown(layout, caplog):
    caplog.set_level(logging.DEBUG)
    config = ServiceConfig(token=TOKEN)
    assert TOKEN not in repr(config)
    app = create_app(layout["index"], config)
    c = TestClient(app, raise_server_exceptions=False)
    c.post("/api/media", json={"paths": ["/etc"]}, headers={"Authorization": f"Bearer {TOKEN}"})
    c.post("/api/media", json={"paths": ["/etc"]}, headers={"Authorization": f"Bearer {TOKEN}x"})
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(vars(app.state.service.auth))
    assert TOKEN not in c.get("/openapi.json").text and TOKEN not in c.get("/api/metrics").text


def test_body_limits(layout):
    c = client(layout, max_upload_bytes=2000)
    big = c.post("/api/search", files={"image": ("a.jpg", b"\xff" * 1_200_000, "image/jpeg")})
    assert big.status_code == 413 and big.json()["error"]

    def chunks():  # no Content-Length: the limit still holds
        for _ in range(200):
            yield b"x" * 10_000

    chunked = c.post("/api/search", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert chunked.status_code == 413


def test_decompression_bomb_upload(layout):
    buf = io.BytesIO()
    Image.new("L", (12_000, 12_000)).save(buf, "PNG")  # 144 Mpx of zeros, ~150 kB compressed
    r = client(layout).post("/api/search", files={"image": ("bomb.png", buf.getvalue(), "image/png")})
    assert r.status_code == 400 and "too large" in r.json()["error"]


def test_media_content_type_is_never_html(layout, tmp_path):
    evil = tmp_path / "media" / "page.html"
    evil.write_bytes((layout["media"] / "a.jpg").read_bytes())
    index = make_store(tmp_path / "index2", [evil])
    r = TestClient(create_app(index)).get("/api/media/1")
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-security-policy"] == "sandbox" and r.headers["x-content-type-options"] == "nosniff"


def test_no_index_is_a_clear_error(tmp_path):
    from mmindex.errors import StoreError

    with pytest.raises(StoreError, match="no index"):
        create_app(tmp_path / "missing")
    assert not os.path.exists(tmp_path / "missing" / "index.sqlite")


def test_thumbnail_cache_is_written_atomically(layout):
    c = client(layout)
    assert c.get(f"/api/segments/{layout['ids']['a']}/thumbnail").status_code == 200
    names = [p.name for p in Path(layout["index"], "thumbnails").iterdir()]
    assert names == ["1-320.jpg"]  # no temporary file left behind
