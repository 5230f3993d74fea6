"""Digests against a real aiosmtpd server on 127.0.0.1: content, headers, exactly once."""

from __future__ import annotations

import asyncio
import email
import logging
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from support import ROOT, base_config, copy_seeds, toml

from digest.app import make_digest
from digest.config import load
from digest.mail import make_sender
from digest.mail.compose import bodies
from digest.mail.periods import slots
from digest.mail.schedule import Timer
from digest.mail.shards import shard
from digest.model import VIETNAM


def vn(*args: int) -> datetime:
    return datetime(*args, tzinfo=VIETNAM)


class Clock:
    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def now(self) -> datetime:
        return self.moment.astimezone(UTC)


class Handler:
    """Records what arrives; can refuse recipients (code per address, a count of times) or
    drop the connection during DATA."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refuse: dict[str, tuple[str, int]] = {}
        self.drop_after: int | None = None
        self.gone = False
        self.sessions: set[int] = set()  # connections that started a transaction
        self.delay = 0.0  # seconds each message takes to be accepted
        self.rcpt_delay = 0.0  # seconds a recipient takes, 0.5 to 2 times this by address
        self.eight_bit_mime = True  # whether EHLO offers 8BITMIME
        self.raw: list[tuple[list[str], bytes]] = []  # (MAIL options, DATA) of each message

    async def handle_MAIL(self, server, session, envelope, address, options):  # type: ignore[no-untyped-def]
        self.sessions.add(id(session))
        if self.gone:  # shutting down: every new transaction is turned away
            return "421 4.3.2 service shutting down"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # type: ignore[no-untyped-def]
        session.host_name = hostname
        return [r for r in responses if self.eight_bit_mime or "8BITMIME" not in r]

    async def handle_RCPT(self, server, session, envelope, address, options):  # type: ignore[no-untyped-def]
        await asyncio.sleep(self.rcpt_delay * (1 + zlib.crc32(address.encode()) % 4) / 2)
        reply, times = self.refuse.get(address, ("", 0))
        if times:
            self.refuse[address] = (reply, times - 1)
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        await asyncio.sleep(self.delay)  # before the count is read: it and the append are one step
        if self.drop_after is not None and len(self.messages) >= self.drop_after:
            self.gone = True
            server.transport.close()  # the server goes away while the data is in flight
            return "421 going away"
        self.raw.append((envelope.mail_options, envelope.original_content))
        parsed = email.message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append(parsed)  # type: ignore[arg-type]
        return "250 Message accepted"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Any:
    handler = Handler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, controller
    controller.stop()


SUBSCRIBERS = """
[[subscribers]]
email = "all@example.org"
name = "Tất cả"
schedule = "daily"

[[subscribers]]
email = "lan@example.org"
name = "Theo dõi Bộ trưởng"
schedule = "daily"
officials = ["dao-hong-lan"]

