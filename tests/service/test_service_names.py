"""The API and the web UI over media whose names are not UTF-8 (adding them over HTTP: tests/index/test_names.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mmindex.service import create_app
from tests.service.conftest import live_server, make_store, write_jpeg
from tests.service.test_service_browser import ARGS, CHROMIUM


@pytest.fixture(scope="module")
def names(tmp_path_factory) -> tuple[Path, dict[bytes, Path]]:
    """An index of three JPEGs: one in a non-UTF-8 folder, one with a non-UTF-8 name, one plain."""
    root = os.fsencode(tmp_path_factory.mktemp("names"))
    raw = [root + b"/caf\xe9/a.jpg", root + b"/good/na\xefve.jpg", root + b"/good/plain.jpg"]
    files = {r: write_jpeg(Path(os.fsdecode(r)), color=(40 * i, 90, 200)) for i, r in enumerate(raw)}
    return make_store(Path(os.fsdecode(root + b"/idx")), list(files.values())), files


def test_search_json_escapes_the_names_and_the_media_are_served(names):
    index, files = names
    client = TestClient(create_app(index), raise_server_exceptions=False)
    r = client.get("/api/search", params={"concept": "entity", "k": 10})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json", r.text
    assert b"\\udce9" in r.content  # JSON escapes, as `mmindex search --json` writes them
    hits = {os.fsencode(h["path"]): h["segment_id"] for h in r.json()["hits"]}
    assert set(hits) == set(files)
    for raw, path in files.items():
        segment = client.get(f"/api/segments/{hits[raw]}")
        assert segment.status_code == 200 and os.fsencode(segment.json()["path"]) == raw
        media = client.get(f"/api/media/{hits[raw]}")
        assert media.status_code == 200 and media.content == path.read_bytes()
        thumb = client.get(f"/api/segments/{hits[raw]}/thumbnail")
        assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"
    assert client.get("/api/health").status_code == 200


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="browser tests need Debian's chromium")
def test_the_web_ui_shows_the_names_escaped(names):
    sync_api = pytest.importorskip("playwright.sync_api")
    index, _ = names
    with live_server(create_app(index)) as url, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url + "/?concept=entity")
        page.wait_for_selector("#grid li.card img")
        page.wait_for_function("() => [...document.querySelectorAll('#grid img')].every(i => i.complete)")
        shown = sorted(page.locator("#grid li.card .name").all_inner_texts())
        assert shown == ["a.jpg", "na\\xefve.jpg", "plain.jpg"]
        assert page.evaluate("() => [...document.querySelectorAll('#grid img')].every(i => i.naturalWidth > 0)")
        page.locator("#grid li.card", has_text="na\\xefve.jpg").locator(".thumb").click()
        page.wait_for_selector("#viewer[open] img")
        assert "/good/na\\xefve.jpg" in page.locator("#viewer-title").inner_text()
        browser.close()
        assert not errors, errors
