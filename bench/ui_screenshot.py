"""Screenshots of the web UI for the docs, taken with Playwright and Debian's Chromium.

    .venv/bin/python -m mmindex.demo            # writes out/demo/index
    .venv/bin/python bench/ui_screenshot.py [--index out/demo/index] [--out docs/img]

Starts a server on 127.0.0.1 over the index, searches, and writes ui.png (1280 px wide) and
ui-phone.png (390 px, a phone).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def screenshot(browser, base_url: str, out: Path, query: str = "cat", width: int = 1280, height: int = 860,
               mobile: bool = False) -> Path:
    """Search `query` in the UI and save a screenshot of the viewport once every thumbnail has loaded."""
    context = browser.new_context(viewport={"width": width, "height": height}, is_mobile=mobile, has_touch=mobile)
    page = context.new_page()
    page.goto(f"{base_url}/")
    page.fill("#q", query)
    page.press("#q", "Enter")
    page.wait_for_selector("#grid li.card img")
    page.wait_for_function("() => [...document.querySelectorAll('#grid img')].every(i => i.complete)")
    page.screenshot(path=str(out))
    context.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", default="out/demo/index")
    ap.add_argument("--out", default="docs/img")
    ap.add_argument("--query", default="bicycle")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from playwright.sync_api import sync_playwright

    from mmindex.service import create_app
    from tests.service.conftest import live_server

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with live_server(create_app(args.index)) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS, headless=True)
        print(screenshot(browser, base, out / "ui.png", args.query))
        print(screenshot(browser, base, out / "ui-phone.png", args.query, 390, 844, mobile=True))
        browser.close()


if __name__ == "__main__":
    main()
