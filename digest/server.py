"""HTTP: the public folder and /healthz, as an ASGI app that uvicorn runs in the daemon's loop.

uvicorn (httptools) parses HTTP; this module decides what to answer. Files are read once and
kept with their validators and gzip form until their stat changes, so a conditional GET costs
one stat. Only regular files inside the public folder are served: `..`, encoded `%2e%2e`,
absolute paths and symlinks leading outside all get 404.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import Any, Protocol

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from .config import Site
from .site import page_templates

log = logging.getLogger("digest.server")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

CONTENT_TYPES = {
    ".atom": "application/atom+xml; charset=utf-8",
    ".rss": "application/rss+xml; charset=utf-8",
    ".json": "application/feed+json; charset=utf-8",
    ".opml": "text/x-opml; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
}
CACHE_CONTROL = b"public, max-age=60"
_CONDITIONS = frozenset({b"if-none-match", b"if-modified-since", b"accept-encoding"})
_GZIP_MIN = 512


@dataclass(frozen=True, slots=True)
class _File:
    stat_key: tuple[int, int, int]  # inode, size, mtime_ns
    body: bytes
    gzipped: bytes | None
    etag: bytes
    mtime: int  # whole seconds, as Last-Modified can say
    headers: list[tuple[bytes, bytes]]  # the validators and type, built once per file


HealthCheck = Callable[[], tuple[int, dict[str, Any]]]


class Forms(Protocol):
    """Pages the server answers itself, for readers: the forms (digest/subscribe/web.py)
    and search (digest/search/web.py)."""

    def handles(self, path: str) -> bool: ...
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...


class Pages:
    """Pages the server writes itself (answers to a form, a link), in the site's style and
    language, from the site's templates; the published 404.html for a missing path."""

    def __init__(self, templates: Path, site: Site) -> None:
        self.env = page_templates(templates)
        self.site = site

    def message(
        self,
        heading: str,
        *paragraphs: str,
        form: dict[str, str] | None = None,
        links: dict[str, str] | None = None,
    ) -> bytes:
        template = self.env.get_template("site/message.html")
        return template.render(
            site=self.site,
            root=self.site.base_url,
            feeds=[],
            heading=heading,
            paragraphs=paragraphs,
            form=form,
            links=links or {},
        ).encode()

    def not_found(self) -> bytes:
        return self.message(
            "Không tìm thấy trang",
            "Trang bạn tìm không có ở đây. Đường dẫn có thể đã sai hoặc đã hết hiệu lực.",
        )


HTML = b"text/html; charset=utf-8"


class PublicApp:
    def __init__(
        self,
        root: Path,
        health: HealthCheck,
        forms: Sequence[Forms] = (),
        *,
        pages: Pages,
    ) -> None:
        self.root = root.resolve()
        self._root = str(self.root)
        self.health = health
        self.forms = tuple(forms)
        self.pages = pages
        self._cache: dict[str, _File] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # uvicorn runs with lifespan="off"
            return
        method = scope["method"]
        for forms in self.forms:
            if forms.handles(scope["path"]):
                await forms(scope, receive, send)
                return
        if method not in ("GET", "HEAD"):
            log_error(scope, 405)  # logged before answering: the line exists once seen
            await respond(send, 405, b"Method not allowed\n", [(b"allow", b"GET, HEAD")])
            return
        if scope["path"] == "/healthz":
            status, body = self.health()
            data = json.dumps(body, ensure_ascii=False, sort_keys=True).encode()
            headers = [
                (b"content-type", b"application/json; charset=utf-8"),
                (b"cache-control", b"no-store"),
                (b"content-length", str(len(data)).encode()),
            ]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": b"" if method == "HEAD" else data})
            return
        found = self._lookup(scope["path"])
        if found is None:
            log_error(scope, 404)
            page = self._lookup("/404.html")  # the site's own page, in Vietnamese
            if page is None:
                await respond(send, 404, b"Not found\n")
            else:
                await respond(send, 404, page.body, content_type=HTML, head=method == "HEAD")
            return
        await self._answer(scope, send, found)

    def _lookup(self, url_path: str) -> _File | None:
        relative = url_path.lstrip("/") or "index.html"
        parts = relative.split("/")
        # No dot-names at all: `..`, and hidden files (temporaries of a writer).
        if any(not p or p[0] == "." or "\\" in p or "\0" in p for p in parts):
            return None
        try:
            # Plain strings on the hot path: one stat per request, no pathlib objects.
            st = os.stat(os.path.join(self._root, relative))  # noqa: PTH116, PTH118
        except OSError:
            self._cache.pop(relative, None)
            return None
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        cached = self._cache.get(relative)
        if cached is not None and cached.stat_key == key:
            return cached
        resolved = self.root.joinpath(*parts).resolve()
        if self.root not in resolved.parents or not resolved.is_file():
            return None
        try:
            body = resolved.read_bytes()
        except OSError:
            return None
        content_type = CONTENT_TYPES.get(resolved.suffix, "application/octet-stream")
        compressible = content_type.startswith(("text/", "application/")) and len(body) > _GZIP_MIN
        mtime = int(st.st_mtime)
        etag = f'W/"{hashlib.sha256(body).hexdigest()[:32]}"'.encode()
        entry = _File(
            stat_key=key,
            body=body,
            gzipped=gzip.compress(body, compresslevel=6, mtime=0) if compressible else None,
            etag=etag,
            mtime=mtime,
            headers=[
                (b"content-type", content_type.encode()),
                (b"etag", etag),
                (b"last-modified", formatdate(mtime, usegmt=True).encode()),
                (b"cache-control", CACHE_CONTROL),
                (b"vary", b"accept-encoding"),
            ],
        )
        self._cache[relative] = entry
        return entry

    async def _answer(self, scope: Scope, send: Send, found: _File) -> None:
        request = {k: v for k, v in scope["headers"] if k in _CONDITIONS}
        if _not_modified(request, found):
            await send({"type": "http.response.start", "status": 304, "headers": found.headers})
            await send({"type": "http.response.body", "body": b""})
            return
        headers = list(found.headers)
        body = found.body
        if found.gzipped is not None and accepts_gzip(request.get(b"accept-encoding", b"")):
            body = found.gzipped
            headers.append((b"content-encoding", b"gzip"))
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )


