"""Issue 21, compositional text: "a cat and a daisy" on composites of real photos (the bundled sample photos, two
halves side by side). Images holding both concepts rank above images holding one; `--explain` shows the parse.
Through the real CLI and the real HTTP API (the web UI: tests/service/test_service_browser.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageOps

from tests.conftest import names, run_cli, search_json

# (query, photo of the first concept, photo of the second): chelsea is a tabby cat, flower a daisy, coffee an
# espresso, china a palace (skimage and sklearn sample photos)
QUERIES = [("a cat and a daisy", "chelsea", "flower"),
           ("A photo of a motorcycle next to some flowers", "motorcycle", "flower"),
           ("a palace with a cat", "china", "chelsea")]
FILLERS = ["rocket", "astronaut", "coffee"]  # photos of neither concept


@pytest.fixture(scope="module")
def composites(tmp_path_factory) -> Path:
    """An index of 2-photo composites: for each query, both photos (either side) and each with every filler."""
    from mmindex.samples import photo_array

    folder = tmp_path_factory.mktemp("composites")
    names_used = {p for _, a, b in QUERIES for p in (a, b)} | set(FILLERS)
    halves = {n: ImageOps.fit(Image.fromarray(photo_array(n)).convert("RGB"), (224, 448)) for n in names_used}
    pairs = {(a, b) for _, a, b in QUERIES} | {(b, a) for _, a, b in QUERIES}
    pairs |= {(x, f) for _, a, b in QUERIES for x in (a, b) for f in FILLERS}
    for left, right in sorted(pairs):
        im = Image.new("RGB", (448, 448))
        im.paste(halves[left], (0, 0))
        im.paste(halves[right], (224, 0))
        im.save(folder / f"{left}+{right}.jpg", quality=90)
    index = folder / "index"
    run_cli("add", str(folder), "--index", str(index), "-q")
    return index


def test_images_holding_both_concepts_rank_first_and_explain_shows_the_parse(composites):
    for query, a, b in QUERIES:
        doc = search_json(composites, "--text", query, "--explain", "-k", "100")
        ranked = names(doc)
        both = {f"{a}+{b}.jpg", f"{b}+{a}.jpg"}
        assert set(ranked[:2]) == both, (query, ranked[:6])
        parse = doc["explain"]["criteria"][0]["parse"]
        assert parse["operator"] == "AND" and len(parse["parts"]) == 2, parse
        assert all(p["concepts"] for p in parse["parts"])
    # the table shows the parse too
    out = run_cli("search", "--index", str(composites), "--text", "a cat and a daisy", "--explain", "-k", "2").stdout
    assert 'read as "cat and a daisy"  → (cat: cat (0.' in out and ")) AND (daisy: daisy (" in out, out


def test_one_phrase_is_not_split(composites):
    doc = search_json(composites, "--text", "a cat", "--explain", "-k", "3")
    parse = doc["explain"]["criteria"][0]["parse"]
    assert "parts" not in parse and parse["read_as"] == "cat" and parse["named"] == "n02121620"


def test_http_api_explains_the_parse(composites):
    from fastapi.testclient import TestClient

    from mmindex.service import create_app

    client = TestClient(create_app(composites), raise_server_exceptions=False)
    r = client.get("/api/search", params={"text": "a cat and a daisy", "explain": "true", "k": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert {Path(h["path"]).name for h in body["hits"][:2]} == {"chelsea+flower.jpg", "flower+chelsea.jpg"}
    parse = body["explanation"]["criteria"][0]["parse"]
    assert parse["operator"] == "AND" and [p["text"] for p in parse["parts"]] == ["cat", "daisy"]
