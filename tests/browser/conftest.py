"""Headless Chromium for the learning pages' tests, driven by Playwright through Debian's chromium.

Every page opened through ``open_page`` fails the test on any script error (``pageerror``), any console
error, and any request that is not to 127.0.0.1, ``file:`` or ``data:``. Without Chromium or Playwright
the tests skip, except in CI (``CI`` set), where that is an error: .ci/run installs both.
"""
import os
import shutil
import urllib.parse

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _missing():
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install playwright)"
    if not os.path.exists(CHROMIUM):
        return "Chromium is not installed (apt-get install chromium)"
    return None


@pytest.fixture(scope="session")
def browser():
    why = _missing()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests cannot run in CI: {why}; .ci/run should have installed it")
        pytest.skip(why)
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-background-networking"])
        yield b
        b.close()


def _local(url):
    parts = urllib.parse.urlsplit(url)
    return parts.scheme in ("file", "data") or (parts.scheme == "http" and parts.hostname == "127.0.0.1")


@pytest.fixture
def open_page(browser):
    """open_page(url) -> a Playwright page, loaded, its data ready (body[data-ready])."""
    problems, pages = [], []

    def opener(url, ready=True):
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("console", lambda m: problems.append(f"console error: {m.text}") if m.type == "error" else None)
        page.on("request", lambda r: None if _local(r.url) else problems.append(f"request leaves the machine: {r.url}"))
        page.goto(url)
        if ready:
            page.wait_for_selector("body[data-ready='1']", timeout=10000)
        pages.append(page)
        return page

    yield opener
    for page in pages:
        page.close()
    assert not problems, problems
