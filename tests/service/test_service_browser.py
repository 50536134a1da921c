"""The web UI in a real browser: Playwright driving Debian's Chromium (/usr/bin/chromium), headless."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
TOKEN = "browser-teach-token"
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


@contextmanager
def open_page(browser, url: str):
    """A fresh page at `url`; on leaving, no script error may have happened on it."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    # Playwright waits 30 s by default; beside other CPU-heavy jobs on two cores the first request that loads
    # a model (autocomplete's text mapping) has taken longer. A wait that is too short only fails slowly.
    context.set_default_timeout(120_000)
    pg = context.new_page()
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(url)
    yield pg
    context.close()
    assert not errors, errors


@pytest.fixture()
def page(browser, base_url):
    with open_page(browser, base_url + "/") as pg:
        yield pg


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


def test_words_show_how_they_were_understood(page):
    """Issue 21: a compositional text query, typed in words mode, shows its parse: the parts joined by AND."""
    page.wait_for_selector("#mode:not([hidden])")
    page.select_option("#mode", "text")
    page.fill("#q", "A photo of a cat and a motorcycle")
    page.press("#q", "Enter")
    page.wait_for_function("() => document.querySelector('#status').textContent.startsWith('Hits')")
    understood = page.locator("#status .explanation").inner_text()
    assert "“A photo of a cat and a motorcycle” → (cat 0." in understood, understood
    assert ") AND (motorcycle " in understood, understood
    assert "chelsea.jpg" in page.locator("#grid li.card").first.inner_text() or \
        "motorcycle.png" in page.locator("#grid li.card").first.inner_text()


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
                           " return v.readyState >= 2 && v.currentTime > 0; }", timeout=60000)
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
    assert page.locator("#save").is_hidden()  # this server has no token: nothing can be saved
    page.click("#refine")
    page.wait_for_function("() => !document.querySelector('#status').textContent.startsWith('Refining')")
    status = page.locator("#status").inner_text()
    health = page.evaluate("async () => (await (await fetch('/api/health')).json()).features.feedback")
    if health:
        assert "Hits" in status and page.locator("#grid li.card").count() == 11  # judged hits are not shown again
    else:
        assert "not supported" in status  # the documented 501


@pytest.fixture()
def teach_url(service_copy):
    """A server with a token, on a private copy of the index: saving a concept writes to it."""
    from mmindex.config import ServiceConfig
    from mmindex.search.requests import SearchRequest
    from mmindex.service import create_app
    from tests.service.conftest import live_server

    app = create_app(service_copy, ServiceConfig(token=TOKEN))
    app.state.service.search(SearchRequest(concept=("cat",), k=1))
    with live_server(app) as url:
        yield url


def card_ids(pg) -> list[int]:
    return [int(i) for i in pg.eval_on_selector_all("#grid li.card", "cards => cards.map(c => c.dataset.segment)")]


def test_save_as_concept_then_search_it_and_label_more(browser, teach_url):
    import httpx

    from tests.service.conftest import segments_by_kind

    with httpx.Client(base_url=teach_url, timeout=60) as client:
        shots, photos = segments_by_kind(client)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    # Playwright waits 30 s by default; beside other CPU-heavy jobs on two cores the first request that loads
    # a model (autocomplete's text mapping) has taken longer. A wait that is too short only fails slowly.
    context.set_default_timeout(120_000)
    pg = context.new_page()
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(teach_url + "/?concept=bicycle")
    pg.wait_for_selector("#grid li.card")
    assert sorted(card_ids(pg)) == sorted(shots + photos)
    # judge: three shots of the clip are good hits, three photos wrong ones
    for i in shots[0::2]:
        pg.click(f"#grid li.card[data-segment='{i}'] .vote.up")
    for i in photos[1::2]:
        pg.click(f"#grid li.card[data-segment='{i}'] .vote.down")
    assert pg.inner_text("#feedbackcount") == "6 marked"
    pg.click("#save")
    assert pg.is_visible("#savedialog") and pg.is_visible("#token")  # the token is asked for the first time
    assert pg.inner_text("#savesummary").startswith("3 marked good and 3 marked wrong")
    pg.fill("#conceptname", "my bikes")
    pg.fill("#token", "not-the-token")
    pg.click("#saveok")
    pg.wait_for_function("() => document.querySelector('#saveerror').textContent === 'missing or wrong token'")
    pg.fill("#token", TOKEN)
    pg.click("#saveok")
    # saved, then searched by its name: every shot of the clip above every photo
    pg.wait_for_url("**concept=my+bikes**")
    pg.wait_for_function("() => document.querySelector('#status').textContent.startsWith('Hits')")
    assert set(card_ids(pg)[:6]) == set(shots)
    assert pg.inner_text("#taught") == "Saved “my bikes” (version 1) from 3 good and 3 wrong."
    assert pg.is_hidden("#feedbackbar")  # the marks went into the concept
    # later, as a user would: the autocomplete offers the concept, and searching it ranks the same
    pg.goto(teach_url + "/")
    pg.fill("#q", "my bi")
    pg.click("#suggest li[data-name='my bikes']")
    pg.press("#q", "Enter")
    pg.wait_for_function("() => document.querySelector('#status').textContent.startsWith('Hits')")
    assert set(card_ids(pg)[:6]) == set(shots)
    # label more: the segments it was not shown, to judge; judge two, save again (no token asked this time)
    pg.wait_for_selector("#teachbar:not([hidden])")
    pg.click("#labelmore")
    pg.wait_for_selector("#grid[data-proposals='my bikes']")
    proposed = card_ids(pg)
    assert sorted(proposed) == sorted(set(shots + photos) - set(shots[0::2]) - set(photos[1::2]))
    pg.click(f"#grid li.card[data-segment='{shots[1]}'] .vote.up")
    pg.click(f"#grid li.card[data-segment='{photos[0]}'] .vote.down")
    pg.click("#save")
    assert pg.input_value("#conceptname") == "my bikes" and pg.is_hidden("#token")
    pg.click("#saveok")
    pg.wait_for_function("() => document.querySelector('#taught').textContent.includes('version 2')")
    assert pg.inner_text("#taught") == "Saved “my bikes” (version 2) from 4 good and 4 wrong."
    pg.wait_for_function("() => document.querySelector('#status').textContent.startsWith('Hits')")
    assert set(card_ids(pg)[:6]) == set(shots)
    context.close()
    assert not errors, errors


