"""PublicApp driven in-process as an ASGI app over a real public folder; GuardedHttp's limits."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import hashlib
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import uvicorn
from support import TEMPLATES, call

from digest.config import Site
from digest.server import CONTENT_TYPES, GuardedHttp, Pages, PublicApp, read_body, respond

SITE = Site(base_url="https://example.org/tin/", title="Hoạt động lãnh đạo Bộ Y tế", feed_size=20)
SECRET = b"SECRET-OUTSIDE-THE-FOLDER"
MTIME = 1_763_272_800  # 16/11/2025 06:00 UTC, whole seconds

# Over the gzip threshold (512 bytes), Vietnamese, and compressible.
INDEX = ("<!doctype html><html lang='vi'><p>Hoạt động của lãnh đạo Bộ Y tế</p>" * 20).encode()
ATOM = (
    '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
    + "<entry><title>Thứ trưởng thăm Bệnh viện Bạch Mai</title></entry>" * 20
    + "</feed>"
).encode()
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4  # over the threshold, never compressed


# --- the public folder and the app ---------------------------------------------------------


@dataclass
class RecordingForms:
    """Stands in for the readers' pages (tested in tests/subscribe/): answers its one path,
    records each request whose body it read whole."""

    path: str = "/unsubscribe"
    calls: list[tuple[str, bytes]] = field(default_factory=list)

    def handles(self, path: str) -> bool:
        return path == self.path

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = await read_body(receive)
        if body is None:
            await respond(send, 413, b"incomplete\n")
            return
        self.calls.append((scope["method"], body))
        await respond(send, 200, b"forms\n")


@functools.cache
def pages() -> Pages:
    """One set of compiled templates for every test: the server only reads them."""
    return Pages(TEMPLATES, SITE)


@functools.cache
def not_found_page() -> bytes:
    """The published 404.html, rendered as the site renders it."""
    template = pages().env.get_template("site/404.html")
    return template.render(site=SITE, root=SITE.base_url, feeds=[]).encode()


FILES: dict[str, bytes] = {
    "index.html": INDEX,
    "404.html": b"",  # filled in by the fixture
    "feeds/all.atom": ATOM,
    "feeds/all.rss": b'<?xml version="1.0"?><rss version="2.0"><channel/></rss>',
    "feeds/all.json": json.dumps({"version": "https://jsonfeed.org/version/1.1"}).encode(),
    "feeds.opml": b'<?xml version="1.0"?><opml version="2.0"/>',
    "style.css": b"body { margin: 0 }\n",
    "robots.txt": b"User-agent: *\n",
    "favicon.ico": b"\x00\x00\x01\x00",
    "favicon.svg": b'<svg xmlns="http://www.w3.org/2000/svg"/>',
    "logo.png": PNG,
    "data.bin": b"\x01\x02",
    "entries/2025/11/tham-bach-mai.html": "<p>Thăm Bệnh viện Bạch Mai</p>".encode(),
}


@pytest.fixture
def public(tmp_path: Path) -> Path:
    root = tmp_path / "public"
    for name, data in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data or not_found_page())
        os.utime(path, (MTIME, MTIME))
    # A writer's temporaries and hidden files.
    (root / ".tmp").mkdir()
    (root / ".tmp" / "1-index.html").write_bytes(b"half a page")
    (root / "entries" / ".x.html.1.tmp").write_bytes(b"half a page")
    (root / ".hidden.html").write_bytes(b"hidden")
    # A backslash is a plain character on Linux, a separator elsewhere: never served.
    (root / "feeds\\..\\secret.html").write_bytes(SECRET)
    # What lies outside, and symlinks leading to it.
    (tmp_path / "secret.html").write_bytes(SECRET)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.html").write_bytes(SECRET)
    (root / "link-out.html").symlink_to(tmp_path / "secret.html")
    (root / "relative-out.html").symlink_to(Path("..") / "secret.html")
    (root / "dir-out").symlink_to(tmp_path / "outside")
    # A symlink that stays inside is an ordinary file of the folder.
    (root / "alias.html").symlink_to("index.html")
    return root


@pytest.fixture
def forms() -> RecordingForms:
    return RecordingForms()


def health() -> tuple[int, dict[str, Any]]:
    return 503, {"status": "failing", "error": "không đọc được thư mục"}


@pytest.fixture
def app(public: Path, forms: RecordingForms) -> PublicApp:
    return PublicApp(public, health, (forms,), pages=pages())


# --- files -----------------------------------------------------------------------------------


def test_each_file_is_served_whole_with_its_type(app: PublicApp, public: Path) -> None:
    expected = {
        "/": ("index.html", "text/html; charset=utf-8"),
        "/index.html": ("index.html", "text/html; charset=utf-8"),
        "/feeds/all.atom": ("feeds/all.atom", "application/atom+xml; charset=utf-8"),
        "/feeds/all.rss": ("feeds/all.rss", "application/rss+xml; charset=utf-8"),
        "/feeds/all.json": ("feeds/all.json", "application/feed+json; charset=utf-8"),
        "/feeds.opml": ("feeds.opml", "text/x-opml; charset=utf-8"),
        "/style.css": ("style.css", "text/css; charset=utf-8"),
        "/robots.txt": ("robots.txt", "text/plain; charset=utf-8"),
        "/favicon.ico": ("favicon.ico", "image/x-icon"),
        "/favicon.svg": ("favicon.svg", "image/svg+xml"),
        "/logo.png": ("logo.png", "image/png"),
        "/data.bin": ("data.bin", "application/octet-stream"),
        "/entries/2025/11/tham-bach-mai.html": (
            "entries/2025/11/tham-bach-mai.html",
            "text/html; charset=utf-8",
        ),
        "/alias.html": ("index.html", "text/html; charset=utf-8"),
    }
    assert {t for _, t in expected.values()} >= set(CONTENT_TYPES.values())
    for target, (name, content_type) in expected.items():
        r = call(app, target)
        assert r.status == 200, target
        assert r.headers["content-type"] == content_type, target
        assert r.body == (public / name).read_bytes(), target
        assert r.headers["content-length"] == str(len(r.body))
        assert r.headers["cache-control"] == "public, max-age=60"
        assert "content-encoding" not in r.headers


def test_validators_name_the_content_and_the_mtime(app: PublicApp) -> None:
    r = call(app, "/feeds/all.atom")
    assert r.headers["etag"] == f'W/"{hashlib.sha256(ATOM).hexdigest()[:32]}"'
    assert r.headers["last-modified"] == formatdate(MTIME, usegmt=True)
    assert r.headers["last-modified"] == "Sun, 16 Nov 2025 06:00:00 GMT"
    assert r.headers["vary"] == "accept-encoding"
    # Same content, another file: the same tag; other content: another tag.
    assert call(app, "/alias.html").headers["etag"] == call(app, "/index.html").headers["etag"]
    assert call(app, "/index.html").headers["etag"] != r.headers["etag"]


@pytest.mark.parametrize(
    ("if_none_match", "status"),
    [
        ("{etag}", 304),
        ("{strong}", 304),  # weak comparison: W/ does not matter
        ('"other", {etag}', 304),
        ('"other",{strong} ', 304),
        ("*", 304),
        ('"other"', 200),
        ('W/"other"', 200),
        ("", 200),
    ],
)
def test_if_none_match(app: PublicApp, if_none_match: str, status: int) -> None:
    first = call(app, "/feeds/all.atom")
    etag = first.headers["etag"]
    header = if_none_match.format(etag=etag, strong=etag.removeprefix("W/"))
    r = call(app, "/feeds/all.atom", headers={"If-None-Match": header})
    assert r.status == status
    if status == 304:
        assert r.body == b""
        assert r.headers["etag"] == etag
        assert r.headers["last-modified"] == first.headers["last-modified"]
    else:
        assert r.body == ATOM


@pytest.mark.parametrize(
    ("since", "status"),
    [
        ("Sun, 16 Nov 2025 06:00:00 GMT", 304),  # the Last-Modified sent
        ("Sun, 16 Nov 2025 06:00:01 GMT", 304),
        ("Fri, 01 Jan 2100 00:00:00 GMT", 304),
        ("Sun, 16 Nov 2025 05:59:59 GMT", 200),
        ("Mon, 01 Jan 2001 00:00:00 GMT", 200),
        ("not a date", 200),
        ("", 200),
    ],
)
def test_if_modified_since(app: PublicApp, since: str, status: int) -> None:
    r = call(app, "/feeds/all.atom", headers={"If-Modified-Since": since})
    assert r.status == status
    assert r.body == (b"" if status == 304 else ATOM)


def test_if_none_match_wins_over_if_modified_since(app: PublicApp) -> None:
    etag = call(app, "/index.html").headers["etag"]
    later = "Fri, 01 Jan 2100 00:00:00 GMT"
    earlier = "Mon, 01 Jan 2001 00:00:00 GMT"
    both = {"If-None-Match": '"other"', "If-Modified-Since": later}
    assert call(app, "/index.html", headers=both).status == 200
    both = {"If-None-Match": etag, "If-Modified-Since": earlier}
    assert call(app, "/index.html", headers=both).status == 304


def test_a_changed_file_is_served_anew_with_new_validators(app: PublicApp, public: Path) -> None:
    before = call(app, "/feeds/all.atom")
    # Rewritten in place (another size), then replaced by rename (another inode, same size).
    changed = ATOM + b"<!-- 2 -->"
    (public / "feeds" / "all.atom").write_bytes(changed)
    r = call(app, "/feeds/all.atom", headers={"If-None-Match": before.headers["etag"]})
    assert r.status == 200 and r.body == changed
    assert r.headers["etag"] != before.headers["etag"]
    assert r.headers["last-modified"] != before.headers["last-modified"]
    replacement = ATOM + b"<!-- 3 -->"
    assert len(replacement) == len(changed)
    (public / "feeds" / ".all.atom.tmp").write_bytes(replacement)
    (public / "feeds" / ".all.atom.tmp").replace(public / "feeds" / "all.atom")
    again = call(app, "/feeds/all.atom")
    assert again.body == replacement and again.headers["etag"] != r.headers["etag"]
    # Gone: 404, and not served from memory.
    (public / "feeds" / "all.atom").unlink()
    assert call(app, "/feeds/all.atom").status == 404


def test_head_has_the_headers_of_get_and_no_body(app: PublicApp) -> None:
    for headers in ({}, {"Accept-Encoding": "gzip"}):
        get = call(app, "/feeds/all.atom", headers=headers)
        head = call(app, "/feeds/all.atom", method="HEAD", headers=headers)
        assert head.status == 200 and head.body == b""
        assert head.headers == get.headers
        assert int(head.headers["content-length"]) == len(get.body) > 0
    etag = call(app, "/index.html").headers["etag"]
    not_modified = call(app, "/index.html", method="HEAD", headers={"If-None-Match": etag})
    assert not_modified.status == 304 and not_modified.body == b""
    missing = call(app, "/missing.html", method="HEAD")
    assert missing.status == 404 and missing.body == b""
    assert missing.headers["content-type"] == "text/html; charset=utf-8"


@pytest.mark.parametrize(
    ("accept", "gzipped"),
    [
        ("gzip", True),
        ("GZIP", True),
        ("gzip, deflate, br", True),
        ("br;q=1, gzip;q=0.8", True),
        ("gzip;q=0.001", True),
        ("*", True),
        ("gzip;q=0", False),
        ("gzip ; q=0", False),
        ("gzip;q=0.0", False),
        ("gzip;q=0.000", False),
        ("br, gzip;q=0, *", False),
        ("*;q=0", False),
        ("br", False),
        ("identity", False),
        ("x-gzip", False),
        ("", False),
    ],
)
def test_gzip_only_when_accept_encoding_allows_it(
    app: PublicApp, accept: str, gzipped: bool
) -> None:
    r = call(app, "/feeds/all.atom", headers={"Accept-Encoding": accept})
    assert r.status == 200 and r.headers["vary"] == "accept-encoding"
    if gzipped:
        assert r.headers["content-encoding"] == "gzip"
        assert gzip.decompress(r.body) == ATOM and len(r.body) < len(ATOM) / 2
    else:
        assert "content-encoding" not in r.headers and r.body == ATOM


def test_gzip_is_refused_by_a_zero_qvalue_with_a_bare_dot(app: PublicApp) -> None:
    r = call(app, "/feeds/all.atom", headers={"Accept-Encoding": "gzip;q=0."})
    assert "content-encoding" not in r.headers and r.body == ATOM


def test_small_and_binary_files_are_never_gzipped(app: PublicApp) -> None:
    for target in ("/style.css", "/feeds/all.rss", "/logo.png"):
        r = call(app, target, headers={"Accept-Encoding": "gzip"})
        assert r.status == 200 and "content-encoding" not in r.headers, target
    assert call(app, "/logo.png", headers={"Accept-Encoding": "gzip"}).body == PNG


# --- what is never served --------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "/../secret.html",
        "/%2e%2e/secret.html",
        "/%2E%2E%2Fsecret.html",
        "/feeds/../../secret.html",
        "/feeds/%2e%2e/%2e%2e/secret.html",
        "/..%2f..%2fsecret.html",
        "/..%5Csecret.html",
        "/feeds%5C..%5C..%5Csecret.html",
        "/feeds\\..\\..\\secret.html",
        "/feeds\\..\\secret.html",
        "/feeds%5C..%5Csecret.html",
        "//etc/passwd",
        "/%2Fetc%2Fpasswd",
        "/index.html%00",
        "/index.html%00.png",
        "/link-out.html",
        "/relative-out.html",
        "/dir-out/secret.html",
        "/dir-out",
    ],
)
def test_every_way_out_of_the_folder_is_404(app: PublicApp, target: str) -> None:
    r = call(app, target)
    assert r.status == 404
    assert SECRET not in r.body and b"root:" not in r.body
    assert r.body == not_found_page()


def test_an_absolute_path_to_a_file_outside_is_404(app: PublicApp, tmp_path: Path) -> None:
    secret = (tmp_path / "secret.html").as_posix()
    for target in ("/" + secret, "/" + quote(secret, safe=""), secret):
        r = call(app, target)
        assert r.status == 404, target
        assert SECRET not in r.body


@pytest.mark.parametrize(
    "target",
    [
        "/.tmp/1-index.html",
        "/entries/.x.html.1.tmp",
        "/.hidden.html",
        "/%2Ehidden.html",
        "/./index.html",
        "/entries/./2025/11/tham-bach-mai.html",
        "/.tmp/",
    ],
)
def test_dot_names_are_404(app: PublicApp, target: str) -> None:
    r = call(app, target)
    assert r.status == 404 and r.body == not_found_page()
    assert b"half a page" not in r.body and b"hidden" not in r.body


@pytest.mark.parametrize(
    "target", ["/missing.html", "/feeds/", "/feeds", "/entries/2025", "/index.html/", "/404"]
)
def test_an_unknown_path_gets_the_vietnamese_404_page(app: PublicApp, target: str) -> None:
    r = call(app, target)
    assert r.status == 404
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["cache-control"] == "no-store"
    assert r.body == not_found_page()
    text = r.body.decode()
    assert '<html lang="vi">' in text and "Không tìm thấy trang" in text


def test_without_a_published_404_page_the_answer_is_plain(app: PublicApp, public: Path) -> None:
    (public / "404.html").unlink()
    r = call(app, "/missing.html")
    assert r.status == 404 and r.body == b"Not found\n"
    assert r.headers["content-type"] == "text/plain; charset=utf-8"


def test_a_folder_reached_through_a_symlink_is_served(public: Path, tmp_path: Path) -> None:
    link = tmp_path / "public-link"
    link.symlink_to(public, target_is_directory=True)
    app = PublicApp(link, health, pages=pages())
    assert call(app, "/index.html").body == INDEX
    assert call(app, "/entries/2025/11/tham-bach-mai.html").status == 200
    assert call(app, "/link-out.html").status == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"])
@pytest.mark.parametrize("target", ["/index.html", "/missing.html", "/healthz", "/.hidden.html"])
def test_other_methods_are_refused(app: PublicApp, method: str, target: str) -> None:
    r = call(app, target, method=method)
    assert r.status == 405
    assert r.headers["allow"] == "GET, HEAD"
    assert r.body == b"Method not allowed\n"


def test_healthz_answers_what_the_check_says(app: PublicApp) -> None:
    r = call(app, "/healthz")
    assert r.status == 503
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    assert r.headers["cache-control"] == "no-store"
    assert json.loads(r.body) == {"status": "failing", "error": "không đọc được thư mục"}
    assert "không đọc được".encode() in r.body  # UTF-8, not \\u escapes
    head = call(app, "/healthz", method="HEAD")
    assert head.status == 503 and head.body == b""
    assert head.headers["content-length"] == r.headers["content-length"]


def test_other_asgi_scopes_are_ignored(app: PublicApp) -> None:
    sent: list[object] = []

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: Any) -> None:
        sent.append(message)

    asyncio.run(app({"type": "lifespan"}, receive, send))
    assert sent == []


# --- the readers' pages ---------------------------------------------------------------------


def test_the_forms_paths_go_to_the_forms_with_their_whole_body(
    app: PublicApp, forms: RecordingForms
) -> None:
    r = call(app, "/unsubscribe?x=1", method="POST", body=[b"a=", b"1"], reads_body=True)
    assert (r.status, r.body) == (200, b"forms\n")
    assert forms.calls == [("POST", b"a=1")]
    assert call(app, "/index.html").body == INDEX  # everything else is the folder's


def test_without_forms_their_paths_are_ordinary_paths(public: Path) -> None:
    app = PublicApp(public, health, pages=pages())
    assert call(app, "/unsubscribe?email=a%40b.org&token=x").status == 404
    refused = call(app, "/unsubscribe", method="POST")
    assert refused.status == 405 and refused.headers["allow"] == "GET, HEAD"


# --- GuardedHttp -----------------------------------------------------------------------------


class QuietServer(uvicorn.Server):
    """uvicorn without its signal handlers: pytest keeps its own."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def test_a_request_body_that_never_comes_does_not_hold_the_connection(public: Path) -> None:
    forms = RecordingForms()
    app = PublicApp(public, health, (forms,), pages=pages())
    http = type("Http", (GuardedHttp,), {"header_timeout": 0.3, "max_header_bytes": 4096})
    config = uvicorn.Config(
        app, http=http, lifespan="off", log_config=None, access_log=False, timeout_keep_alive=1
    )
    server = QuietServer(config)

    async def scenario() -> tuple[bytes, float]:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            deadline = time.monotonic() + 10
            while not server.started:
                assert not serving.done() and time.monotonic() < deadline
                await asyncio.sleep(0.01)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            request = "POST /unsubscribe HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
            writer.write(request.encode())
            await writer.drain()
            started = time.monotonic()
            try:
                received = await asyncio.wait_for(reader.read(), 2)
            except TimeoutError:
                received = b"(still open)"
            took = time.monotonic() - started
            writer.close()
            return received, took
        finally:
            server.should_exit = True
            server.force_exit = True
            await asyncio.wait_for(serving, 10)

    received, took = asyncio.run(scenario())
    assert received != b"(still open)" and took < 2
    assert forms.calls == []  # a body that never came whole does nothing