[[subscribers]]
email = "weekly@example.org"
name = "Hằng tuần"
schedule = "weekly"
topics = ["hop-tac-quoc-te"]
"""


def write_config(root: Path, port: int | None, extra: str = "", *, processes: int = 1) -> Path:
    """A config of the test's own: SMTP to the test server on `port` (the Maildir outbox
    when None), the three subscribers above, and `extra` subscribers."""
    smtp = toml("smtp", host="127.0.0.1", port=port, security="none") if port is not None else ""
    config = base_config(smtp + toml("digests", processes=processes) + SUBSCRIBERS + extra)
    (root / "config.toml").write_text(config, encoding="utf-8")
    return root / "config.toml"


class World:
    """A project with the seeds ingested at a known time and a sender on a fake clock."""

    def __init__(self, root: Path, port: int | None, extra: str = "") -> None:
        self.root = root
        copy_seeds(root / "seeds")
        self.config = load(write_config(root, port, extra))
        self.clock = Clock(vn(2026, 11, 20, 10, 0))
        self.app = make_digest(self.config, clock=self.clock)
        self.sender = make_sender(self.config, self.app.store, self.clock.now)
        self.sender.plan(self.clock.now())  # the subscribers appear in config now
        self.at(vn(2026, 11, 20, 11, 0))
        self.app.build()

    def at(self, moment: datetime) -> None:
        self.clock.moment = moment

    def run(self) -> list[Any]:
        return asyncio.run(self.sender.run(recover=True))

    def states(self) -> dict[tuple[str, str], str]:
        return {(r.subscriber, r.period): r.state for r in self.sender.outbox.outbox_rows(500)}


@pytest.fixture
def world(tmp_path: Path, smtp: Any) -> World:
    return World(tmp_path, smtp[1].port)


def test_first_digests_arrive_multipart_in_vietnamese_with_filters(world: World, smtp: Any) -> None:
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
    text = lan.get_body(("plain",)).get_content()
    html = lan.get_body(("html",)).get_content()
    assert (
        "Đào Hồng Lan (15)" in text
        and "Thứ trưởng Bộ Y tế Trần Văn Thuấn" not in text.split("==")[1]
    )
    assert 'style="' in html and "<style" not in html  # CSS inlined
    assert "Chăm sóc sức khỏe nhân dân toàn diện" in html
    everything = by_to["all@example.org"]
    assert everything["Subject"].endswith("(100 tin)")
    assert "và 50 tin khác" in everything.get_body(("plain",)).get_content()
    for message in handler.messages:
        assert message["Message-ID"].endswith("@localhost>")
        assert message["List-Id"] and message["Date"]
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        unsubscribe = message["List-Unsubscribe"]
        assert "<mailto:" in unsubscribe and "<http://127.0.0.1:8080/unsubscribe?" in unsubscribe


def test_no_mail_for_an_empty_period_and_one_message_per_period(world: World, smtp: Any) -> None:
    handler, _ = smtp
    world.at(vn(2026, 11, 21, 7, 0, 5))
    world.run()
    world.run()  # the same period again: nothing more
    assert len(handler.messages) == 2
    world.at(vn(2026, 11, 22, 7, 1))
    world.run()
    assert len(handler.messages) == 2  # nothing new since yesterday's digest
    assert world.states()[("all@example.org", "daily:2026-11-22")] == "empty"


def test_weekly_digest_on_monday(world: World, smtp: Any) -> None:
    handler, _ = smtp
    world.at(vn(2026, 11, 23, 7, 0, 1))  # a Monday
    world.run()
    weekly = [m for m in handler.messages if m["To"].addresses[0].addr_spec == "weekly@example.org"]
    assert len(weekly) == 1
    assert weekly[0]["Subject"].startswith(
        "Bản tin tuần hoạt động lãnh đạo Bộ Y tế — 17/11–23/11/2026"
    )
    assert "Hợp tác quốc tế" in weekly[0].get_body(("plain",)).get_content()


@pytest.mark.parametrize("eight_bit_mime", [True, False], ids=["8bitmime", "no-8bitmime"])
def test_parts_go_8bit_where_the_server_takes_it_and_base64_where_not(
    tmp_path: Path, smtp: Any, eight_bit_mime: bool
) -> None:
    handler, controller = smtp
    handler.eight_bit_mime = eight_bit_mime
    world = World(tmp_path, controller.port)
    world.at(vn(2026, 11, 21, 7, 0, 5))
    world.run()
    assert len(handler.raw) == len(handler.messages) == 2
    for (options, data), message in zip(handler.raw, handler.messages, strict=True):
        encodings = {part["Content-Transfer-Encoding"] for part in message.iter_parts()}
        if eight_bit_mime:  # as they are: readable, and a quarter smaller than base64
            assert encodings == {"8bit"} and options == ["BODY=8BITMIME"]
            assert "Chăm sóc sức khỏe".encode() in data
        else:  # RFC 6152: no 8bit data to a server that did not offer it
            assert encodings == {"base64"} and options == [] and data.isascii()
        assert max(map(len, data.split(b"\r\n"))) <= 998
        text = message.get_body(("plain",)).get_content()
        greeting = f"gửi {message['To'].addresses[0].display_name}"
        assert greeting in text and "Chăm sóc sức khỏe nhân dân toàn diện" in text


def test_a_line_too_long_for_smtp_sends_its_part_as_base64(tmp_path: Path, smtp: Any) -> None:
    handler, controller = smtp
    world = World(tmp_path, controller.port)
    long_title = "Bộ trưởng Đào Hồng Lan làm việc về chăm sóc sức khỏe nhân dân " * 12
    assert len(long_title.encode()) > 998
    with sqlite3.connect(tmp_path / "var" / "digest.sqlite") as db:
        db.execute(
            "update entries set title = ? where published = (select max(published) from entries)",
            (long_title.strip(),),
        )
    world.at(vn(2026, 11, 21, 7, 0, 5))
    world.run()
    assert len(handler.messages) == 2  # a server refuses longer lines ("500 Line too long")
    for (_, data), message in zip(handler.raw, handler.messages, strict=True):
        assert max(map(len, data.split(b"\r\n"))) <= 998
        html = message.get_body(("html",))
        assert html["Content-Transfer-Encoding"] == "base64"
        assert long_title.strip() in html.get_content()


def test_a_long_subscriber_name_makes_no_line_too_long(tmp_path: Path, smtp: Any) -> None:
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
    assert name.strip() in message.get_body(("plain",)).get_content()
    assert message["To"].addresses[0].display_name == name[:63].rstrip() + "…"
    # The other two digests still go 8bit.
    assert sum(b"Content-Transfer-Encoding: 8bit" in d for _, d in handler.raw) == 2


def add_capture(world: World, name: str, title: str, when: str) -> None:
    (world.root / "seeds" / name).write_text(
        f"HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ\n{title}\nThứ Hai, ngày {when}Sáng nay, Bộ trưởng...\n",
        encoding="utf-8",
    )
    world.app.build()


def test_downtime_of_two_periods_is_caught_up_once_each(world: World, smtp: Any) -> None:
    handler, _ = smtp
    world.at(vn(2026, 11, 21, 7, 0, 5))
    world.run()
    world.at(vn(2026, 11, 21, 12, 0))
    add_capture(world, "a.txt", "Bộ trưởng Bộ Y tế Đào Hồng Lan thăm Huế", "21/11/2026 03:00")
    world.at(vn(2026, 11, 22, 12, 0))  # the daemon is down through the 22nd and 23rd
    add_capture(world, "b.txt", "Bộ trưởng Bộ Y tế Đào Hồng Lan thăm Hà Giang", "22/11/2026 03:00")
    handler.messages.clear()
    world.at(vn(2026, 11, 23, 9, 30))
    world.run()
    lan = [m for m in handler.messages if m["To"].addresses[0].addr_spec == "lan@example.org"]
    assert [m["Subject"] for m in lan] == [
        "Bản tin hoạt động lãnh đạo Bộ Y tế — 22/11/2026 (1 tin)",
        "Bản tin hoạt động lãnh đạo Bộ Y tế — 23/11/2026 (1 tin)",
    ]
    assert "thăm Huế" in lan[0].get_body(("plain",)).get_content()
    assert "thăm Hà Giang" in lan[1].get_body(("plain",)).get_content()
    world.run()
    assert len([m for m in handler.messages if "lan@" in str(m["To"])]) == 2


def test_4xx_is_retried_with_backoff_then_sent_once(world: World, smtp: Any) -> None:
    handler, _ = smtp
    handler.refuse["lan@example.org"] = ("451 4.3.0 try again later", 1)
    world.at(vn(2026, 11, 21, 7, 0, 5))
    world.run()
    assert world.states()[("lan@example.org", "daily:2026-11-21")] == "failed"
    assert [m["To"].addresses[0].addr_spec for m in handler.messages] == ["all@example.org"]
    world.at(vn(2026, 11, 21, 7, 0, 30))
    world.run()  # too early for the retry
    assert len(handler.messages) == 1
    world.at(vn(2026, 11, 21, 7, 2))
    world.run()
    assert world.states()[("lan@example.org", "daily:2026-11-21")] == "sent"
    assert sorted(m["To"].addresses[0].addr_spec for m in handler.messages) == [
        "all@example.org",
        "lan@example.org",
    ]


def test_5xx_for_one_recipient_while_the_others_arrive(world: World, smtp: Any) -> None:
    handler, _ = smtp
    handler.refuse["all@example.org"] = ("550 5.1.1 no such user", 99)
    world.at(vn(2026, 11, 21, 7, 0, 5))
    world.run()
    states = world.states()
    assert states[("all@example.org", "daily:2026-11-21")] == "dead"
    assert states[("lan@example.org", "daily:2026-11-21")] == "sent"
    world.at(vn(2026, 11, 22, 8, 0))
    world.run()
    assert [m["To"].addresses[0].addr_spec for m in handler.messages] == ["lan@example.org"]
    (row,) = [r for r in world.sender.outbox.outbox_rows() if r.state == "dead"]
    assert "550" in (row.error or "")
    assert world.sender.health()["digests"] == {"pending": 0, "failed": 0, "unknown": 0, "dead": 1}


def test_server_going_away_mid_batch(tmp_path: Path, smtp: Any) -> None:
    handler, controller = smtp
    world = World(tmp_path, controller.port, daily_subscribers(4))
    handler.drop_after = 2
    world.at(vn(2026, 11, 21, 7, 0, 5))
    world.run()
    states = [s for (who, _), s in sorted(world.states().items()) if who != "weekly@example.org"]
    assert states.count("sent") == 2
    # Dropped while their data was in flight (one per connection at most): not sent again.
    in_flight = states.count("unknown")
    assert 1 <= in_flight <= world.config.smtp.connections
    assert states.count("failed") == 4 - in_flight  # the rest: not sent, to be retried
    handler.drop_after, handler.gone = None, False  # back up
    world.at(vn(2026, 11, 21, 7, 5))
    world.run()
    final = [s for (who, _), s in world.states().items() if who != "weekly@example.org"]
    assert final.count("sent") == 6 - in_flight and final.count("unknown") == in_flight
    delivered = [m["To"].addresses[0].addr_spec for m in handler.messages]
    assert len(delivered) == len(set(delivered)) == 6 - in_flight


def daily_subscribers(count: int) -> str:
    """config.toml blocks for `count` more daily subscribers, r0@example.org and on."""
    return "".join(
        f'\n[[subscribers]]\nemail = "r{i}@example.org"\nschedule = "daily"\n' for i in range(count)
    )


def assert_each_sent_once(world: World, handler: Handler, outcomes: list[Any], count: int) -> None:
    assert len(outcomes) == count and {o.state for o in outcomes} == {"sent"}
    delivered = [m["To"].addresses[0].addr_spec for m in handler.messages]
    assert len(delivered) == len(set(delivered)) == count
    # Message-IDs recorded in the outbox are the ones that arrived.
    recorded = {r.message_id for r in world.sender.outbox.outbox_rows(500) if r.state == "sent"}
    assert recorded == {m["Message-ID"] for m in handler.messages}


def test_several_connections_deliver_each_digest_exactly_once(tmp_path: Path, smtp: Any) -> None:
    handler, controller = smtp
    world = World(tmp_path, controller.port, daily_subscribers(30))
    assert world.config.smtp.connections == 4  # the shipped setting
    world.at(vn(2026, 11, 21, 7, 0, 5))
    assert_each_sent_once(world, handler, world.run(), 32)
    assert len(handler.sessions) == 4


def sharded_world(root: Path, port: int, subscribers: int) -> World:
    """A world of `subscribers` more daily subscribers, delivered by two processes."""
    world = World(root, port, daily_subscribers(subscribers))
    world.config = load(write_config(root, port, daily_subscribers(subscribers), processes=2))
    assert world.config.digests.processes == 2
    world.sender = make_sender(world.config, world.app.store, world.clock.now)
    return world


def delivering_children() -> list[int]:
    """This process's `digest send-shard` children, from one listing of /proc."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines())
            cmdline = (status.parent / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue  # gone meanwhile
        if int(fields.get("PPid", "0")) == os.getpid() and b"send-shard" in cmdline:
            found.append(int(status.parent.name))
    return found


def test_two_processes_deliver_each_digest_exactly_once(tmp_path: Path, smtp: Any) -> None:
    handler, controller = smtp
    world = sharded_world(tmp_path, controller.port, 250)
    world.at(vn(2026, 11, 21, 7, 0, 5))
    assert_each_sent_once(world, handler, world.run(), 252)
    # Four connections from each of the two processes.
    assert len(handler.sessions) == 8
    assert delivering_children() == []


def test_a_delivering_process_killed_mid_run_leaves_its_share_to_the_first(
    tmp_path: Path, smtp: Any, caplog: pytest.LogCaptureFixture
) -> None:
    handler, controller = smtp
    handler.delay = 0.02  # a run long enough to kill the other process in the middle
    world = sharded_world(tmp_path, controller.port, 250)
    world.at(vn(2026, 11, 21, 7, 0, 5))
    killed: list[int] = []

    def sent_by_the_other() -> int:
        with sqlite3.connect(tmp_path / "var" / "digest.sqlite") as db:
            sent = db.execute("select subscriber from outbox where state = 'sent'").fetchall()
        return sum(shard(who, 2) == 1 for (who,) in sent)

    def kill_after_its_first_messages() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            children = delivering_children()
            if children and sent_by_the_other() >= 10:
                os.kill(children[0], signal.SIGKILL)
                killed.append(children[0])
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_after_its_first_messages)
    killer.start()
    with caplog.at_level(logging.INFO, logger="digest.mail"):
        world.run()
    killer.join()
    assert killed, "the second delivering process was never seen"
    assert f"delivering process {killed[0]} (shard 1 of 2) exited with -9" in caplog.text
    states = world.states()
    daily = {who: state for (who, period), state in states.items() if period.startswith("daily")}
    assert len(daily) == 252 and "sending" not in daily.values()
    # What the killed process had handed to the server is unknown, never sent again; the
    # rest of its share was delivered by the first process.
    unknown = {who for who, state in daily.items() if state == "unknown"}
    assert 1 <= len(unknown) <= world.config.smtp.connections
    assert all(shard(who, 2) == 1 for who in unknown)
    assert set(daily.values()) == {"sent", "unknown"}
    delivered = [m["To"].addresses[0].addr_spec for m in handler.messages]
    assert len(delivered) == len(set(delivered))
    assert {who for who, state in daily.items() if state == "sent"} <= set(delivered)


