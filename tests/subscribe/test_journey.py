"""A reader's whole way, on real parts: the daemon, its HTTP, an aiosmtpd server on 127.0.0.1,
and headless Chromium at phone width. From the index page to an active subscription and a
delivered digest, then new topics; a second visitor learns nothing; floods change nothing
but what they should, and the feeds keep being served."""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from chromium import accessibility_violations, launched
from mail.mailworld import Handler, Server, body, wait_until
from raw import rows
from support import Daemon, copy_seeds, free_port, store_at, toml

from digest.model import VIETNAM, WEEKDAYS

PHONE = {"width": 390, "height": 844}
DIGEST = [sys.executable, "-m", "digest", "--config", "config.toml"]


@pytest.fixture
def smtp() -> Iterator[tuple[Handler, str]]:
    """An SMTP server on 127.0.0.1 recording what arrives, and the [smtp] table to reach it."""
    handler, port = Handler(), free_port()
    server = Server(handler, port)
    server.start()
    yield handler, toml("smtp", host="127.0.0.1", port=port, security="none")
    server.stop()


def mails_to(handler: Handler, address: str) -> list[EmailMessage]:
    return [m for m in handler.messages if m["To"].addresses[0].addr_spec == address]


def link(message: EmailMessage, path: str) -> str:
    found = re.search(rf"http://\S+/{path}\?\S+", body(message, "plain"))
    assert found, f"no /{path} link in the mail"
    return found.group(0)


