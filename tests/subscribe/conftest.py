"""The readers' pages in a real world: a project with the five seeds built and published on
a fake clock, the real store, the real Sender (delivering into the Maildir outbox), the real
Forms behind the real PublicApp, all driven in-process through tests/support.py's `call`.

`make_world(extra_toml)` builds one (closed at the end of the test) on the test's engine
(tests/conftest.py); `world` is one with every setting at its default. A World also reads
what a browser reads: the forms on a page (`page_forms`, `World.submit`) and the links in a
mail (`World.deliver`)."""

from __future__ import annotations

import asyncio
import email
import html
import shutil
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from raw import rows
from support import Response, _call, base_config, call, copy_seeds, store_at, toml

from digest import daemon
from digest.app import Digest, make_digest
from digest.config import Config, load
from digest.mail import Sender, make_sender
from digest.model import VIETNAM
from digest.server import PublicApp
from digest.store import SubscriberRecord
from digest.subscribe.web import Forms

BASE = "https://example.org/tin/"
ORIGIN = "https://example.org"
FORM = "application/x-www-form-urlencoded"
WEEKDAYS = ("Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ Nhật")
START = datetime(2026, 11, 20, 10, 0, tzinfo=VIETNAM)  # the seeds are built at this moment


def vn(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=VIETNAM)


class Clock:
    """A fake clock, moved by hand."""

    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def now(self) -> datetime:
        return self.moment.astimezone(UTC)

    def move(self, by: timedelta) -> None:
        self.moment += by


def target(url: str) -> str:
    """The request target of one of the site's absolute URLs (as the proxy hands it on)."""
    assert url.startswith(BASE), url
    return "/" + url.removeprefix(BASE)


def health() -> tuple[int, dict[str, Any]]:
    return 200, {"status": "ok"}


# -- what a browser reads on a page -----------------------------------------------------------


@dataclass
class Form:
    action: str
    method: str
    fields: list[tuple[str, str]] = field(default_factory=list)  # sent without a button
    offered: dict[str, list[str]] = field(default_factory=dict)  # checkbox/radio values
    buttons: list[tuple[str, str, str]] = field(default_factory=list)  # (name, value, text)


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[Form] = []
        self._open: Form | None = None
        self._button: list[str] | None = None  # the text of the button being read

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        checked = any(k == "checked" for k, _ in attrs)
        if tag == "form":
            self._open = Form(a.get("action", ""), a.get("method", "get").lower())
            self.found.append(self._open)
            return
        if self._open is None:
            return
        if tag == "button" and "name" not in a:
            self._button = ["", "", ""]
            return
        if "name" not in a:
            return
        name, value = a["name"], a.get("value", "")
        kind = a.get("type", "text")
        if tag == "button":
            self._button = [name, value, ""]
        elif tag == "input" and kind in ("checkbox", "radio"):
            self._open.offered.setdefault(name, []).append(value)
            if checked:
                self._open.fields.append((name, value))
        elif tag == "input":
            self._open.fields.append((name, value))

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._button[2] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "button" and self._button is not None and self._open is not None:
            name, value, text = self._button
            self._open.buttons.append((name, value, text.strip()))
            self._button = None
        if tag == "form":
            self._open = None


def page_forms(page: bytes) -> list[Form]:
    parser = _Forms()
    parser.feed(page.decode())
    return parser.found


def the_form(page: bytes, button: str) -> Form:
    """The page's one form with a submit button of this value or text."""
    found = [f for f in page_forms(page) if any(button in (v, t) for _, v, t in f.buttons)]
    assert len(found) == 1, f"{len(found)} forms with a {button!r} button"
    return found[0]


def link(page: bytes, label: str) -> str:
    """The href of the page's link with this text."""
    text = page.decode()
    end = text.index(f">{label}</a>")
    start = text.rindex('href="', 0, end) + len('href="')
    return html.unescape(text[start : text.index('"', start)])


def main_text(page: bytes) -> str:
    """What the page says, between <main> and </main>."""
    text = page.decode()
    return text[text.index("<main>") : text.index("</main>")]


# -- the world ----------------------------------------------------------------------------------