def test_a_stopped_run_finishes_what_is_in_flight_in_every_process(
    tmp_path: Path, smtp: Any, caplog: pytest.LogCaptureFixture
) -> None:
    handler, controller = smtp
    handler.delay = 0.02
    world = sharded_world(tmp_path, controller.port, 250)
    world.at(vn(2026, 11, 21, 7, 0, 5))

    def sent(in_shard: int) -> int:
        with sqlite3.connect(tmp_path / "var" / "digest.sqlite") as db:
            rows = db.execute("select subscriber from outbox where state = 'sent'").fetchall()
        return sum(shard(who, 2) == in_shard for (who,) in rows)

    async def stopped_part_way() -> list[Any]:
        stop = asyncio.Event()  # what SIGTERM sets in the daemon or in `digest send`

        async def stop_once_both_deliver() -> None:
            while sent(0) < 10 or sent(1) < 10:
                await asyncio.sleep(0.01)
            stop.set()

        stopper = asyncio.create_task(stop_once_both_deliver())
        outcomes = await world.sender.run(recover=True, stop=stop)
        stopper.cancel()
        return outcomes

    with caplog.at_level(logging.INFO, logger="digest.mail"):
        outcomes = asyncio.run(stopped_part_way())
    daily = {who: s for (who, period), s in world.states().items() if period.startswith("daily")}
    # In flight when it stopped: finished, in both processes; nothing left in between.
    assert set(daily.values()) == {"sent", "pending"}
    for k in (0, 1):
        assert "pending" in {s for who, s in daily.items() if shard(who, 2) == k}
    assert len(outcomes) == sum(s == "sent" for s in daily.values())
    assert f"stopped with {len(outcomes)} of 252 digests delivered" in caplog.text
    assert delivering_children() == []
    # The next run sends the rest, each digest once in all.
    world.run()
    assert {s for (_, period), s in world.states().items() if period.startswith("daily")} == {
        "sent"
    }
    delivered = [m["To"].addresses[0].addr_spec for m in handler.messages]
    assert len(delivered) == len(set(delivered)) == 252


