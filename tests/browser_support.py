"""What the browser tests share: Debian's Chromium driven by Playwright, a fresh tab, and page checks.

A test module imports the fixtures it uses (``from tests.browser_support import chromium, tab``).
"""
import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
# The machine has no network: keep Chromium from reaching for it.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
# `SLUICE_SCREENSHOTS=1 make test` refreshes the pictures in docs/; otherwise they go to a temporary folder,
# so that running the tests leaves the checkout as it was.
DOC_SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
DESKTOP = {"width": 1366, "height": 800}
PHONE = {"width": 390, "height": 844}
SUBMISSION_URL = re.compile(r"/submissions/[0-9a-f-]{36}/$")

@pytest.fixture(scope="module")
def chromium():
    # A missing browser is a broken test machine, not a reason to skip: .ci/run installs it.
    assert os.path.exists(CHROMIUM), f"no Chromium at {CHROMIUM}: apt-get install chromium"
    # Playwright's sync API runs an event loop in this thread, which Django's ORM would refuse to be called beside.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield browser
            browser.close()


@pytest.fixture
def tab(chromium):
    """A fresh page at desktop size. (Not pytest-playwright's ``page``: its Playwright lives for the whole
    session, and its event loop would stay running beside every later test module.)"""
    context = chromium.new_context(viewport=DESKTOP)
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def watch_policy(tab):
    """Collect every Content-Security-Policy violation the browser reports: the DOM event and the console line."""
    seen = []
    tab.add_init_script("""document.addEventListener("securitypolicyviolation", (event) => {
        console.error(`policy violation: ${event.violatedDirective} ${event.blockedURI} at ${event.sourceFile}:${event.lineNumber}`);
    });""")
    tab.on("console", lambda message: seen.append(f"{tab.url}: {message.text}") if "polic" in message.text.lower() else None)
    return seen


def visit(tab, url):
    response = tab.goto(url)
    assert response.ok and "script-src 'self'" in response.headers.get("content-security-policy", ""), url
    return response


def fits(tab):
    """Whether the page is no wider than the window: nothing scrolls sideways."""
    return tab.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
