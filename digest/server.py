"""HTTP: the public folder and /healthz, as an ASGI app that uvicorn runs in the daemon's loop.

uvicorn (httptools) parses HTTP; this module decides what to answer. Files are read once and
kept with their validators and gzip form until their stat changes, so a conditional GET costs
one stat. Only regular files inside the public folder are served: `..`, encoded `%2e%2e`,
absolute paths and symlinks leading outside all get 404.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

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


Unsubscribe = Callable[[str, str], bool]

_UNSUBSCRIBE_PAGE = """<!doctype html><html lang="vi"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Hủy đăng ký</title>
</head><body style="font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto">
<h1>{heading}</h1><p>{text}</p>{form}</body></html>"""


class PublicApp:
    def __init__(
        self, root: Path, health: HealthCheck, unsubscribe: Unsubscribe | None = None
    ) -> None:
        self.root = root.resolve()
        self._root = str(self.root)
        self.health = health
        self.unsubscribe = unsubscribe
        self._cache: dict[str, _File] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # uvicorn runs with lifespan="off"
            return
        method = scope["method"]
        if scope["path"] == "/unsubscribe" and self.unsubscribe is not None:
            await self._unsubscribe(scope, receive, send)
            return
        if method not in ("GET", "HEAD"):
            self._log_error(scope, 405)  # logged before answering: the line exists once seen
            await _plain(send, 405, b"Method not allowed\n", [(b"allow", b"GET, HEAD")])
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
            self._log_error(scope, 404)
            await _plain(send, 404, b"Not found\n")
            return
        await self._answer(scope, send, found)

    async def _unsubscribe(self, scope: Scope, receive: Receive, send: Send) -> None:
        """RFC 8058 one-click unsubscribe: POST does it; GET only shows a button, because
        mail scanners follow links."""
        assert self.unsubscribe is not None
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        email = (query.get("email") or [""])[0]
        token = (query.get("token") or [""])[0]
        html = b"text/html; charset=utf-8"
        if scope["method"] == "POST":
            while (await receive()).get("more_body"):
                pass  # the body is "List-Unsubscribe=One-Click"; the URL carries the token
            if email and token and self.unsubscribe(email, token):
                text = f"{escape(email)} sẽ không nhận bản tin nữa."
                page = _UNSUBSCRIBE_PAGE.format(heading="Đã hủy đăng ký", text=text, form="")
                await _plain(send, 200, page.encode(), content_type=html)
                return
            self._log_error(scope, 400)
            await _plain(send, 400, b"Invalid unsubscribe link\n")
            return
        if scope["method"] not in ("GET", "HEAD"):
            await _plain(send, 405, b"Method not allowed\n", [(b"allow", b"GET, POST")])
            return
        action = "/unsubscribe?" + urlencode({"email": email, "token": token})
        form = (
            f'<form method="post" action="{escape(action)}">'
            '<button type="submit">Hủy đăng ký</button></form>'
        )
        text = f"Hủy nhận bản tin cho {escape(email)}?"
        page = _UNSUBSCRIBE_PAGE.format(heading="Hủy đăng ký", text=text, form=form)
        await _plain(send, 200, page.encode(), content_type=html)

    def _log_error(self, scope: Scope, status: int) -> None:
        client = scope.get("client") or ("-", 0)
        log.info(
            "request %s %s -> %d",
            scope["method"],
            scope.get("raw_path", b"").decode("latin-1")[:200],
            status,
            extra={"event": "request", "status": status, "client": client[0]},
        )

    def _lookup(self, url_path: str) -> _File | None:
        relative = url_path.lstrip("/") or "index.html"
        parts = relative.split("/")
        if any(p in ("", ".", "..") or "\\" in p or "\0" in p for p in parts):
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
        if found.gzipped is not None and _accepts_gzip(request.get(b"accept-encoding", b"")):
            body = found.gzipped
            headers.append((b"content-encoding", b"gzip"))
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )


def _not_modified(request: dict[bytes, bytes], found: _File) -> bool:
    if b"if-none-match" in request:  # RFC 9110: If-None-Match wins over If-Modified-Since
        tags = [t.strip().removeprefix(b"W/") for t in request[b"if-none-match"].split(b",")]
        return b"*" in tags or found.etag.removeprefix(b"W/") in tags
    since = request.get(b"if-modified-since")
    if since is None:
        return False
    try:
        moment = parsedate_to_datetime(since.decode("latin-1"))
    except (TypeError, ValueError, IndexError):
        return False
    return moment.tzinfo is not None and found.mtime <= moment.timestamp()


def _accepts_gzip(header: bytes) -> bool:
    for part in header.lower().split(b","):
        name, _, params = part.strip().partition(b";")
        if name.strip() in (b"gzip", b"*"):
            q = params.strip().removeprefix(b"q=")
            return not params or q not in (b"0", b"0.0", b"0.00", b"0.000")
    return False


async def _plain(
    send: Send,
    status: int,
    body: bytes,
    extra: list[tuple[bytes, bytes]] | None = None,
    *,
    content_type: bytes = b"text/plain; charset=utf-8",
) -> None:
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
