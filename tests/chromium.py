"""Headless Chromium for the page and mail tests: Debian's chromium driven by Playwright, and
axe-core's WCAG 2.1 A and AA checks.

Playwright's sync API runs an event loop in the test's thread while it is open, so no
asyncio.run() can happen inside `launched()`: open it for the browser part of a test only."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import axe_playwright_python
import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# axe-core, as the axe-playwright-python package ships it.
AXE = Path(axe_playwright_python.__file__).with_name("axe.min.js")
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"  # screenshots, not in git

if CHROMIUM is None and os.environ.get("CI"):
    pytest.fail("CI must have Debian's chromium: .ci/run installs it", pytrace=False)
# For the modules whose every test needs it; elsewhere the `browser` fixture skips.
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")


def accessibility_violations(page: Any) -> list[str]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags}})",
        WCAG_21_AA,
    )
    return [
        f"{v['id']}: {v['help']} ({len(v['nodes'])}× e.g. {v['nodes'][0]['target']})"
        for v in result["violations"]
    ]


@contextmanager
def launched() -> Iterator[Any]:
    """Headless Chromium, closed on leaving; the test is skipped where it is not installed."""
    from playwright.sync_api import sync_playwright

    if CHROMIUM is None:
        pytest.skip("chromium is not installed")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()