def test_hits_wait_for_teach_js_when_it_comes_late(browser, base_url):
    """teach.js is loaded after app.js; showing hits calls into it. Held back until the search has answered, it
    must still run first (no ReferenceError), and the hits still show."""
    import time

    context = browser.new_context()
    pg = context.new_page()
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))

    def late(route):
        time.sleep(1.5)  # longer than the health check and a search take on this index
        route.continue_()

    pg.route("**/static/teach.js", late)
    pg.goto(base_url + "/?concept=cat")
    pg.wait_for_function("() => document.querySelector('#status').textContent.startsWith('Hits')")
    assert pg.locator("#grid li.card").count() == 13
    context.close()
    assert not errors, errors


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


@pytest.fixture(scope="module")
def temporal_url(temporal_index):
    from mmindex.search.requests import SearchRequest
    from mmindex.service import create_app
    from tests.service.conftest import live_server

    app = create_app(temporal_index)
    app.state.service.search(SearchRequest(concept=("espresso",), then=("cat",), k=1))
    with live_server(app) as url:
        yield url


def test_a_temporal_query_shows_its_chain_and_one_hit_per_video(browser, temporal_url):
    with open_page(browser, temporal_url + "/") as pg:
        pg.wait_for_function("() => document.querySelector('#status').textContent.startsWith('Type')")  # set up
        pg.fill("#q", "espresso")
        pg.click("#addthen")
        pg.fill("#thenlist .then", "cat")
        pg.press("#thenlist .then", "Enter")  # a step's input submits the search as the query's does
        pg.wait_for_selector("#grid li.card .chain img")
        assert "concept=espresso" in pg.url and "then=cat" in pg.url
        first = pg.locator("#grid li.card").first
        assert "forward.mp4" in first.locator(".name").inner_text()
        shots = pg.evaluate("async () => (await (await fetch('/api/search?concept=espresso&then=cat&k=1')).json())"
                            ".hits[0].then.map(c => String(c.segment_id))")
        assert first.locator(".chain .chainshot").evaluate_all("bs => bs.map(b => b.dataset.segment)") == shots
        pg.wait_for_function("() => [...document.querySelectorAll('.chain img')]"
                             ".every(i => i.complete && i.naturalWidth)")
        assert pg.is_visible("#withinrow")
        first.locator(".chain .chainshot").first.click()  # the chain's shot opens in the viewer, from its start
        pg.wait_for_selector("#viewer[open] video")
        assert "#t=2.000," in pg.evaluate("() => document.querySelector('#viewer video').src")
        pg.click("#viewer-close")
        # one hit per video: the toggle re-runs the query; a window of 20 s reaches gap.mp4's cat too
        pg.fill("#within", "20")
        pg.check("#byvideo")
        pg.wait_for_function("() => location.search.includes('group=video')")
        pg.wait_for_function("() => document.querySelectorAll('#grid li.card .matches').length === 2")
        names = pg.locator("#grid li.card .name").all_inner_texts()
        assert names == ["forward.mp4", "gap.mp4"] and "within=20" in pg.url
        # the page is a link: opened again, the steps, window and toggle come back
        pg.goto(pg.url)
        pg.wait_for_selector("#grid li.card .chain")
        assert pg.input_value("#thenlist .then") == "cat" and pg.input_value("#within") == "20"
        assert pg.is_checked("#byvideo")
        # a window that is not a positive number: the server's message, no hits
        pg.fill("#within", "0")
        pg.press("#thenlist .then", "Enter")
        pg.wait_for_function("() => document.querySelector('#status').classList.contains('error')")
        assert "within" in pg.inner_text("#status")
