"""What the mail tests share: a real aiosmtpd server on 127.0.0.1 whose handler records what
arrives (and can refuse, drop or go slow), a project with the seeds ingested on a fake clock,
and small helpers to read the outbox and wait for it. The fixtures are in conftest.py.

Imported as `from mail.mailworld import ...`: pytest's importlib mode puts no test folder on
sys.path, only `tests` (pythonpath), where tests/mail/__init__.py makes this the `mail` package.
"""

from __future__ import annotations

import asyncio
import email
import os
import sys
import threading
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage, Message
from pathlib import Path
from typing import Any, TypeVar

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from raw import rows, sql
from support import base_config, copy_seeds, store_at, toml

from digest.app import make_digest
from digest.config import load
from digest.mail import Outcome, make_sender
from digest.model import VIETNAM, Choices
from digest.store import SubscriberRecord, new_key, open_store

T = TypeVar("T")

# `digest` in a child process, run in a project folder (cwd) on its config.toml.
DIGEST = [sys.executable, "-m", "digest", "--config", "config.toml"]


def vn(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=VIETNAM)


class Clock:
    """A fake clock; with `tick`, time moves on by that much at every reading."""

    def __init__(self, moment: datetime) -> None:
        self.moment = moment
        self.tick = timedelta(0)

    def now(self) -> datetime:
        reading = self.moment.astimezone(UTC)
        self.moment += self.tick
        return reading


class Handler:
    """Records what arrives; can refuse recipients (code per address, a count of times) or
    drop the connection during DATA."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refuse: dict[str, tuple[str, int]] = {}
        self.drop_after: int | None = None
        self.gone = False
        self.sessions: set[int] = set()  # connections that started a transaction
        self.connections = 0  # open now (counted by Server)
        self.delay = 0.0  # seconds each message takes to be accepted
        self.rcpt_delay = 0.0  # seconds a recipient takes, 0.5 to 2 times this by address
        # While cleared, every message waits at the end of its DATA, neither recorded nor
        # answered: a client killed then has a digest in DATA for certain.
        self.gate = threading.Event()
        self.gate.set()
        self.eight_bit_mime = True  # whether EHLO offers 8BITMIME
        self.raw: list[tuple[list[str], bytes]] = []  # (MAIL options, DATA) of each message

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.sessions.add(id(session))
        if self.gone:  # shutting down: every new transaction is turned away
            return "421 4.3.2 service shutting down"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        return [r for r in responses if self.eight_bit_mime or "8BITMIME" not in r]

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        # A slow server (on purpose): recipients take a while, some longer than others.
        await asyncio.sleep(self.rcpt_delay * (1 + zlib.crc32(address.encode()) % 4) / 2)
        reply, times = self.refuse.get(address, ("", 0))
        if times:
            self.refuse[address] = (reply, times - 1)
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        # A slow server (on purpose), before the count is read: it and the append are one step.
        await asyncio.sleep(self.delay)
        while not self.gate.is_set():
            await asyncio.sleep(0.005)
        if self.drop_after is not None and len(self.messages) >= self.drop_after:
            self.gone = True
            assert server.transport is not None
            server.transport.close()  # the server goes away while the data is in flight
            return "421 going away"
        assert envelope.original_content is not None and isinstance(envelope.content, bytes)
        self.raw.append((envelope.mail_options, envelope.original_content))
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 Message accepted"


class CountingSMTP(SMTP):
    """aiosmtpd's SMTP server, counting its open connections in the handler."""

    def __init__(self, handler: Handler, **options: Any) -> None:
        super().__init__(handler, **options)
        self.counted = handler

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.counted.connections += 1

    def connection_lost(self, error: Exception | None) -> None:
        # Losing the connection cancels whatever the handler was doing for it.
        super().connection_lost(error)
        self.counted.connections -= 1


class Server(Controller):
    """The test SMTP server on 127.0.0.1, in a thread of its own."""

    def __init__(self, handler: Handler, port: int) -> None:
        super().__init__(handler, hostname="127.0.0.1", port=port)
        self.recorder = handler

    def factory(self) -> SMTP:
        return CountingSMTP(self.recorder, **self.SMTP_kwargs)


Smtp = tuple[Handler, Server]  # what the `smtp` fixture hands out


def wait_until(condition: Callable[[], T], *, timeout: float = 20, every: float = 0.05) -> T:
    """Poll `condition` until it is truthy or `timeout` seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while not (value := condition()) and time.monotonic() < deadline:
        time.sleep(every)
    return value


def body(message: Message, subtype: str) -> str:
    """The decoded text of the message's `subtype` ("plain" or "html") part."""
    assert isinstance(message, EmailMessage)
    part = message.get_body((subtype,))
    assert part is not None, f"no text/{subtype} part"
    return str(part.get_content())


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


