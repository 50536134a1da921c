"""The web UI in a real browser: Playwright driving Debian's Chromium (/usr/bin/chromium), headless."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required"]

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason="browser tests need Debian's chromium: apt-get install chromium")


@pytest.fixture(scope="module")
def base_url(service_index):
    from mmindex.search.requests import SearchRequest
    from mmindex.service import create_app
    from tests.service.conftest import live_server

    app = create_app(service_index)
    # Load the arrays (and any text model a query needs) before a browser waits on the first search.
    app.state.service.search(SearchRequest(concept=("cat",), k=1))
    with live_server(app) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture()
def page(browser, base_url):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(base_url + "/")
    yield pg
    context.close()
    assert not errors, errors


def all_thumbnails_loaded(pg) -> bool:
    return pg.evaluate("() => [...document.querySelectorAll('#grid img')].every(i => i.complete && i.naturalWidth > 0)")


def test_type_a_query_and_see_thumbnails(page):
    page.fill("#q", "tabb")
    page.wait_for_selector("#suggest li[data-name='tabby']")  # concept autocomplete
    page.click("#suggest li[data-name='tabby']")
    assert page.input_value("#q") == "tabby"
    page.press("#q", "Enter")
    page.wait_for_selector("#grid li.card img")
    page.wait_for_function("() => [...document.querySelectorAll('#grid img')].every(i => i.complete)")
    assert all_thumbnails_loaded(page)
    first = page.locator("#grid li.card").first
    assert "chelsea.jpg" in first.locator(".name").inner_text()
    assert "concept=tabby" in page.url
    assert page.locator("#grid li.card").count() == 13


def test_more_like_this(page):
    page.fill("#q", "espresso")
    page.press("#q", "Enter")
    page.wait_for_selector("#grid li.card")
    first = page.locator("#grid li.card").first
    segment = first.get_attribute("data-segment")
    first.locator("button.more").click()
    page.wait_for_url(f"**like={segment}**")
    page.wait_for_selector("#chips .chip")
    page.wait_for_function(f"() => document.querySelector('#grid li.card')?.dataset.segment === '{segment}'")
    assert page.locator("#grid li.card").count() > 1


def test_play_a_video_hit_from_its_shot(page):
    page.fill("#q", "mountain bike")
    page.press("#q", "Enter")
    video_card = page.locator("#grid li.card[data-kind='video']").nth(1)
    video_card.wait_for()
    video_card.locator(".thumb").click()
    page.wait_for_selector("#viewer[open] video")
    start = page.evaluate("() => parseFloat(document.querySelector('#viewer video').src.split('#t=')[1])")
    assert start > 0
    page.wait_for_function("() => { const v = document.querySelector('#viewer video');"
                           " return v.readyState >= 2 && v.currentTime > 0; }", timeout=15000)
    t = page.evaluate("() => document.querySelector('#viewer video').currentTime")
    assert t >= start - 0.1  # it started at the shot, not at 0
    assert page.evaluate("() => document.querySelector('#viewer video').error") is None
    page.click("#viewer-close")


def test_paging_and_feedback(page):
    page.goto(page.url.split("?")[0] + "?concept=bicycle")
    page.wait_for_selector("#grid li.card")
    page.locator("#grid li.card .vote.up").first.click()
    page.locator("#grid li.card .vote.down").nth(1).click()
    assert page.locator("#feedbackcount").inner_text() == "2 marked"
    page.click("#refine")
    page.wait_for_function("() => !document.querySelector('#status').textContent.startsWith('Refining')")
    status = page.locator("#status").inner_text()
    health = page.evaluate("async () => (await (await fetch('/api/health')).json()).features.feedback")
    if health:
        assert "Hits" in status and page.locator("#grid li.card").count() == 11  # judged hits are not shown again
    else:
        assert "not supported" in status  # the documented 501


def test_phone_width(browser, base_url):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    pg = context.new_page()
    pg.goto(base_url + "/?concept=cat")
    pg.wait_for_selector("#grid li.card img")
    assert pg.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    columns = pg.evaluate(
        "() => getComputedStyle(document.querySelector('#grid')).gridTemplateColumns.split(' ').length")
    assert columns == 2
    context.close()


def test_screenshot_helper_writes_a_png(browser, base_url, tmp_path):
    from bench.ui_screenshot import screenshot

    out = screenshot(browser, base_url, tmp_path / "ui.png", query="cat")
    assert Path(out).stat().st_size > 10_000
