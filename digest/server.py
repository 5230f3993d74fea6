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
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import Any

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
_GZIP_MIN = 512


@dataclass(frozen=True, slots=True)
class _File:
    stat_key: tuple[int, int, int]  # inode, size, mtime_ns
    body: bytes
    gzipped: bytes | None
    etag: bytes
    last_modified: bytes
    mtime: int  # whole seconds, as Last-Modified can say
    content_type: bytes


HealthCheck = Callable[[], tuple[int, dict[str, Any]]]


class PublicApp:
    def __init__(self, root: Path, health: HealthCheck) -> None:
        self.root = root.resolve()
        self.health = health
        self._cache: dict[str, _File] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # uvicorn runs with lifespan="off"
            return
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            await _plain(send, 405, b"Method not allowed\n", [(b"allow", b"GET, HEAD")])
            self._log_error(scope, 405)
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
            await _plain(send, 404, b"Not found\n")
            self._log_error(scope, 404)
            return
        await self._answer(scope, send, found)

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
        candidate = self.root.joinpath(*parts)
        try:
            st = candidate.stat()  # follows links: what would be served
        except OSError:
            self._cache.pop(relative, None)
            return None
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        cached = self._cache.get(relative)
        if cached is not None and cached.stat_key == key:
            return cached
        resolved = candidate.resolve()
        if self.root not in resolved.parents or not resolved.is_file():
            return None
        try:
            body = resolved.read_bytes()
        except OSError:
            return None
        content_type = CONTENT_TYPES.get(resolved.suffix, "application/octet-stream")
        compressible = content_type.startswith(("text/", "application/")) and len(body) > _GZIP_MIN
        mtime = int(st.st_mtime)
        entry = _File(
            stat_key=key,
            body=body,
            gzipped=gzip.compress(body, compresslevel=6, mtime=0) if compressible else None,
            etag=f'W/"{hashlib.sha256(body).hexdigest()[:32]}"'.encode(),
            last_modified=formatdate(mtime, usegmt=True).encode(),
            mtime=mtime,
            content_type=content_type.encode(),
        )
        self._cache[relative] = entry
        return entry

    async def _answer(self, scope: Scope, send: Send, found: _File) -> None:
        request = dict(scope["headers"])
        headers = [
            (b"content-type", found.content_type),
            (b"etag", found.etag),
            (b"last-modified", found.last_modified),
            (b"cache-control", CACHE_CONTROL),
            (b"vary", b"accept-encoding"),
        ]
        if _not_modified(request, found):
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
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
    send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