def log_error(scope: Scope, status: int) -> None:
    client = scope.get("client") or ("-", 0)
    log.info(
        "request %s %s -> %d",
        scope["method"],
        scope.get("raw_path", b"").decode("latin-1")[:200],
        status,
        extra={"event": "request", "status": status, "client": client[0]},
    )


def etag_matches(if_none_match: bytes, etag: bytes) -> bool:
    """Whether an If-None-Match header names `etag` (weakly compared, as GET may) or `*`."""
    tags = [t.strip().removeprefix(b"W/") for t in if_none_match.split(b",")]
    return b"*" in tags or etag.removeprefix(b"W/") in tags


def _not_modified(request: dict[bytes, bytes], found: _File) -> bool:
    if b"if-none-match" in request:  # RFC 9110: If-None-Match wins over If-Modified-Since
        return etag_matches(request[b"if-none-match"], found.etag)
    since = request.get(b"if-modified-since")
    if since is None:
        return False
    try:
        moment = parsedate_to_datetime(since.decode("latin-1"))
    except (TypeError, ValueError, IndexError):
        return False
    return moment.tzinfo is not None and found.mtime <= moment.timestamp()


_MAX_BODY = 16 * 1024  # what a form needs (every topic ticked is 1 KB), many times over


async def read_body(receive: Receive) -> bytes | None:
    """A request's whole body; None when the client disconnects before it is whole or sends
    more than _MAX_BODY bytes (the request then does nothing)."""
    body = b""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        body += bytes(message.get("body", b""))
        if len(body) > _MAX_BODY:
            return None
        if not message.get("more_body"):
            return body


def accepts_gzip(header: bytes) -> bool:
    """Whether `Accept-Encoding` gives gzip (by name, else by `*`) a weight above zero."""
    weights: dict[bytes, float] = {}
    for part in header.lower().split(b","):
        name, *params = (p.strip() for p in part.split(b";"))
        weight = 1.0
        for param in params:
            if param.startswith(b"q="):
                try:
                    weight = float(param[2:])
                except ValueError:
                    weight = 0.0  # a weight that is not one: not an acceptance
        weights.setdefault(name, weight)
    return weights.get(b"gzip", weights.get(b"*", 0.0)) > 0


async def respond(
    send: Send,
    status: int,
    body: bytes,
    extra: list[tuple[bytes, bytes]] | None = None,
    *,
    content_type: bytes = b"text/plain; charset=utf-8",
    head: bool = False,
) -> None:
    """A whole answer; not cached unless `extra` says how. For HEAD, the length GET would
    have, and no body (RFC 9110 9.3.2)."""
    extra = extra or []
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if not any(name == b"cache-control" for name, _ in extra):
        headers.append((b"cache-control", b"no-store"))
    headers += extra
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


class GuardedHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits it lacks: a request (headers and body)
    must arrive whole within `header_timeout` seconds of its first byte (or of the
    connection), and its headers be at most `max_header_bytes` long; otherwise 408 or 431
    and the connection is closed. Idle keep-alive connections are closed by uvicorn's own
    `timeout_keep_alive`. So slow and idle clients (slowloris, or a body that never comes)
    cannot hold connections, and a huge header cannot fill memory."""

    header_timeout = 10.0
    max_header_bytes = 32 * 1024

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._header_bytes = 0
        self._in_headers = True
        self._receiving = True  # from a request's first byte until its body is whole
        self._request_timer: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        if self._request_timer is None:
            self._request_timer = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._request_timer is not None:
            self._request_timer.cancel()
            self._request_timer = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._receiving:
            self._arm()  # a new request after a keep-alive pause
        if self._in_headers:
            self._header_bytes += len(data)
            if self._header_bytes > self.max_header_bytes:
                self._refuse(431, b"Request header fields too large\n")
                return
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = self._receiving = True

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._header_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._receiving = False
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        self._in_headers = self._receiving = True  # what comes next is a new request
        super().on_response_complete()

    def _too_slow(self) -> None:
        self._request_timer = None
        if self._receiving:
            self._refuse(408, b"Request timeout\n")

    def _refuse(self, status: int, body: bytes) -> None:
        self._disarm()
        if self.transport.is_closing():
            return
        self.transport.write(
            STATUS_LINE[status]
            + b"content-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
            + b"content-length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        self.transport.close()