def write_config(
    root: Path,
    port: int | None,
    extra: str = "",
    *,
    processes: int = 1,
    store: str | None = None,
) -> Path:
    """A config of the test's own: SMTP to the test server on `port` (the Maildir outbox
    when None), the three subscribers above, and `extra` subscribers; its store the
    PostgreSQL database at `store`, or (None) the SQLite file in `root`."""
    smtp = toml("smtp", host="127.0.0.1", port=port, security="none") if port is not None else ""
    tables = smtp + toml("digests", processes=processes) + SUBSCRIBERS + extra
    config = base_config(tables, store=store)
    (root / "config.toml").write_text(config, encoding="utf-8")
    return root / "config.toml"


class World:
    """A project with the seeds ingested at a known time and a sender on a fake clock; its
    store the PostgreSQL database at `store`, or (None) a SQLite file."""

    def __init__(
        self, root: Path, port: int | None, extra: str = "", *, store: str | None = None
    ) -> None:
        self.root = root
        self.where = store_at(root, store)  # for tests/raw.py
        copy_seeds(root / "seeds")
        self.config = load(write_config(root, port, extra, store=store))
        self.clock = Clock(vn(2026, 11, 20, 10, 0))
        self.app = make_digest(self.config, clock=self.clock)
        self.sender = make_sender(self.config, self.app.store, self.clock.now)
        self.sender.plan(self.clock.now())  # the subscribers appear in config now
        self.at(vn(2026, 11, 20, 11, 0))
        self.app.build()

    def at(self, moment: datetime) -> None:
        self.clock.moment = moment

    def run(self) -> list[Outcome]:
        return asyncio.run(self.sender.run(recover=True))

    def states(self) -> dict[tuple[str, str], str]:
        return {(r.subscriber, r.period): r.state for r in self.sender.outbox.outbox_rows(500)}


def add_capture(world: World, name: str, title: str, when: str) -> None:
    (world.root / "seeds" / name).write_text(
        f"HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ\n{title}\nThứ Hai, ngày {when}Sáng nay, Bộ trưởng...\n",
        encoding="utf-8",
    )
    world.app.build()


def daily_subscribers(count: int) -> str:
    """config.toml blocks for `count` more daily subscribers, r0@example.org and on."""
    return "".join(
        f'\n[[subscribers]]\nemail = "r{i}@example.org"\nschedule = "daily"\n' for i in range(count)
    )


def assert_each_sent_once(
    world: World, handler: Handler, outcomes: list[Outcome], count: int
) -> None:
    assert len(outcomes) == count and {o.state for o in outcomes} == {"sent"}
    delivered = [m["To"].addresses[0].addr_spec for m in handler.messages]
    assert len(delivered) == len(set(delivered)) == count
    # Message-IDs recorded in the outbox are the ones that arrived.
    recorded = {r.message_id for r in world.sender.outbox.outbox_rows(500) if r.state == "sent"}
    assert recorded == {m["Message-ID"] for m in handler.messages}


def sharded_world(root: Path, port: int, subscribers: int, *, store: str | None = None) -> World:
    """A world of `subscribers` more daily subscribers, delivered by two processes."""
    extra = daily_subscribers(subscribers)
    world = World(root, port, extra, store=store)
    world.config = load(write_config(root, port, extra, processes=2, store=store))
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


def subscribed_days_ago(
    root: Path,
    days: int,
    emails: list[str],
    *,
    where: Path | str | None = None,
    source: str = "config",
) -> None:
    """Subscribers that appeared `days` ago, the entries seconds later: every period since
    has content (an hour later, the due daily period missed them from 06:00 to 07:00 in
    Vietnam, when its window ends less than an hour after the entries appeared)."""
    since = datetime.now(UTC).replace(microsecond=0) - timedelta(days=days)
    where = where or store_at(root, None)  # or another store's URL
    store = open_store(where)
    try:  # as config.toml's subscribers are stored on a send; config fills in their choices
        store.subscribers.save(
            [
                SubscriberRecord(
                    email=e,
                    key=new_key(),
                    name="",
                    choices=Choices("daily"),
                    state="active",
                    source=source,
                    created=since,
                    since=since,
                )
                for e in emails
            ]
        )
    finally:
        store.close()
    sql(where, f"update entries set seen_at = {int(since.timestamp()) + 5}")


def outbox_rows(where: Path | str, query: str, **params: Any) -> list[tuple[Any, ...]]:
    """What `query` finds in the store at `where` (its SQLite file, or its database's URL)."""
    return rows(where, query, **params)


def wait_for_rows(where: Path | str, query: str) -> list[tuple[Any, ...]]:
    """The rows `query` finds, once it finds any (none after 20 s)."""
    return wait_until(lambda: outbox_rows(where, query))
