"""The site, as the running daemon serves it, in a real headless Chromium at desktop and phone
widths: no errors, nothing wider than the screen, news first on a phone, and every page
passing axe-core's WCAG 2.1 A and AA rules.

Screenshots are kept in tests/artifacts/ (not in git). CI installs Debian's chromium;
elsewhere the tests skip when it is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chromium import ARTIFACTS, accessibility_violations, launched, needs_chromium
from support import Daemon, copy_seeds

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched() as instance:
        yield instance


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    root = tmp_path_factory.mktemp("browser")
    copy_seeds(root / "seeds")
    daemon = Daemon(root)
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.kill()


def first_month(served: Daemon) -> str:
    return sorted((served.root / "public" / "archive" / "all").glob("*.html"))[0].name


PAGES = [
    ("index.html", "Tổng hợp tin lãnh đạo Bộ Y tế", "Tin mới nhất"),
    ("officials/dao-hong-lan.html", "Đào Hồng Lan — Bộ trưởng Bộ Y tế", "Chăm sóc sức khỏe"),
    ("topics/hop-tac-quoc-te.html", "Hợp tác quốc tế", "nhận tin mới"),
    ("archive/all/FIRST", "Tổng hợp tin lãnh đạo Bộ Y tế — tháng", "Lưu trữ theo tháng"),
    (
        "entries/ee07bbc0-5aba-5502-98ab-818e9811aabf.html",
        "Bộ trưởng Bộ Y tế Đào Hồng Lan: Chăm sóc sức khỏe nhân dân toàn diện",
        "Xin trân trọng cảm ơn Bộ trưởng!",
    ),
    ("theo-doi.html", "Cách theo dõi tin mới", "Feedly"),
    ("khong-co-trang-nay.html", "Không tìm thấy trang", "trang chủ"),
    ("unsubscribe?email=a%40example.org&token=x", "Hủy đăng ký bản tin", "a@example.org"),
    ("dang-ky?chu-de=dan-so", "Đăng ký nhận bản tin qua e-mail", "Chúng tôi lưu gì về bạn"),
    ("search?q=bao+hiem+y+te&page=1", "Tìm «bao hiem y te»", "Theo dõi kết quả tìm này"),
    ("search?q=%22", "Tìm tin", "Không có từ nào để tìm"),
]


@pytest.mark.parametrize(("width", "height"), [(1280, 900), (390, 844)], ids=["desktop", "phone"])
@pytest.mark.parametrize(("path", "heading", "text"), PAGES, ids=[p[0][:12] for p in PAGES])
def test_every_page_loads_cleanly_fits_the_screen_and_passes_axe(
    browser: Any, served: Daemon, path: str, heading: str, text: str, width: int, height: int
) -> None:
    page = browser.new_page(viewport={"width": width, "height": height})
    problems: list[str] = []
    page.on(
        "console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None
    )
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
    page.on(
        "response", lambda r: problems.append(f"{r.status}: {r.url}") if r.status >= 400 else None
    )
    url = f"http://127.0.0.1:{served.port}/{path.replace('FIRST', first_month(served))}"
    page.goto(url)
    page.wait_for_load_state("networkidle")  # the icon and style sheet too
    assert page.locator("h1").inner_text().startswith(heading)
    assert text in page.locator("main").inner_text()
    if heading == "Không tìm thấy trang" or "%22" in path:  # a 404, a 400; nothing else may be
        status = "404" if heading == "Không tìm thấy trang" else "400"
        assert problems[0] == f"{status}: {url}" and status in problems[1]
        problems = problems[2:]
    assert problems == []
    # Nothing wider than the viewport: readable on a phone without sideways scrolling.
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    # Every page names its source and says it is not the Ministry's own site.
    footer = page.locator("footer").inner_text()
    assert "không phải trang chính thức của Bộ Y tế" in footer
    assert (
        page.locator("footer a").get_attribute("href")
        == "https://moh.gov.vn/hoat-dong-cua-lanh-dao-bo"
    )
    assert accessibility_violations(page) == []
    ARTIFACTS.mkdir(exist_ok=True)
    name = f"{path.split('?')[0].replace('/', '_')}-{width}.png"
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)
    page.close()


def test_a_phone_shows_the_news_first(browser: Any, served: Daemon) -> None:
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(f"http://127.0.0.1:{served.port}/index.html")
    first_news = page.locator("ol.entries li").first.bounding_box()
    leaders = page.locator("#lanh-dao").bounding_box()
    assert first_news is not None and leaders is not None
    assert first_news["y"] < 844 and first_news["y"] < leaders["y"]
    page.close()


def test_a_reader_searches_from_any_page_without_tone_marks(browser: Any, served: Daemon) -> None:
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(f"http://127.0.0.1:{served.port}/topics/hop-tac-quoc-te.html")
    box = page.get_by_role("searchbox", name="Từ cần tìm")
    box.fill("bao hiem y te")
    box.press("Enter")
    page.wait_for_load_state("networkidle")
    assert page.locator("h1").inner_text() == "Tìm «bao hiem y te»"
    marked = {m.lower() for m in page.locator("ol.results mark").all_inner_texts()}
    assert {"bảo", "hiểm", "y", "tế"} <= marked
    # Narrowed to one leader with the page's own form, then followed as a feed.
    page.select_option("select[name=official]", "dao-hong-lan")
    page.locator("form.finder button").click()
    page.wait_for_load_state("networkidle")
    assert "Đào Hồng Lan" in page.locator("h1").inner_text()
    feed = page.get_by_role("link", name="nhận tin mới bằng ứng dụng đọc tin")
    href = feed.get_attribute("href")
    assert href is not None and "/search.atom?q=bao+hiem+y+te&official=dao-hong-lan" in href
    page.close()


def test_missing_pages_are_404_in_the_sites_own_words(served: Daemon) -> None:
    status, headers, body = served.request("/khong-co.html")
    assert status == 404 and headers["content-type"].startswith("text/html")
    assert "Không tìm thấy trang" in body.decode()
    status, _, body = served.request("/favicon.ico")  # asked for by every browser and reader
    assert status == 200 and body.startswith(b"\x00\x00\x01\x00")


def test_the_accessibility_check_finds_what_it_should(browser: Any, tmp_path: Path) -> None:
    """The check above can fail: a page with a classic fault is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!doctype html><html><head><title>x</title></head><body><main>"
        '<p style="color:#ccc;background:#fff">mờ</p><img src="x.png"></main></body></html>',
        encoding="utf-8",
    )
    page = browser.new_page()
    page.goto(bad.as_uri())
    found = {v.split(":")[0] for v in accessibility_violations(page)}
    assert {"html-has-lang", "image-alt", "color-contrast"} <= found
    page.close()