def subscribers(root: Path) -> list[dict[str, Any]]:
    listed = subprocess.run(
        [*DIGEST, "subscribers", "list", "--json"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    found: list[dict[str, Any]] = json.loads(listed.stdout)
    return found


def capture_of_today(title: str) -> str:
    """A listing capture with one article published a minute ago (Vietnam time)."""
    when = datetime.now(VIETNAM) - timedelta(minutes=1)
    date_line = f"{WEEKDAYS[when.weekday()]}, ngày {when:%d/%m/%Y %H:%M}"
    return f"HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ\n{title}\n{date_line}Sáng nay, Bộ trưởng...\n"


@pytest.mark.both_engines  # the daemon's store, HTTP and mail, end to end, on every engine
def test_a_visitor_subscribes_gets_a_digest_and_changes_topics(
    tmp_path: Path, spawn: Callable[..., Daemon], smtp: tuple[Handler, str], store_url: str | None
) -> None:
    server, smtp_table = smtp
    reader = "phong-vien@example.org"
    copy_seeds(tmp_path / "seeds")
    d = spawn(extra=smtp_table, store=store_url)
    d.start()
    site = f"http://127.0.0.1:{d.port}/"
    with launched() as browser:
        # 1. The index page's form, on a phone.
        page = browser.new_page(viewport=PHONE)
        page.goto(site + "index.html")
        form = page.locator("form.signup")
        assert form.is_visible()
        form.locator("input[type=email]").fill(reader)
        form.locator("input[value=weekly]").check()
        form.get_by_role("button", name="Đăng ký").click()
        assert page.locator("h1").inner_text() == "Hãy mở hộp thư của bạn"
        answer = page.locator("main").inner_text()
        assert accessibility_violations(page) == []
        # 2. The confirmation, at the SMTP server; its link opens a page, the button confirms.
        (confirmation,) = wait_until(lambda: mails_to(server, reader))
        assert confirmation["Subject"] == "Xác nhận đăng ký bản tin lãnh đạo Bộ Y tế"
        page.goto(link(confirmation, "xac-nhan"))
        assert page.locator("h1").inner_text() == "Xác nhận đăng ký"
        assert accessibility_violations(page) == []
        assert subscribers(tmp_path)[0]["state"] == "pending"  # opening the link is not enough
        page.get_by_role("button", name="Xác nhận").click()
        assert page.locator("h1").inner_text() == "Đã xác nhận đăng ký"
        assert "Bản tin đầu tiên sẽ đến vào" in page.locator("main").inner_text()
        (who,) = subscribers(tmp_path)
        assert (who["email"], who["state"], who["schedule"]) == (reader, "active", "weekly")
        assert who["consent"]["via"] == "web" and "đồng ý" in who["consent"]["text"]
        # 3. A second visitor signs the same address up: the same page, and no mail.
        other = browser.new_page(viewport=PHONE)
        other.goto(site + "dang-ky")
        other.locator("input[type=email]").fill(reader)
        other.get_by_role("button", name="Đăng ký").click()
        assert other.locator("main").inner_text() == answer
        d.wait_for(lambda: any(e.get("state") == "quiet" for e in d.events("signup")), what="it")
        assert rows(store_at(tmp_path, store_url), "select count(*) from notices") == [(1,)]
        # 4. The manage page: weekly to daily, and one topic.
        page.get_by_role("link", name="Quản lý đăng ký").click()
        assert page.locator("h1").inner_text() == "Quản lý đăng ký"
        page.locator("input[name=lich][value=daily]").check()
        page.get_by_label("Hợp tác quốc tế").check()
        page.get_by_role("button", name="Lưu lựa chọn").click()
        assert page.locator(".said").inner_text() == "Đã lưu lựa chọn của bạn."
        assert accessibility_violations(page) == []
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    (who,) = subscribers(tmp_path)
    assert (who["schedule"], who["topics"], who["officials"]) == ("daily", ["hop-tac-quoc-te"], [])
    # 5. The digest: the daily send time a few seconds ahead, and a new article in the topic.
    assert d.stop() == 0
    send_at = datetime.now(VIETNAM) + timedelta(seconds=8)
    d.configure(smtp_table + toml("digests", daily_at=f"{send_at:%H:%M:%S}"))
    d.start()
    title = "Bộ trưởng Bộ Y tế Đào Hồng Lan tiếp Đoàn công tác của Tổ chức Y tế Thế giới"
    (tmp_path / "seeds" / "today.txt").write_text(capture_of_today(title), encoding="utf-8")
    digests = wait_until(
        lambda: [m for m in mails_to(server, reader) if m["Subject"].startswith("Bản tin")],
        timeout=30,
    )
    assert len(digests) == 1, "the digest did not arrive once"
    assert title in body(digests[0], "plain")
    assert "Hợp tác quốc tế" in body(digests[0], "plain")
    # Its manage link is the reader's page, working.
    status, _, page_body = d.request(link(digests[0], "quan-ly").removeprefix(site[:-1]))
    assert status == 200 and reader in page_body.decode()
    assert d.stop() == 0


def _post(port: int, path: str, form: dict[str, str], headers: dict[str, str]) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        data = urlencode(form)
        conn.request(
            "POST",
            path,
            body=data,
            headers={"Content-Type": "application/x-www-form-urlencoded", **headers},
        )
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


class FeedWatch:
    """Polls the served feed while something else happens: every answer's status, and the
    slowest."""

    def __init__(self, d: Daemon) -> None:
        self.d = d
        self.statuses: list[int] = []
        self.slowest = 0.0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self.done.is_set():
            started = time.monotonic()
            status, _, _ = self.d.request("/feeds/all.atom")
            self.slowest = max(self.slowest, time.monotonic() - started)
            self.statuses.append(status)

    def __enter__(self) -> FeedWatch:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.done.set()
        self.thread.join()


# On SQLite alone, for time: on PostgreSQL, sign-ups at once and the limits are test_web's.
def test_a_flood_of_sign_ups_sends_one_mail_and_the_feeds_are_served_throughout(
    tmp_path: Path, spawn: Callable[..., Daemon], smtp: tuple[Handler, str], store_url: str | None
) -> None:
    """1,000 sign-ups of one address from 1,000 clients (behind a trusted proxy), then 1,000
    random addresses from one client: one mail for the one address, the per-client limit
    for the other, and never a failed feed request."""
    server, smtp_table = smtp
    copy_seeds(tmp_path / "seeds")
    limits = toml("subscriptions", per_client_per_hour=10)
    d = spawn(extra=smtp_table + limits, store=store_url)
    d.server["trusted_proxies"] = ["127.0.0.1"]  # the test client stands for a proxy
    d.configure(smtp_table + limits)
    d.start()
    origin = {"Origin": f"http://127.0.0.1:{d.port}"}
    victim = "nan-nhan@example.org"

    def one_address(i: int) -> int:
        forwarded = {"X-Forwarded-For": f"198.51.{i // 250}.{i % 250 + 1}"}
        return _post(d.port, "/dang-ky", {"email": victim}, origin | forwarded)

    def one_client(i: int) -> int:
        forwarded = {"X-Forwarded-For": "203.0.113.7"}
        return _post(d.port, "/dang-ky", {"email": f"r{i}@example.org"}, origin | forwarded)

    with FeedWatch(d) as watch, concurrent.futures.ThreadPoolExecutor(8) as pool:
        same = list(pool.map(one_address, range(1000)))
        spread = list(pool.map(one_client, range(1000)))
    assert same == [200] * 1000
    assert spread.count(200) == 10 and spread.count(429) == 990
    assert watch.statuses and set(watch.statuses) == {200}
    # One confirmation for the victim, one for each of the ten let through; then no more.
    wait_until(lambda: len(server.messages) >= 11)
    assert len(mails_to(server, victim)) == 1
    where = store_at(tmp_path, store_url)
    assert rows(where, "select count(*) from notices") == [(11,)]
    assert rows(where, "select count(*) from subscribers where state = 'pending'") == [(11,)]
    assert d.health()[0] == 200
    assert d.stop() == 0
