"""In-process API tests over a real index (the sample photos and bikes.mp4)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from mmindex.config import ServiceConfig
from mmindex.service import create_app
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def client(service_index) -> TestClient:
    return TestClient(create_app(service_index), raise_server_exceptions=False)


def hits(client, **params) -> list[dict]:
    r = client.get("/api/search", params=params)
    assert r.status_code == 200, r.text
    return r.json()["hits"]


def test_health_and_features(client):
    body = client.get("/api/health").json()
    assert body["status"] == "ok" and body["segments"] == 7 + 6
    assert body["features"]["upload"] is True and body["features"]["write"] is False


def test_search_returns_the_cli_json(client, service_index):
    cli = json.loads(run_cli("search", "--index", str(service_index), "--concept", "espresso", "-k", "5",
                             "--json").stdout)
    r = client.get("/api/search", params={"concept": "espresso", "k": 5})
    assert r.status_code == 200
    assert r.json()["hits"] == cli["hits"]
    assert Path(cli["hits"][0]["path"]).name == "coffee.jpg"


def test_explain_and_fusion(client):
    top = hits(client, concept=["cat^2", "espresso"], explain="true", k=3)
    assert {"cat^2", "espresso"} <= set(top[0]["why"])
    assert "why" not in hits(client, concept="cat", k=1)[0]


def test_paging(client):
    everything = hits(client, concept="bicycle", k=13)
    first = client.get("/api/search", params={"concept": "bicycle", "k": 5}).json()
    second = client.get("/api/search", params={"concept": "bicycle", "k": 5, "offset": first["next_offset"]}).json()
    assert [h["segment_id"] for h in first["hits"] + second["hits"]] == [h["segment_id"] for h in everything[:10]]
    last = client.get("/api/search", params={"concept": "bicycle", "k": 5, "offset": 10}).json()
    assert len(last["hits"]) == 3 and last["next_offset"] is None


def test_more_like_this(client):
    cat = hits(client, concept="tabby", k=1)[0]
    similar = hits(client, like=str(cat["segment_id"]), k=3)
    assert similar[0]["segment_id"] == cat["segment_id"] and similar[0]["score"] == pytest.approx(1, abs=1e-3)
    weighted = hits(client, like=f"{cat['segment_id']}^0.5", concept="espresso", k=2)
    assert len(weighted) == 2


@pytest.mark.parametrize("params", [
    {"concept": "dgo"}, {"concept": "cat AND"}, {"concept": ""}, {"concept": "cat", "k": 0},
    {"concept": "cat", "k": "abc"}, {"concept": "cat", "k": 10**9}, {"concept": "cat", "offset": -1},
    {"like": "abc"}, {"like": "/etc/passwd"}, {"like": "../1"}, {"like": "1^0"},
    {"like": "99999999999999999999"}, {"concept": "cat", "normalise": "bogus"}, {"concept": "cat", "explain": "maybe"},
    {"concept": "x" * 600}, {"concept": "cat^-1"}, {"concept": "(((("},
])
def test_malformed_queries_get_a_json_4xx(client, params):
    r = client.get("/api/search", params=params)
    assert 400 <= r.status_code < 500, (params, r.status_code, r.text)
    assert r.headers["content-type"] == "application/json" and r.json()["error"]
    assert "Traceback" not in r.text


def test_empty_query_and_unknown_example(client):
    empty = client.get("/api/search").json()
    assert empty["hits"] == [] and "empty query" in empty["message"]
    assert client.get("/api/search", params={"like": "99999999"}).status_code == 404


def test_unknown_concept_suggests(client):
    body = client.get("/api/search", params={"concept": "dgo"}).json()
    assert "dog" in body["suggestions"]


def test_text_query_needs_engine_support(client):
    r = client.get("/api/search", params={"text": "a cat on a sofa"})
    if client.get("/api/health").json()["features"]["text"]:
        assert r.status_code == 200 and r.json()["hits"]
    else:
        assert r.status_code == 501 and "not supported" in r.json()["error"]


def test_feedback_endpoint(client):
    r = client.post("/api/feedback", json={"concept": ["cat"], "positive": [1], "negative": [2]})
    if client.get("/api/health").json()["features"]["feedback"]:
        assert r.status_code == 200
    else:
        assert r.status_code == 501 and r.json()["error"]


def test_segment_details_and_missing(client):
    video = [h for h in hits(client, concept="bicycle", k=13) if h["kind"] == "video"][0]
    d = client.get(f"/api/segments/{video['segment_id']}").json()
    assert d["kind"] == "video" and d["media_url"].endswith(f"#t={d['start']:.3f},{d['end']:.3f}")
    assert client.get("/api/segments/999999").status_code == 404
    assert client.get("/api/segments/abc").status_code == 404
    assert client.get(f"/api/segments/{2**70}").status_code == 404


def test_thumbnails_images_and_video_shots(client, service_index):
    results = hits(client, concept="bicycle", k=13)
    photo = [h for h in results if h["kind"] == "image"][0]
    shots = [h for h in results if h["kind"] == "video"][:2]
    images = {}
    for h in [photo, *shots]:
        r = client.get(f"/api/segments/{h['segment_id']}/thumbnail")
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        img = Image.open(io.BytesIO(r.content))
        assert max(img.size) <= 320
        images[h["segment_id"]] = img.convert("L").resize((32, 32))
        assert (service_index / "thumbnails" / f"{h['segment_id']}-320.jpg").is_file()  # cached
    a, b = (images[h["segment_id"]] for h in shots)
    assert a.tobytes() != b.tobytes()  # each shot's own frame


def test_media_range_requests(client):
    video = [h for h in hits(client, concept="bicycle", k=13) if h["kind"] == "video"][0]
    url = f"/api/media/{video['segment_id']}"
    data = Path(video["path"]).read_bytes()
    full = client.get(url)
    assert full.status_code == 200 and full.content == data and full.headers["content-type"] == "video/mp4"
    assert full.headers["accept-ranges"] == "bytes"
    part = client.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    assert client.get(url, headers={"Range": "bytes=-50"}).content == data[-50:]
    assert client.get(url, headers={"Range": f"bytes={len(data) + 10}-"}).status_code == 416
    assert client.head(url).status_code == 200


def test_concept_autocomplete(client):
    names = [c["name"] for c in client.get("/api/concepts", params={"q": "tabb"}).json()["concepts"]]
    assert names[0] == "tabby"
    assert len(client.get("/api/concepts", params={"limit": 3}).json()["concepts"]) == 3
    assert client.get("/api/concepts", params={"limit": 0}).status_code == 422


def test_upload_an_example(client, sample_photos):
    with Image.open(sample_photos / "chelsea.jpg") as im:
        buf = io.BytesIO()
        im.crop((60, 20, 400, 280)).save(buf, "JPEG")
    r = client.post("/api/search", files={"image": ("q.jpg", buf.getvalue(), "image/jpeg")}, data={"k": "3"})
    assert r.status_code == 200, r.text
    assert Path(r.json()["hits"][0]["path"]).name == "chelsea.jpg"
    bad = client.post("/api/search", files={"image": ("q.jpg", b"not an image", "image/jpeg")})
    assert bad.status_code == 400 and "image" in bad.json()["error"]
    assert client.post("/api/search").status_code == 422


def test_upload_limits(service_index):
    small = TestClient(create_app(service_index, ServiceConfig(max_upload_bytes=1000, max_upload_pixels=10_000)))
    img = io.BytesIO()
    Image.new("RGB", (200, 200)).save(img, "PNG")  # 40,000 pixels, a few hundred bytes
    r = small.post("/api/search", files={"image": ("a.png", img.getvalue(), "image/png")})
    assert r.status_code == 400 and "too large" in r.json()["error"]
    big = small.post("/api/search", files={"image": ("a.bin", b"\0" * 5000, "image/png")})
    assert big.status_code == 413


def test_metrics_count_queries(client):
    before = client.get("/api/metrics").json()
    hits(client, concept="cat")
    after = client.get("/api/metrics").json()
    assert after["queries"] == before["queries"] + 1 and after["requests"] > before["requests"]
    assert after["search_latency"]["p50_ms"] > 0 and after["index"]["segments"] == 13
    assert after["index"]["disk_bytes"] > 0


def test_web_ui_and_openapi(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    for asset in ("/static/app.js", "/static/style.css"):
        assert client.get(asset).status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/api/search", "/api/media/{segment_id}", "/api/concepts", "/api/feedback"} <= set(spec["paths"])
    unknown = client.get("/api/nothing-here")
    assert unknown.status_code == 404 and unknown.json()["error"]
