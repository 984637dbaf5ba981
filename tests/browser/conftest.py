"""Fixtures of the browser tests: one `judgeloop up --demo` per session, headless Chromium from Debian.

Run with ``pytest -m browser tests/browser`` after ``.ci/install-browser`` (Debian chromium +
the playwright package; never ``playwright install``, which downloads a browser).
Screenshots of every open page land in test-artifacts/browser/ when a scenario fails, with
the servers' logs when the session had failures.
"""

import os
import re
import shutil
import time
from pathlib import Path

import pytest

from tests.browser.support import ARTIFACTS, start_stack, stop_stack, wait_ready

CHROMIUM = Path(os.environ.get("JUDGELOOP_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ACTION_TIMEOUT_MS = 30_000
TIMINGS: dict = {}  # filled by the stack fixture, printed in the terminal summary


def pytest_terminal_summary(terminalreporter):
    if TIMINGS:
        terminalreporter.write_line(f"browser stack timings (s): {TIMINGS}")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    # Keep each phase's report on the test item, for the screenshot fixture's teardown.
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def _failed(node) -> bool:
    return any(getattr(getattr(node, f"rep_{when}", None), "failed", False) for when in ("setup", "call"))


def _slug(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.split("::")[-1])[:120]


@pytest.fixture(scope="session")
def stack(tmp_path_factory, request):
    """`judgeloop up --demo` with fake models, its foundation run done; SIGINT at the end, nothing left."""
    workdir = tmp_path_factory.mktemp("judgeloop-browser")
    started = time.monotonic()
    running = start_stack(workdir)
    try:
        wait_ready(running)
        yield running
    finally:
        left = stop_stack(running)
        running.timings["session"] = round(time.monotonic() - started, 1)
        TIMINGS.update(running.timings)
        if request.session.testsfailed or left:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shutil.copy(running.log_path, ARTIFACTS / "judgeloop-up.log")
            for log in (running.home / "logs").glob("*.log"):
                shutil.copy(log, ARTIFACTS / log.name)
    assert not left, f"processes still mention {running.home} after Ctrl-C:\n" + "\n".join(left)


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - environment problem, not a test result
        pytest.fail("playwright is not installed: run .ci/install-browser")
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: run .ci/install-browser (Debian chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, request):
    """A fresh browser profile per scenario (first-visit overlays included); screenshots on failure."""
    from tests.browser.ui import install_overlay_handlers

    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    first = context.new_page()
    install_overlay_handlers(first)
    context.on("page", install_overlay_handlers)
    try:
        yield first
    finally:
        if _failed(request.node) or os.environ.get("JUDGELOOP_BROWSER_SCREENSHOTS") == "always":
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            for index, open_page in enumerate(context.pages):
                target = ARTIFACTS / f"{_slug(request.node.nodeid)}-{index}.png"
                try:
                    open_page.screenshot(path=str(target), full_page=True)
                    (target.with_suffix(".url.txt")).write_text(open_page.url + "\n")
                except Exception as exc:  # a crashed page must not hide the test's own failure
                    (target.with_suffix(".error.txt")).write_text(f"screenshot failed: {exc}\n")
        context.close()
