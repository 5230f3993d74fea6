"""Search, answered by the daemon: a results page, and every search as a feed.

    GET /search?q=…&official=SLUG&topic=SLUG&from=DATE&to=DATE&sort=date&page=N
    GET /search.atom?…   /search.rss?…   /search.json?…

The page ranks by relevance (or date), marks the matched words and pages 20 at a time; the
feeds hold the newest `[site] feed_size` matches, newest first, with the entry ids, links and
categories of the static feeds, so a reader who follows a search and a channel sees one item
once. A feed's ETag is the hash of its bytes, as a static file's is; the bytes are kept until
the store changes, so a feed reader's poll is answered without running the search again.
Bad input gets the page (or, for a feed, a line) saying in Vietnamese what to change, with
status 400; nothing a reader types reaches the database as syntax or the page unescaped.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qs

from markupsafe import Markup

from ..classify import subjects
from ..config import Config
from ..feeds import FORMATS, MEDIA_TYPES, RENDERERS, FeedDoc
from ..model import Entry, Found
from ..server import (
    HTML,
    Pages,
    Receive,
    Scope,
    Send,
    accepts_gzip,
    etag_matches,
    log_error,
    respond,
)
from ..site.plan import Names
from ..site.render import Renderer
from ..store import SEARCH_WINDOW, Store
from .highlight import marked, passage
from .query import MAX_PAGE, Query, QueryError, read_query

PAGE_SIZE = 20
_PATH = "/search"
_FEEDS = {f"{_PATH}.{fmt}": fmt for fmt in FORMATS}
_KEPT = 64  # feeds kept, each until the store changes
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_TEXT = b"text/plain; charset=utf-8"
_TOO_MANY = (
    "Địa chỉ tìm kiếm có quá nhiều tham số.\n".encode()
)  # `updated` of a feed of nothing: fixed, not now


def _number(n: int, *, more: bool = False) -> str:
    """10000 as Vietnamese write it: 10.000 (and "hơn 10.000" when counting stopped)."""
    return ("hơn " if more else "") + f"{n:,}".replace(",", ".")


@dataclass(frozen=True, slots=True)
class _Feed:
    body: bytes
    gzipped: bytes
    etag: bytes


@dataclass(frozen=True, slots=True)
class Hit:
    """One result as the page shows it: the entry, its title and teaser with the matches
    marked, and a passage of the article when the match is there."""

    entry: Entry
    title: Markup
    summary: Markup
    passage: Markup | None


class SearchPages:
    def __init__(self, config: Config, store: Store, *, pages: Pages) -> None:
        self.config = config
        self.site = config.site
        self.store = store
        self.pages = pages
        self.env = pages.env
        self.renderer = Renderer(config)
        # Requests are answered in threads: the caches below are shared under this lock.
        self._lock = threading.Lock()
        self._names: tuple[int, Names] | None = None
        self._feeds: OrderedDict[tuple[str, str, int], _Feed] = OrderedDict()

    def handles(self, path: str) -> bool:
        return path == _PATH or path in _FEEDS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, path = scope["method"], scope["path"]
        if method not in ("GET", "HEAD"):
            log_error(scope, 405)
            await respond(send, 405, b"Method not allowed\n", [(b"allow", b"GET, HEAD")])
            return
        try:  # no search of ours has 50 fields
            params = parse_qs(scope.get("query_string", b"").decode("latin-1"), max_num_fields=50)
        except ValueError:
            log_error(scope, 400)
            await respond(send, 400, _TOO_MANY, content_type=_TEXT)
            return
        headers = dict(scope["headers"])
        status, body, extra, kind = await asyncio.to_thread(self._answer, path, params, headers)
        if status == 304:  # the validators alone: no length, which would be the 200's
            await send({"type": "http.response.start", "status": 304, "headers": extra})
            await send({"type": "http.response.body", "body": b""})
            return
        if status != 200:
            log_error(scope, status)
        await respond(send, status, body, extra, content_type=kind, head=method == "HEAD")

    def names(self) -> tuple[int, Names]:
        """The officials' and topics' names, and the store's change number they are of."""
        head = self.store.index.head()
        with self._lock:
            known = self._names
        if known is None or known[0] != head:
            stats = self.store.index.channel_stats()
            discovered = self.store.entries.discovered()
            known = (head, Names.of(*subjects(self.config.classification, stats, discovered)))
            with self._lock:
                self._names = known
        return known

    def _answer(
        self, path: str, params: Mapping[str, list[str]], headers: Mapping[bytes, bytes]
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]], bytes]:
        head, names = self.names()
        fmt = _FEEDS.get(path)
        try:
            query = read_query(params, officials=names.officials, topics=names.topics)
        except QueryError as exc:
            if fmt is not None:
                return 400, f"{exc}\n".encode(), [], _TEXT
            return 400, self._page(None, names, error=str(exc)), [], HTML
        if fmt is None:
            return 200, self._page(query, names), [], HTML
        if query.empty:
            message = "Hãy thêm từ cần tìm, lãnh đạo hoặc chủ đề vào địa chỉ của nguồn tin.\n"
            return 400, message.encode(), [], _TEXT
        feed = self._feed(fmt, query.sorted_by(newest=True), names, head)
        validators = [
            (b"etag", feed.etag),
            (b"cache-control", b"public, max-age=60"),
            (b"vary", b"accept-encoding"),
        ]
        kind = f"{MEDIA_TYPES[fmt]}; charset=utf-8".encode()
        if b"if-none-match" in headers and etag_matches(headers[b"if-none-match"], feed.etag):
            return 304, b"", [(b"content-type", kind), *validators], kind
        if accepts_gzip(headers.get(b"accept-encoding", b"")):
            return 200, feed.gzipped, [*validators, (b"content-encoding", b"gzip")], kind
        return 200, feed.body, validators, kind

    def _feed(self, fmt: str, query: Query, names: Names, head: int) -> _Feed:
        key = (fmt, query.params(), head)
        with self._lock:
            kept = self._feeds.get(key)
            if kept is not None:
                self._feeds.move_to_end(key)
                return kept
        found = self.store.search.find(query.search, limit=self.site.feed_size)
        entries = self._entries(found.ids)
        params = query.params(order=False)
        base = self.site.base_url
        title = self._title(query, names)
        doc = FeedDoc(
            key=f"search?{params}",
            title=f"{title} — {self.site.title}",
            subtitle=f"Tin mới nhất khớp với: {title}",
            site_name=self.site.title,
            html_url=f"{base}search?{query.params()}",
            urls={f: f"{base}search.{f}?{params}" for f in FORMATS},
            updated=max((e.updated for e in entries), default=_EPOCH),
            items=[self.renderer.item(e, names) for e in entries],
        )
        body = RENDERERS[fmt](doc)
        feed = _Feed(
            body,
            gzip.compress(body, compresslevel=6, mtime=0),
            f'W/"{hashlib.sha256(body).hexdigest()[:32]}"'.encode(),
        )
        with self._lock:
            self._feeds[key] = feed
            while len(self._feeds) > _KEPT:
                self._feeds.popitem(last=False)
        return feed

    def _entries(self, ids: Sequence[str]) -> list[Entry]:
        by_id = {e.id: e for e in self.store.entries.entries(ids, with_sources=False)}
        return [by_id[i] for i in ids if i in by_id]

    @staticmethod
    def _title(query: Query, names: Names) -> str:
        parts = [f"«{query.text}»"] if query.text else []
        parts += [names.officials[s] for s in query.search.officials]
        parts += [names.topics[s] for s in query.search.topics]
        if query.since_day or query.until_day:
            since = f"{query.since_day:%d/%m/%Y}" if query.since_day else "…"
            until = f"{query.until_day:%d/%m/%Y}" if query.until_day else "nay"
            parts.append(f"{since} – {until}")
        return "Tìm " + " · ".join(parts)

    def _page(self, query: Query | None, names: Names, *, error: str = "") -> bytes:
        base = self.site.base_url
        hits: list[Hit] = []
        found = Found((), 0)
        if query is not None and not query.empty:
            offset = (query.page - 1) * PAGE_SIZE
            found = self.store.search.find(query.search, offset=offset, limit=PAGE_SIZE)
            phrases = query.search.phrases
            for e in self._entries(found.ids):
                title, summary = marked(e.title, phrases), marked(e.summary, phrases)
                shown = "<mark>" in title or "<mark>" in summary
                article = None if shown or not phrases else passage(e.content or (), phrases)
                hits.append(Hit(e, title, summary, article))
        feed_params = query.params(order=False) if query is not None else ""
        pages = min(-(-found.total // PAGE_SIZE), MAX_PAGE)
        return (
            self.env.get_template("site/search.html")
            .render(
                site=self.site,
                root=base,
                feeds=(
                    self.renderer.feeds_meta(
                        {f: f"{base}search.{f}?{feed_params}" for f in FORMATS},
                        self._title(query, names),
                    )
                    if query is not None and not query.empty
                    else []
                ),
                names=names,
                officials=names.official_list,
                topics=names.topic_list,
                query=query,
                query_text=query.text if query else "",
                error=error,
                hits=hits,
                total=found.total,
                count=_number(found.total, more=found.more),
                ranked_newest=_number(SEARCH_WINDOW) if found.total > SEARCH_WINDOW else "",
                page=query.page if query else 1,
                pages=pages,
                link=lambda page: f"{base}search?{query.params(page=page)}" if query else "",
                relevance=f"{base}search?{query.sorted_by(newest=False).params()}" if query else "",
                by_date=f"{base}search?{query.sorted_by(newest=True).params()}" if query else "",
                feed_urls={f: f"{base}search.{f}?{feed_params}" for f in FORMATS},
                title=self._title(query, names) if query and not query.empty else "Tìm tin",
            )
            .encode()
        )
