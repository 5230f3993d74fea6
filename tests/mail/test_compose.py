"""compose.py: what a digest says and how it is written — the entries a subscriber's filters
select, Vietnamese text and headers, lines SMTP can carry, no header injection, and the HTML
as a mail client renders it."""

from __future__ import annotations

import email
from email import policy
from pathlib import Path

import pytest
from chromium import ARTIFACTS, accessibility_violations, launched
from raw import sql

from digest.mail.compose import bodies
from mail.mailworld import Smtp, World, body, vn

# The newest entry's title changed behind the store's back.
RETITLE = "update entries set title = :title where published = (select max(published) from entries)"


@pytest.mark.both_engines
def test_first_digests_arrive_multipart_in_vietnamese_with_filters(
    world: World, smtp: Smtp
) -> None:
    handler, _ = smtp
    world.at(vn(2026, 11, 21, 7, 0, 5))
    outcomes = world.run()
    assert {(o.subscriber, o.state) for o in outcomes} == {
        ("all@example.org", "sent"),
        ("lan@example.org", "sent"),
    }
    by_to = {m["To"].addresses[0].addr_spec: m for m in handler.messages}
    assert set(by_to) == {"all@example.org", "lan@example.org"}
    lan = by_to["lan@example.org"]
    assert lan["Subject"] == "Bản tin hoạt động lãnh đạo Bộ Y tế — 21/11/2026 (15 tin)"
    assert lan.get_content_type() == "multipart/alternative"
    text = body(lan, "plain")
    html = body(lan, "html")
    assert (
        "Đào Hồng Lan (15)" in text
        and "Thứ trưởng Bộ Y tế Trần Văn Thuấn" not in text.split("==")[1]
    )
    assert 'style="' in html and "<style" not in html  # CSS inlined
    assert "Chăm sóc sức khỏe nhân dân toàn diện" in html
    everything = by_to["all@example.org"]
    assert everything["Subject"].endswith("(100 tin)")
    assert "và 50 tin khác" in body(everything, "plain")
    for message in handler.messages:
        assert message["Message-ID"].endswith("@localhost>")
        assert message["List-Id"] and message["Date"]
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        unsubscribe = message["List-Unsubscribe"]
        assert "<mailto:" in unsubscribe and "<http://127.0.0.1:8080/unsubscribe?" in unsubscribe


@pytest.mark.both_engines
def test_a_line_too_long_for_smtp_sends_its_part_as_base64(
    tmp_path: Path, smtp: Smtp, store_url: str | None
) -> None:
    handler, controller = smtp
    world = World(tmp_path, controller.port, store=store_url)
    long_title = "Bộ trưởng Đào Hồng Lan làm việc về chăm sóc sức khỏe nhân dân " * 12
    assert len(long_title.encode()) > 998
    sql(world.where, RETITLE, title=long_title.strip())
    world.at(vn(2026, 11, 21, 7, 0, 5))
    world.run()
    assert len(handler.messages) == 2  # a server refuses longer lines ("500 Line too long")
    for (_, data), message in zip(handler.raw, handler.messages, strict=True):
        assert max(map(len, data.split(b"\r\n"))) <= 998
        html = message.get_body(("html",))
        assert html is not None
        assert html["Content-Transfer-Encoding"] == "base64"
        assert long_title.strip() in html.get_content()


def test_a_long_subscriber_name_makes_no_line_too_long(tmp_path: Path, smtp: Smtp) -> None:
    handler, controller = smtp
    name = "Phòng truyền thông Bộ Y tế " * 40  # about 1,200 octets
    extra = f'\n[[subscribers]]\nemail = "x@example.org"\nname = "{name}"\nschedule = "daily"\n'
    world = World(tmp_path, controller.port, extra)
    world.at(vn(2026, 11, 21, 7, 0, 5))
    world.run()
    assert world.states()[("x@example.org", "daily:2026-11-21")] == "sent"
    (data,) = [
        d
        for (_, d), m in zip(handler.raw, handler.messages, strict=True)
        if m["To"].addresses[0].addr_spec == "x@example.org"
    ]
    assert max(map(len, data.split(b"\r\n"))) <= 998
    message = email.message_from_bytes(data, policy=policy.default)
    # Whole in the greeting (the part goes as base64), cut short in To.
    assert name.strip() in body(message, "plain")
    assert message["To"].addresses[0].display_name == name[:63].rstrip() + "…"
    # The other two digests still go 8bit.
    assert sum(b"Content-Transfer-Encoding: 8bit" in d for _, d in handler.raw) == 2


@pytest.mark.both_engines
def test_crlf_injection_stays_out_of_headers(
    tmp_path: Path, smtp: Smtp, store_url: str | None
) -> None:
    handler, controller = smtp
    extra = '\n[[subscribers]]\nemail = "x@example.org"\nname = "Ann\\r\\nBcc: evil@example.org"\n'
    world = World(tmp_path, controller.port, extra, store=store_url)
    sql(world.where, RETITLE, title="Tiêu đề\r\nBcc: evil@example.org\r\nSubject: hacked")
    world.at(vn(2026, 11, 21, 7, 0, 5))
    world.run()
    (message,) = [m for m in handler.messages if m["To"].addresses[0].addr_spec == "x@example.org"]
    assert message["Bcc"] is None
    assert message.get_all("Subject") == [message["Subject"]] and "hacked" not in message["Subject"]
    assert str(message["To"]) == '"Ann Bcc: evil@example.org" <x@example.org>'
    assert b"\r\nBcc:" not in message.as_bytes()
    assert "Tiêu đề" in body(message, "plain")


def test_html_digest_fits_a_phone_and_a_desktop_client_in_chromium(
    world: World, tmp_path: Path
) -> None:
    """The mail as a client renders it: every headline whole at 390 px (a phone) and 600 px,
    nothing wider than the screen, and no WCAG 2.1 AA fault axe-core can see."""

    subscriber = world.config.subscribers[1]
    letter = world.sender.preview(subscriber, "daily", vn(2025, 1, 1))
    assert letter.message is not None
    page_file = tmp_path / "digest.html"
    page_file.write_text(bodies(letter.message)[1], encoding="utf-8")
    with launched() as browser:
        for width in (390, 600):
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.goto(page_file.as_uri())
            titles = page.locator("a.title")
            assert titles.count() == len(letter.entries) > 5
            assert page.locator("h2").first.inner_text().startswith("Đào Hồng Lan (")
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            for i in range(titles.count()):
                box = titles.nth(i).bounding_box()
                assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
            assert accessibility_violations(page) == []
            ARTIFACTS.mkdir(exist_ok=True)
            shot = ARTIFACTS / f"digest-mail-{width}.png"
            page.screenshot(path=str(shot), full_page=True)
            page.close()


def test_preview_since_holds_exactly_the_entries_published_in_the_window(world: World) -> None:
    everyone = next(s for s in world.config.subscribers if s.email == "all@example.org")
    assert not everyone.officials and not everyone.topics
    since = vn(2025, 10, 1)
    letter = world.sender.preview(everyone, "daily", since)
    now = world.clock.now()
    expected = [e.id for e in world.app.entries() if since <= e.published <= now]
    assert expected and [e.id for e in letter.entries] == expected
    # What `digest preview` prints: the 8bit parts decoded, with "\n" line ends.
    assert letter.message is not None
    text, html = bodies(letter.message)
    assert "Tất cả" in text and "</html>" in html and "\r" not in text + html
