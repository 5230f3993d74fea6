"""The site in a real headless Chromium, at desktop and phone widths.

Screenshots are kept in tests/artifacts/ (not in git). CI installs Debian's chromium;
elsewhere the tests skip when it is missing.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import ROOT, Project, real_config

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = ROOT / "tests" / "artifacts"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if CHROMIUM is None and os.environ.get("CI"):
    pytest.fail("CI must have Debian's chromium: .ci/run installs it", pytrace=False)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield instance
        instance.close()


@pytest.fixture(scope="module")
def public(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    shutil.copytree(ROOT / "seeds", root / "seeds")
    (root / "config.toml").write_text(real_config(), encoding="utf-8")
    Project(root).digest("build")
    return root / "public"


PAGES = [
    ("index.html", "Hoạt động của lãnh đạo Bộ Y tế", "Tin mới nhất"),
    ("officials/dao-hong-lan.html", "Đào Hồng Lan — Bộ trưởng Bộ Y tế", "Chăm sóc sức khỏe"),
    (
        "entries/ee07bbc0-5aba-5502-98ab-818e9811aabf.html",
        "Bộ trưởng Bộ Y tế Đào Hồng Lan: Chăm sóc sức khỏe nhân dân toàn diện",
        "Xin trân trọng cảm ơn Bộ trưởng!",
    ),
]


@pytest.mark.parametrize(("width", "height"), [(1280, 900), (390, 844)], ids=["desktop", "phone"])
@pytest.mark.parametrize(
    ("path", "heading", "text"), PAGES, ids=[p[0].split("/")[0] for p in PAGES]
)
def test_page_loads_without_errors_and_shows_its_titles(
    browser, public: Path, path: str, heading: str, text: str, width: int, height: int
) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": width, "height": height})
    problems: list[str] = []
    page.on(
        "console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None
    )
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
    page.goto((public / path).resolve().as_uri())
    assert page.locator("h1").inner_text().startswith(heading)
    assert text in page.locator("main").inner_text()
    assert problems == []
    # Nothing wider than the viewport: readable on a phone without sideways scrolling.
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    ARTIFACTS.mkdir(exist_ok=True)
    name = f"{path.replace('/', '_')}-{width}.png"
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)
    page.close()