def test_sigterm_stops_digest_send_after_the_digests_in_flight(
    tmp_path: Path, smtp: Any, launch: Callable[..., Any]
) -> None:
    handler, controller = smtp
    handler.delay = 0.5
    copy_seeds(tmp_path / "seeds")
    emails = [f"r{i}@example.org" for i in range(12)]
    write_config(tmp_path, controller.port, daily_subscribers(len(emails)))
    run = [sys.executable, "-m", "digest", "--config", "config.toml"]
    subprocess.run([*run, "build"], cwd=tmp_path, check=True, capture_output=True)
    with sqlite3.connect(tmp_path / "var" / "digest.sqlite") as db:
        # Subscribed four days ago, the entries an hour later: a digest a day since.
        subscribed = int(time.time()) - 4 * 86400
        db.executemany(
            "insert into subscribers (email, first_seen) values (?, ?)",
            [(e, subscribed) for e in ["all@example.org", "lan@example.org", *emails]],
        )
        db.execute("update entries set seen_at = ?", (subscribed + 3600,))
    sending = launch(
        [*run, "send", "--period", "daily"], cwd=tmp_path, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 20
    while not handler.messages and time.monotonic() < deadline:
        time.sleep(0.01)
    sending.send_signal(signal.SIGTERM)
    _, errors = sending.communicate(timeout=20)
    assert sending.returncode == 0, errors
    assert "stopped with" in errors
    with sqlite3.connect(tmp_path / "var" / "digest.sqlite") as db:
        states = [s for (s,) in db.execute("select state from outbox where period like 'daily:%'")]
    # What was in flight finished; nothing is left sending or unknown. (A period can be
    # empty, depending on the hour this runs at.)
    assert "pending" in states and set(states) <= {"sent", "pending", "empty"}
    assert states.count("sent") == len(handler.messages)
    again = subprocess.run([*run, "send"], cwd=tmp_path, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    with sqlite3.connect(tmp_path / "var" / "digest.sqlite") as db:
        states = [s for (s,) in db.execute("select state from outbox where period like 'daily:%'")]
    assert set(states) == {"sent", "empty"}  # later periods have nothing new
    delivered = [(m["To"].addresses[0].addr_spec, m["Message-ID"]) for m in handler.messages]
    assert len(delivered) == len(set(delivered)) == states.count("sent")


def test_rows_a_live_process_is_sending_are_left_to_it(
    tmp_path: Path, smtp: Any, launch: Callable[..., Any]
) -> None:
    handler, controller = smtp
    world = World(tmp_path, controller.port)
    world.at(vn(2026, 11, 21, 7, 0, 5))
    world.sender.plan(world.clock.now())
    # Another process delivers to a server that accepts and never greets: it hangs, sending.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    write_config(tmp_path, silent.getsockname()[1])
    at = world.clock.now().isoformat()
    other = launch(
        world.config.command("send-shard", "--shard", "0", "--of", "1", "--at", at),
        stderr=subprocess.DEVNULL,
    )
    try:
        daily = {k for k in world.states() if k[1].startswith("daily:")}
        deadline = time.monotonic() + 20
        sending: set[tuple[str, str]] = set()
        while time.monotonic() < deadline and sending != daily:  # one claim per connection
            time.sleep(0.05)
            sending = {k for k, state in world.states().items() if state == "sending"}
        assert sending == daily, "the other process never claimed both periods"
        # A run that would recover finds the claims alive: it leaves them alone.
        world.run()
        assert {k for k, state in world.states().items() if state == "sending"} == sending
    finally:
        other.kill()
        other.wait()
        silent.close()
    # Once that process is dead, its claims are settled: it never reached DATA, so they are
    # sent, once.
    world.run()
    assert all(world.states()[k] == "sent" for k in sending)
    delivered = [m["To"].addresses[0].addr_spec for m in handler.messages]
    assert sorted(delivered) == sorted({w for w, _ in sending})


def test_crlf_injection_stays_out_of_headers(tmp_path: Path, smtp: Any) -> None:
    handler, controller = smtp
    extra = '\n[[subscribers]]\nemail = "x@example.org"\nname = "Ann\\r\\nBcc: evil@example.org"\n'
    world = World(tmp_path, controller.port, extra)
    with sqlite3.connect(tmp_path / "var" / "digest.sqlite") as db:
        db.execute(
            "update entries set title = ? where published = (select max(published) from entries)",
            ("Tiêu đề\r\nBcc: evil@example.org\r\nSubject: hacked",),
        )
    world.at(vn(2026, 11, 21, 7, 0, 5))
    world.run()
    (message,) = [m for m in handler.messages if m["To"].addresses[0].addr_spec == "x@example.org"]
    assert message["Bcc"] is None
    assert message.get_all("Subject") == [message["Subject"]] and "hacked" not in message["Subject"]
    assert str(message["To"]) == '"Ann Bcc: evil@example.org" <x@example.org>'
    assert b"\r\nBcc:" not in message.as_bytes()
    assert "Tiêu đề" in message.get_body(("plain",)).get_content()


def test_maildir_by_default_delivers_once_and_resolves_interruptions(tmp_path: Path) -> None:
    world = World(tmp_path, None)
    world.at(vn(2026, 11, 21, 7, 0, 5))
    world.run()
    new = tmp_path / "var" / "outbox" / "new"
    files = sorted(new.iterdir())
    assert len(files) == 2
    parsed = email.message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert parsed["Subject"].startswith("Bản tin hoạt động lãnh đạo Bộ Y tế — 21/11/2026")
    # A process that died after delivering but before recording it:
    with sqlite3.connect(tmp_path / "var" / "digest.sqlite") as db:
        db.execute("update outbox set state = 'sending' where subscriber = 'lan@example.org'")
    world.run()
    assert world.states()[("lan@example.org", "daily:2026-11-21")] == "sent"
    assert len(list(new.iterdir())) == 2


def test_process_killed_before_data_leaves_nothing_unknown(
    tmp_path: Path, smtp: Any, launch: Callable[..., Any]
) -> None:
    """Claimed, but killed before the message's DATA began (here: a server that never
    greets): nothing left the process, so the next run sends those digests, once."""
    handler, controller = smtp
    copy_seeds(tmp_path / "seeds")
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(silent.accept()[0]), daemon=True).start()
    write_config(tmp_path, silent.getsockname()[1])
    run = [sys.executable, "-m", "digest", "--config", "config.toml"]
    subprocess.run([*run, "build"], cwd=tmp_path, check=True, capture_output=True)
    subscribed_days_ago(tmp_path, 3, ["all@example.org", "lan@example.org", "weekly@example.org"])
    sending = launch([*run, "send", "--period", "daily"], cwd=tmp_path, stderr=subprocess.PIPE)
    rows = wait_for_rows(tmp_path, "select subscriber from outbox where state = 'sending'")
    assert rows, "the sender never claimed a period"
    sending.send_signal(signal.SIGKILL)
    sending.wait()
    assert not outbox_rows(tmp_path, "select 1 from outbox where message_id is not null")
    silent.close()
    write_config(tmp_path, controller.port)
    again = subprocess.run(
        [*run, "send", "--period", "daily"], cwd=tmp_path, capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr
    states = dict(outbox_rows(tmp_path, "select subscriber, state from outbox"))
    assert "unknown" not in states.values() and "sending" not in states.values()
    delivered = [m["To"].addresses[0].addr_spec for m in handler.messages]
    assert len(delivered) == len(set(delivered))
    assert {who for (who,) in rows} <= set(delivered)


def test_a_send_killed_mid_run_loses_no_digest_that_never_left(
    tmp_path: Path, smtp: Any, launch: Callable[..., Any]
) -> None:
    """SIGKILL while some digests are in DATA and others only claimed: the next run sends
    the claimed ones, marks `unknown` only those whose DATA began, and exits non-zero; in the
    end every subscriber has the period exactly once (Message-IDs counted at the server)."""
    handler, controller = smtp
    handler.delay = 0.3  # in DATA
    handler.rcpt_delay = 0.2  # claimed, before DATA
    emails = [f"r{i}@example.org" for i in range(40)]
    copy_seeds(tmp_path / "seeds")
    write_config(tmp_path, controller.port, daily_subscribers(len(emails)))
    run = [sys.executable, "-m", "digest", "--config", "config.toml"]
    subprocess.run([*run, "build"], cwd=tmp_path, check=True, capture_output=True)
    everyone = ["all@example.org", "lan@example.org", *emails]
    subscribed_days_ago(tmp_path, 1, [*everyone, "weekly@example.org"])
    sending = launch([*run, "send", "--period", "daily"], cwd=tmp_path)
    both = (
        "select count(distinct message_id is null) from outbox where state = 'sending'"
        " and (select count(*) from outbox where state = 'sent') >= 4"
    )
    deadline = time.monotonic() + 30
    while outbox_rows(tmp_path, both) != [(2,)] and time.monotonic() < deadline:
        time.sleep(0.005)
    sending.send_signal(signal.SIGKILL)
    sending.wait()
    claimed = "select subscriber, message_id from outbox where state = 'sending'"
    in_data = dict(outbox_rows(tmp_path, claimed + " and message_id is not null"))
    before_data = {w for w, _ in outbox_rows(tmp_path, claimed + " and message_id is null")}
    assert in_data and before_data, "the kill did not find digests both in and before DATA"
    time.sleep(handler.delay + 0.2)  # the server finishes what it had received
    handler.delay = handler.rcpt_delay = 0
    again = subprocess.run(
        [*run, "send", "--period", "daily"], cwd=tmp_path, capture_output=True, text=True
    )
    assert again.returncode == 1, again.stdout  # some digests are unknown: the operator looks
    states = dict(
        outbox_rows(tmp_path, "select subscriber, state from outbox where period like 'daily:%'")
    )
    assert {w for w, s in states.items() if s == "unknown"} == set(in_data)
    assert {states[w] for w in before_data} <= {"sent", "empty"}
    assert "sending" not in states.values()
    received = Counter(m["To"].addresses[0].addr_spec for m in handler.messages)
    assert max(received.values()) == 1  # nobody got a period twice
    # Nobody silently lost: each got the period, or is `unknown` because its DATA began (the
    # server may have it, or not when the kill cut the transfer).
    sent = {w for w, s in states.items() if s == "sent"}
    assert sent <= set(received) <= sent | set(in_data)
    assert set(everyone) == sent | set(in_data) | {w for w, s in states.items() if s == "empty"}


def subscribed_days_ago(root: Path, days: int, emails: list[str]) -> None:
    """Subscribers that appeared `days` ago, the entries an hour later: every period since
    has content."""
    with sqlite3.connect(root / "var" / "digest.sqlite") as db:
        subscribed = int(time.time()) - days * 86400
        db.executemany(
            "insert into subscribers (email, first_seen) values (?, ?)",
            [(e, subscribed) for e in emails],
        )
        db.execute("update entries set seen_at = ?", (subscribed + 3600,))


def outbox_rows(root: Path, query: str) -> list[Any]:
    with sqlite3.connect(root / "var" / "digest.sqlite") as db:
        return db.execute(query).fetchall()


def wait_for_rows(root: Path, query: str) -> list[Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if rows := outbox_rows(root, query):
            return rows
        time.sleep(0.05)
    return []


def test_html_digest_fits_a_phone_and_a_desktop_client_in_chromium(
    world: World, tmp_path: Path
) -> None:
    """The mail as a client renders it: every headline whole at 390 px (a phone) and 600 px,
    nothing wider than the screen, and no WCAG 2.1 AA fault axe-core can see."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not installed")
    from playwright.sync_api import sync_playwright
    from test_browser import accessibility_violations

    subscriber = world.config.subscribers[1]
    letter = world.sender.preview(subscriber, "daily", vn(2025, 1, 1))
    assert letter.message is not None
    page_file = tmp_path / "digest.html"
    page_file.write_text(bodies(letter.message)[1], encoding="utf-8")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu"]
        )
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
            (ROOT / "tests" / "artifacts").mkdir(exist_ok=True)
            shot = ROOT / "tests" / "artifacts" / f"digest-mail-{width}.png"
            page.screenshot(path=str(shot), full_page=True)
            page.close()
        browser.close()


def test_slots_and_timer_in_vietnam_time(world: World) -> None:
    digests = world.config.digests
    found = slots("daily", digests, vn(2026, 11, 21, 7, 0), vn(2026, 11, 23, 7, 0))
    assert found == [vn(2026, 11, 22, 7, 0), vn(2026, 11, 23, 7, 0)]
    weekly = slots("weekly", digests, vn(2026, 11, 1), vn(2026, 11, 30, 8))
    assert [d.day for d in weekly] == [2, 9, 16, 23, 30] and all(d.weekday() == 0 for d in weekly)

    async def check() -> dict[str, datetime]:
        timer = Timer(digests, asyncio.Event())
        timer.start()
        try:
            jobs = {j.id: j for j in timer.scheduler.get_jobs()}
            assert all(j.misfire_grace_time is None for j in jobs.values())
            return timer.next_times()
        finally:
            timer.shutdown()

    times = asyncio.run(check())
    assert times["daily"].astimezone(VIETNAM).time().isoformat() == "07:00:00"
    assert times["weekly"].astimezone(VIETNAM).weekday() == 0
    assert times["daily"] - datetime.now(UTC) <= timedelta(days=1)


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


def test_send_and_dry_run_say_what_is_due_and_when_the_next_digest_comes(tmp_path: Path) -> None:
    import re

    copy_seeds(tmp_path / "seeds")
    write_config(tmp_path, None)
    run = [sys.executable, "-m", "digest", "--config", "config.toml"]
    subprocess.run([*run, "build"], cwd=tmp_path, check=True, capture_output=True)
    dry = subprocess.run([*run, "send", "--dry-run"], cwd=tmp_path, capture_output=True, text=True)
    lines = dry.stdout.splitlines()
    assert lines[0] == "would send: nothing is due now"
    day = r"\d\d/\d\d/\d{4} 07:00 Vietnam time"
    when = r"\w{3} " + day
    assert re.fullmatch(
        f"next daily digest: {when}, 2 subscribers \\(2 new: it will be their first digest\\)",
        lines[1],
    )
    assert re.fullmatch(f"next weekly digest: Mon {day}, 1 subscriber \\(1 new: .*\\)", lines[2])
    sent = subprocess.run([*run, "send"], cwd=tmp_path, capture_output=True, text=True)
    assert sent.returncode == 0
    lines = sent.stdout.splitlines()
    assert lines[0] == "digests: none due"
    assert re.fullmatch(f"next daily digest: {when}, 2 subscribers", lines[1])