class World:
    def __init__(
        self, root: Path, extra: str, *, built: Path | None = None, store: str | None = None
    ) -> None:
        """The five seeds built and published at START, or a copy of a `built` world's
        folders (seeds, store, public: the same thing, made once per session); its store the
        PostgreSQL database at `store`, or (None) a SQLite file."""
        self.root = root
        self.store = store
        self.where = store_at(root, store)  # for tests/raw.py
        self.clock = Clock(START)
        self.delivered: set[str] = set()
        if built is not None:
            shutil.copytree(built, root)
            self.open(extra)
            return
        copy_seeds(root / "seeds")
        self.open(extra)
        self.app.build()
        self.app.publish()

    def open(self, extra: str) -> None:
        """The config written with `extra` TOML, and every part made over it."""
        text = base_config(toml("site", base_url=BASE) + extra, store=self.store)
        (self.root / "config.toml").write_text(text, encoding="utf-8")
        self.config: Config = load(self.root / "config.toml")
        self.app: Digest = make_digest(self.config, clock=self.clock)
        self.sender: Sender = make_sender(self.config, self.app.store, self.clock.now)
        pages = daemon.pages(self.config)
        self.forms = Forms(self.config, self.app.store, self.sender, self.clock.now, pages=pages)
        self.public = PublicApp(self.config.paths.public, health, (self.forms,), pages=pages)

    def reopen(self, extra: str) -> None:
        """As the daemon after a restart on a changed config: the same store and folders."""
        self.app.close()
        self.open(extra)

    def close(self) -> None:
        self.app.close()

    @property
    def secret(self) -> str:
        return self.app.store.outbox.secret()

    # -- requests ---------------------------------------------------------------------------

    def get(
        self, path: str, headers: Mapping[str, str] | None = None, *, client: str = "127.0.0.1"
    ) -> Response:
        return call(self.public, path, "GET", dict(headers or {}), client=client)

    def fetch(self, path: str) -> tuple[int, list[tuple[str, str]], bytes]:
        """A GET without `call`'s checks of the framing: (status, every header as sent, body),
        for answers that send a header twice."""
        raw_path, _, query = path.partition("?")
        scope = {
            "type": "http",
            "method": "GET",
            "path": raw_path,
            "raw_path": raw_path.encode(),
            "query_string": query.encode(),
            "headers": [],
            "client": ("127.0.0.1", 40000),
        }
        sent: list[MutableMapping[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        asyncio.run(self.public(scope, receive, send))
        start, *rest = sent
        headers = [(k.decode(), v.decode()) for k, v in start["headers"]]
        return start["status"], headers, b"".join(m.get("body", b"") for m in rest)

    def post(
        self,
        path: str,
        fields: Sequence[tuple[str, str]] | Mapping[str, str] = (),
        headers: Mapping[str, str] | None = None,
        *,
        origin: str | None = ORIGIN,
        client: str = "127.0.0.1",
        body: bytes | None = None,
    ) -> Response:
        """A form posted as a browser on the site posts it (Origin), unless told otherwise."""
        sent = {"content-type": FORM}
        if origin is not None:
            sent["origin"] = origin
        sent |= dict(headers or {})
        data = urlencode(fields).encode() if body is None else body
        return call(self.public, path, "POST", sent, [data], reads_body=True, client=client)

    def sign_up(
        self,
        address: str,
        *,
        officials: Sequence[str] = (),
        topics: Sequence[str] = (),
        schedule: str = "daily",
        client: str = "127.0.0.1",
        headers: Mapping[str, str] | None = None,
        origin: str | None = ORIGIN,
        honeypot: str = "",
    ) -> Response:
        """The sign-up form filled in and sent (the hidden field as a person leaves it)."""
        fields = [("email", address), ("lich", schedule)]
        fields += [("quan-chuc", s) for s in officials] + [("chu-de", s) for s in topics]
        fields += [("trang-web", honeypot)]
        return self.post("/dang-ky", fields, headers, origin=origin, client=client)

    def sign_ups(
        self, batch: Sequence[tuple[str, str, Mapping[str, str]]], *, at_once: int = 1
    ) -> list[Response]:
        """Many sign-ups, (address, client, headers) each, answered in one event loop with
        `at_once` in flight together, as the daemon answers them (each beside the loop, in
        a thread); the answers in the order of `batch`."""

        async def flood() -> list[Response]:
            gate = asyncio.Semaphore(at_once)

            async def one(address: str, client: str, headers: Mapping[str, str]) -> Response:
                fields = {"email": address, "lich": "daily", "trang-web": ""}
                sent = {"content-type": FORM, "origin": ORIGIN, **headers}
                data = [urlencode(fields).encode()]
                async with gate:
                    response, unread = await _call(
                        self.public, "POST", "/dang-ky", sent, data, client
                    )
                assert not unread
                return response

            return await asyncio.gather(*(one(*request) for request in batch))

        return asyncio.run(flood())

    def submit(
        self,
        form: Form,
        button: str | None = None,
        change: Mapping[str, Sequence[str]] | None = None,
        *,
        origin: str | None = ORIGIN,
    ) -> Response:
        """Submit a page's form as a browser would: its fields (those in `change` replaced)
        and the named button of this value."""
        change = change or {}
        fields = [(k, v) for k, v in form.fields if k not in change]
        fields += [(k, v) for k, values in change.items() for v in values]
        if button is not None:
            pressed = [(k, v) for k, v, t in form.buttons if button in (v, t)]
            assert len(pressed) == 1, f"no {button!r} button in {form}"
            fields += [(k, v) for k, v in pressed if k]
        assert form.method == "post"
        return self.post(target(form.action), fields, origin=origin)

    # -- mail -------------------------------------------------------------------------------

    def deliver(self) -> list[EmailMessage]:
        """Send the queued notices with the real Sender; the mails that arrived in the
        Maildir since the last delivery, oldest first."""
        asyncio.run(self.sender.send_notices(asyncio.Event()))
        folder = self.config.paths.outbox / "new"
        if not folder.exists():  # made by the first delivery
            return []
        arrived = sorted(
            (p for p in folder.iterdir() if p.name not in self.delivered),
            key=lambda p: (p.stat().st_mtime_ns, p.name),
        )
        found = []
        for path in arrived:
            message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
            assert isinstance(message, EmailMessage)
            found.append(message)
            self.delivered.add(path.name)
        return found

    def run_digests(self) -> None:
        """A digest run of the real Sender, as the daemon's timer starts one."""
        asyncio.run(self.sender.run())

    # -- the store --------------------------------------------------------------------------

    def record(self, address: str) -> SubscriberRecord | None:
        return self.app.store.subscribers.find(email=address)

    def sql(self, query: str, **params: object) -> list[tuple[Any, ...]]:
        """What `query` finds in the store, its `:name` parameters bound to `params`."""
        return rows(self.where, query, **params)

    def notices(self) -> list[tuple[str, str, str]]:
        """(email, kind, state) of every queued or sent notice, in order."""
        return [
            (e, k, s) for e, k, s in self.sql("select email, kind, state from notices order by id")
        ]

    def hits(self) -> dict[str, int]:
        """Sign-ups counted per client (all hours)."""
        rows = self.sql("select client, sum(count) from form_hits group by client")
        return {client: int(n) for client, n in rows}

    def capture(self, name: str, title: str, published: datetime) -> None:
        """A capture file holding one listing item published at `published`, built now."""
        local = published.astimezone(VIETNAM)
        # The listing's times are read as UTC (what the seeds' captures hold).
        utc = published.astimezone(UTC)
        when = f"{WEEKDAYS[local.weekday()]}, ngày {utc:%d/%m/%Y %H:%M}"
        text = f"HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ\n{title}\n{when}Sáng nay, lãnh đạo Bộ...\n"
        (self.root / "seeds" / name).write_text(text, encoding="utf-8")
        report = self.app.build()
        assert report.entries_new == 1, report


@pytest.fixture(scope="session")
def published_seeds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A world's folders once the seeds are built and published, closed: every world
    starts from a copy (publishing the seeds takes longer than most tests)."""
    root = tmp_path_factory.mktemp("subscribe") / "built"
    World(root, "").close()
    return root


@pytest.fixture
def make_world(
    tmp_path: Path, published_seeds: Path, store_urls: Callable[[], str | None]
) -> Iterator[Callable[..., World]]:
    """Builds worlds from extra TOML tables ([subscriptions], [server], …), each with a store
    of its own on the test's engine; all closed at the end of the test."""
    made: list[World] = []

    def make(extra: str = "") -> World:
        root, url = tmp_path / f"w{len(made)}", store_urls()
        # On PostgreSQL built anew: the session's built world is a SQLite file.
        w = World(root, extra, built=published_seeds if url is None else None, store=url)
        made.append(w)
        return w

    yield make
    for w in made:
        w.close()


@pytest.fixture
def world(make_world: Callable[..., World]) -> World:
    return make_world()
