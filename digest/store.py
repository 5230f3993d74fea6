"""The store: entries, where they came from, and what each source file looked like.

SQLAlchemy 2 Core only, with portable types (instants as integer UTC seconds, lists as JSON),
so a PostgreSQL URL can replace the SQLite file without touching the queries.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.engine import Connection, Engine

from .model import (
    Entry,
    EntryHead,
    Listed,
    Location,
    Mark,
    Problem,
    channels_of,
    month_of,
)
from .text import fold

metadata = sa.MetaData()

sources = sa.Table(
    "sources",
    metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("mtime_ns", sa.BigInteger, nullable=False),
    sa.Column("items", sa.Integer, nullable=False),
)

entries = sa.Table(
    "entries",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("title_from_article", sa.Boolean, nullable=False),
    sa.Column("published", sa.BigInteger, nullable=False, index=True),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("summary_truncated", sa.Boolean, nullable=False),
    sa.Column("content", sa.JSON, nullable=True),
    sa.Column("related", sa.JSON, nullable=False),
    sa.Column("officials", sa.JSON, nullable=False),
    sa.Column("topics", sa.JSON, nullable=False),
    sa.Column("seen_at", sa.BigInteger, nullable=False),
    sa.Column("changed_at", sa.BigInteger, nullable=True),
    sa.Column("rev", sa.String(16), nullable=False),
)

# The listing: one row per (channel, entry), with what planning needs and no text, so a feed,
# page or month of one channel is one index range, and a change plans only its own channels.
listing = sa.Table(
    "listing",
    metadata,
    sa.Column("channel", sa.String, primary_key=True),
    sa.Column("published", sa.BigInteger, primary_key=True),
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("month", sa.String(7), nullable=False),
    sa.Column("updated", sa.BigInteger, nullable=False),
    sa.Column("rev", sa.String(16), nullable=False),
    sa.Index("listing_month", "channel", "month", "published", "id"),
    sa.Index("listing_entry", "id"),
)

# Entries per channel and month, kept with the listing: archive navigation and counts
# without counting rows.
months = sa.Table(
    "months",
    metadata,
    sa.Column("channel", sa.String, primary_key=True),
    sa.Column("month", sa.String(7), primary_key=True),
    sa.Column("entries", sa.Integer, nullable=False),
)

# Folded titles, and the folded related titles each entry lists: related links resolve per
# entry, and a new entry finds the pages that now link to it.
titles = sa.Table(
    "titles",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("published", sa.BigInteger, primary_key=True),
    sa.Column("id", sa.String(36), primary_key=True),
)
mentions = sa.Table(
    "mentions",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("id", sa.String(36), primary_key=True),
)

# What changed since the last publish: written in the same transaction as the entries, so a
# publish that fails or never runs is caught up by the next one.
dirty_months = sa.Table(
    "dirty_months",
    metadata,
    sa.Column("channel", sa.String, primary_key=True),
    sa.Column("month", sa.String(7), primary_key=True),
    sa.Column("first", sa.BigInteger, nullable=False),  # published, of the entries changed
    sa.Column("last", sa.BigInteger, nullable=False),
    sa.Column("shifted", sa.Boolean, nullable=False),  # entries came or went
)
dirty_entries = sa.Table(
    "dirty_entries",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
)

published = sa.Table(
    "published",
    metadata,
    sa.Column("path", sa.String, primary_key=True),
    sa.Column("signature", sa.String(64), nullable=False),
)

provenance = sa.Table(
    "provenance",
    metadata,
    sa.Column("source", sa.String, primary_key=True),
    sa.Column("line", sa.Integer, primary_key=True),
    sa.Column("entry_id", sa.String(36), nullable=False, index=True),
)

problems = sa.Table(
    "problems",
    metadata,
    sa.Column("source", sa.String, primary_key=True),
    sa.Column("line", sa.Integer, primary_key=True),
    sa.Column("message", sa.Text, primary_key=True),
)

meta = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

discovered = sa.Table(
    "discovered",
    metadata,
    sa.Column("slug", sa.String, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("role", sa.Text, nullable=False),
)
# Which entries name each discovered leader with our Ministry's role: a leader gets feeds only
# once enough entries do ([classify] discover_after).
discovered_in = sa.Table(
    "discovered_in",
    metadata,
    sa.Column("slug", sa.String, primary_key=True),
    sa.Column("entry_id", sa.String(36), primary_key=True, index=True),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("subscriber", sa.String, primary_key=True),
    sa.Column("period", sa.String, primary_key=True),  # "daily:2026-11-22", "weekly:2026-11-23"
    sa.Column("slot", sa.BigInteger, nullable=False, index=True),
    sa.Column("state", sa.String(8), nullable=False, index=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt", sa.BigInteger, nullable=True),
    sa.Column("items", sa.Integer, nullable=True),
    sa.Column("message_id", sa.String, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("updated", sa.BigInteger, nullable=False),
)

subscribers = sa.Table(
    "subscribers",
    metadata,
    sa.Column("email", sa.String, primary_key=True),
    sa.Column("first_seen", sa.BigInteger, nullable=False),
    sa.Column("unsubscribed", sa.BigInteger, nullable=True),
)

SCHEMA_VERSION = "4"
OUTBOX_STATES = ("pending", "sending", "sent", "empty", "failed", "dead", "unknown")
_CHUNK = 500  # bound IN lists and executemany batches well below SQLite's variable limit


# The two writes of every digest, built once: building a statement costs more than running it.
_THIS_PERIOD = sa.and_(
    outbox.c.subscriber == sa.bindparam("_subscriber"), outbox.c.period == sa.bindparam("_period")
)
_CLAIM = (
    outbox.update()
    .where(
        _THIS_PERIOD,
        sa.or_(
            outbox.c.state == "pending",
            sa.and_(outbox.c.state == "failed", outbox.c.next_attempt <= sa.bindparam("_now")),
        ),
    )
    .values(
        state="sending",
        attempts=outbox.c.attempts + 1,
        updated=sa.bindparam("_now"),
        items=sa.bindparam("items"),
        message_id=None,
    )
)
# Recorded just before the message's DATA: from then on, only the server knows.
_DATA_BEGINS = (
    outbox.update()
    .where(_THIS_PERIOD, outbox.c.state == "sending")
    .values(message_id=sa.bindparam("message_id"))
)
_FINISH = (
    outbox.update()
    .where(_THIS_PERIOD)
    .values(
        {
            name: sa.bindparam(name)
            for name in ("state", "items", "message_id", "error", "next_attempt", "updated")
        }
    )
)


class _Prepared:
    """A statement compiled once to SQLite's SQL, run on a pooled DBAPI connection: for the
    two writes of every digest, SQLAlchemy's work per execution cost twice SQLite's."""

    def __init__(self, statement: sa.Update) -> None:
        compiled = statement.compile(dialect=sqlite_dialect(paramstyle="named"))
        self.sql = str(compiled)
        self.defaults = dict(compiled.params)  # its literals ('sending', …) are parameters


_CLAIM_SQL = _Prepared(_CLAIM)
_DATA_SQL = _Prepared(_DATA_BEGINS)
_FINISH_SQL = _Prepared(_FINISH)


class StoreError(RuntimeError):
    """The store cannot be opened or written; the message says what to check."""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    subscriber: str
    period: str
    slot: datetime
    state: str
    attempts: int
    next_attempt: datetime | None
    items: int | None
    message_id: str | None
    error: str | None
    updated: datetime


def _outbox_row(r: sa.Row[Any]) -> OutboxRow:
    return OutboxRow(
        r.subscriber,
        r.period,
        _dt(r.slot),
        r.state,
        r.attempts,
        _dt(r.next_attempt) if r.next_attempt is not None else None,
        r.items,
        r.message_id,
        r.error,
        _dt(r.updated),
    )


@dataclass(frozen=True, slots=True)
class SourceState:
    name: str
    sha256: str
    size: int
    mtime_ns: int
    items: int


def _ts(moment: datetime) -> int:
    return int(moment.astimezone(UTC).timestamp())


def _dt(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def entry_rev(entry: Entry) -> str:
    shown = [
        entry.title,
        entry.summary,
        entry.summary_truncated,
        entry.content,
        entry.related,
        entry.officials,
        entry.topics,
        _ts(entry.published),
        _ts(entry.updated),
    ]
    return hashlib.sha256(json.dumps(shown, ensure_ascii=False).encode()).hexdigest()[:16]


def _entry_row(entry: Entry) -> dict[str, Any]:
    return {
        "rev": entry_rev(entry),
        "id": entry.id,
        "title": entry.title,
        "title_from_article": entry.title_from_article,
        "published": _ts(entry.published),
        "summary": entry.summary,
        "summary_truncated": entry.summary_truncated,
        "content": list(entry.content) if entry.content is not None else None,
        "related": list(entry.related),
        "officials": list(entry.officials),
        "topics": list(entry.topics),
        "seen_at": _ts(entry.seen_at),
        "changed_at": _ts(entry.changed_at) if entry.changed_at else None,
    }


def _entry(row: sa.Row[Any], locations: Sequence[Location] = ()) -> Entry:
    return Entry(
        id=row.id,
        title=row.title,
        title_from_article=bool(row.title_from_article),
        published=_dt(row.published),
        summary=row.summary,
        summary_truncated=bool(row.summary_truncated),
        content=tuple(row.content) if row.content is not None else None,
        related=tuple(row.related),
        officials=tuple(row.officials),
        topics=tuple(row.topics),
        seen_at=_dt(row.seen_at),
        changed_at=_dt(row.changed_at) if row.changed_at is not None else None,
        sources=tuple(locations),
    )


def _index(conn: Connection, changed: Sequence[Entry], revs: Sequence[str], *, fresh: bool) -> None:
    """Keep the listing, month counts, title index and dirty marks in step with `changed`
    (just inserted when `fresh`, else updated in place), whose revs are `revs`."""
    if not changed:
        return
    ids = [e.id for e in changed]
    delta: Counter[tuple[str, str]] = Counter()
    touched: dict[tuple[str, str], list[int]] = {}  # published instants changed, per month
    if not fresh:
        for chunk in _chunks(ids):
            old = sa.select(listing.c.channel, listing.c.month, listing.c.published).where(
                listing.c.id.in_(chunk)
            )
            for r in conn.execute(old):
                delta[(r.channel, r.month)] -= 1
                touched.setdefault((r.channel, r.month), []).append(r.published)
            conn.execute(listing.delete().where(listing.c.id.in_(chunk)))
            conn.execute(mentions.delete().where(mentions.c.id.in_(chunk)))
    rows: list[dict[str, Any]] = []
    mentioned: set[tuple[str, str]] = set()
    for e, rev in zip(changed, revs, strict=True):
        month = month_of(e.published)
        published_at, updated_at = _ts(e.published), _ts(e.updated)
        for channel in channels_of(e.officials, e.topics):
            rows.append(
                {
                    "channel": channel,
                    "published": published_at,
                    "id": e.id,
                    "month": month,
                    "updated": updated_at,
                    "rev": rev,
                }
            )
            delta[(channel, month)] += 1
            touched.setdefault((channel, month), []).append(published_at)
        mentioned.update((fold(title), e.id) for title in e.related)
    _insert(conn, listing, rows)
    _insert(conn, mentions, [{"key": k, "id": i} for k, i in sorted(mentioned)])
    dirty = set(ids)
    if fresh:
        keys = {fold(e.title): e for e in changed}
        _insert(
            conn,
            titles,
            [{"key": k, "published": _ts(e.published), "id": e.id} for k, e in keys.items()],
        )
        for chunk in _chunks(sorted(keys)):
            # Pages listing one of these titles as related now link to a (newer) entry.
            found = sa.select(mentions.c.id).where(mentions.c.key.in_(chunk))
            dirty.update(conn.execute(found).scalars())
    _count_months(conn, delta)
    _mark_months(conn, touched, {k for k, n in delta.items() if n})
    ordered = sorted(dirty)
    for chunk in _chunks(ordered):
        conn.execute(dirty_entries.delete().where(dirty_entries.c.id.in_(chunk)))
    _insert(conn, dirty_entries, [{"id": i} for i in ordered])


def _mark_months(
    conn: Connection, touched: Mapping[tuple[str, str], list[int]], shifted: set[tuple[str, str]]
) -> None:
    """Record (or widen) the marks of the channel months `touched` names."""
    key = sa.tuple_(dirty_months.c.channel, dirty_months.c.month)
    for chunk in _chunks(sorted(touched)):
        marks = {
            (c, m): {
                "channel": c,
                "month": m,
                "first": min(touched[(c, m)]),
                "last": max(touched[(c, m)]),
                "shifted": (c, m) in shifted,
            }
            for c, m in chunk
        }
        for r in conn.execute(sa.select(dirty_months).where(key.in_(chunk))):
            mark = marks[(r.channel, r.month)]
            mark["first"] = min(mark["first"], r.first)
            mark["last"] = max(mark["last"], r.last)
            mark["shifted"] = mark["shifted"] or bool(r.shifted)
        conn.execute(dirty_months.delete().where(key.in_(chunk)))
        _insert(conn, dirty_months, list(marks.values()))


def _count_months(conn: Connection, delta: Mapping[tuple[str, str], int]) -> None:
    changed = sorted(k for k, n in delta.items() if n)
    key = sa.tuple_(months.c.channel, months.c.month)
    for chunk in _chunks(changed):
        query = sa.select(months).where(key.in_(chunk))
        counts = {(r.channel, r.month): r.entries for r in conn.execute(query)}
        conn.execute(months.delete().where(key.in_(chunk)))
        rows = [
            {"channel": c, "month": m, "entries": counts.get((c, m), 0) + delta[(c, m)]}
            for c, m in chunk
        ]
        _insert(conn, months, [r for r in rows if r["entries"] > 0])


def _insert(conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    for chunk in _chunks(rows):
        conn.execute(table.insert(), list(chunk))


class Store(Protocol):
    """What the pipeline needs from storage; SqlStore is the implementation."""

    def source_states(self, names: Iterable[str] | None = None) -> dict[str, SourceState]: ...
    def entries(
        self, ids: Sequence[str] | None = None, *, with_sources: bool = True
    ) -> list[Entry]: ...
    def problems(self) -> list[Problem]: ...
    def count_problems(self) -> int: ...
    def count_entries(self) -> int: ...
    def meta(self, key: str) -> str | None: ...
    def discovered(self) -> dict[str, tuple[str, str]]: ...
    def active_discovered(self, evidence: int) -> dict[str, tuple[str, str]]: ...
    def entry_pages(self, size: int) -> Iterator[list[Entry]]: ...
    def heads(self, since: datetime, until: datetime) -> list[EntryHead]: ...
    def head_pages(
        self, size: int, ids: Sequence[str] | None = None
    ) -> Iterator[list[EntryHead]]: ...
    def channel_stats(self) -> dict[str, tuple[int, datetime]]: ...
    def channel_months(self, channel: str) -> list[tuple[str, int]]: ...
    def listed(
        self,
        channel: str,
        *,
        month: str | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> list[Listed]: ...
    def entries_titled(self, keys: Iterable[str]) -> dict[str, str]: ...
    def dirty(self) -> tuple[dict[str, dict[str, Mark]], list[str]]: ...
    def count_before(self, channel: str, month: str, moment: datetime) -> int: ...
    def finish_publish(self, key: str, state: str) -> None: ...
    def signatures(self, paths: Sequence[str]) -> dict[str, str]: ...
    def published_paths(self, prefix: str = "") -> list[str]: ...
    def save_published(self, changed: Mapping[str, str], removed: Iterable[str]) -> None: ...
    def transaction(self) -> StoreTransaction: ...


class StoreTransaction(Protocol):
    def __enter__(self) -> StoreTransaction: ...
    def __exit__(self, exc_type: object, exc: object, tb: object) -> None: ...
    def entries(self, ids: Sequence[str]) -> list[Entry]: ...
    def upsert_entries(self, new: Sequence[Entry], changed: Sequence[Entry]) -> None: ...
    def set_tags(self, tags: Sequence[Entry]) -> None: ...
    def save_source(
        self, state: SourceState, found: Iterable[tuple[Location, str]], bad: Sequence[Problem]
    ) -> None: ...
    def touch_source(self, state: SourceState) -> None: ...
    def rename_source(self, old: str, state: SourceState) -> None: ...
    def forget_source(self, name: str) -> None: ...
    def set_meta(self, key: str, value: str) -> None: ...
    def add_problems(self, found: Iterable[Problem]) -> None: ...
    def add_discovered(self, found: Iterable[tuple[str, str, str, str]]) -> None: ...
    def forget_discovered_in(self, ids: Iterable[str] | None) -> None: ...
    def entry_pages(self, size: int) -> Iterator[list[Entry]]: ...
    def active_discovered(self, evidence: int) -> dict[str, tuple[str, str]]: ...


class SqlStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open_sqlite(cls, path: Path) -> SqlStore:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"{path.parent}: cannot create the store folder: {exc.strerror}"
            ) from None
        # Builds run in a worker thread of the daemon; the pool hands a connection to one
        # thread at a time, so SQLite's same-thread check can go.
        engine = sa.create_engine(f"sqlite:///{path}", connect_args={"check_same_thread": False})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            # WAL lets the HTTP server read while a build writes; NORMAL is durable in WAL mode
            # across process crashes, which is what a daemon needs.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=5000")
            cursor.close()

        store = cls(engine)
        try:
            store._check_schema(path)
        except sa.exc.DBAPIError as exc:
            engine.dispose()
            raise StoreError(
                f"{path}: cannot open the store ({exc.orig}); check the path in config.toml "
                "[paths] store, or move the damaged file away to rebuild from the seeds"
            ) from None
        return store

    def _check_schema(self, path: Path) -> None:
        with self.engine.connect() as conn:
            has_meta = sa.inspect(conn).has_table("meta")
            version = (
                conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema")).scalar()
                if has_meta
                else None
            )
        if version == SCHEMA_VERSION:
            return
        if version in ("2", "3"):
            self._migrate(version)
            return
        if has_meta and version != SCHEMA_VERSION:
            self.engine.dispose()
            raise StoreError(
                f"{path}: the store has schema {version or 'unknown'}, this version needs "
                f"{SCHEMA_VERSION}; move the file away and run `digest build` to rebuild it "
                "from the seeds (entry ids stay the same)"
            )
        with self.engine.begin() as conn:
            metadata.create_all(conn)
            conn.execute(meta.insert(), [{"key": "schema", "value": SCHEMA_VERSION}])

    def _migrate(self, version: str) -> None:
        """Schema 3 added the listing and title indexes, derived from the entries; schema 4
        the discovery evidence, which the next build's re-tagging fills in."""
        with self.engine.begin() as conn:
            metadata.create_all(conn)
            if version == "3":
                conn.execute(
                    meta.update().where(meta.c.key == "schema").values(value=SCHEMA_VERSION)
                )
                return
            after = ""
            while page := [
                _entry(r)
                for r in conn.execute(
                    sa.select(entries)
                    .where(entries.c.id > after)
                    .order_by(entries.c.id)
                    .limit(2000)
                )
            ]:
                _index(conn, page, [entry_rev(e) for e in page], fresh=True)
                after = page[-1].id
            conn.execute(meta.update().where(meta.c.key == "schema").values(value=SCHEMA_VERSION))

    def close(self) -> None:
        self.engine.dispose()

    def source_states(self, names: Iterable[str] | None = None) -> dict[str, SourceState]:
        """What is known of every source file (or of those of `names` that are known)."""
        # Read on every build (10,000 rows in a large corpus): positional, not by name.
        query = sa.select(*(sources.c[c] for c in ("name", "sha256", "size", "mtime_ns", "items")))
        with self.engine.connect() as conn:
            if names is None:
                return {row[0]: SourceState(*row) for row in conn.execute(query)}
            found: dict[str, SourceState] = {}
            for chunk in _chunks(sorted(set(names))):
                rows = conn.execute(query.where(sources.c.name.in_(chunk)))
                found.update((row[0], SourceState(*row)) for row in rows)
            return found

    def entries(
        self, ids: Sequence[str] | None = None, *, with_sources: bool = True
    ) -> list[Entry]:
        """Entries (with their provenance unless told otherwise), newest first."""
        with self.engine.connect() as conn:
            found = _load_entries(conn, ids, with_sources=with_sources)
        return sorted(found, key=lambda e: (e.published, e.id), reverse=True)

    def count_entries(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(entries)).scalar_one())

    def meta(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            value = conn.execute(sa.select(meta.c.value).where(meta.c.key == key)).scalar()
        return None if value is None else str(value)

    def discovered(self) -> dict[str, tuple[str, str]]:
        """slug -> (name, role) of officials found in entries but not in the config."""
        with self.engine.connect() as conn:
            return {r.slug: (r.name, r.role) for r in conn.execute(sa.select(discovered))}

    def active_discovered(self, evidence: int) -> dict[str, tuple[str, str]]:
        """Those of them that at least `evidence` entries name with our Ministry's role."""
        with self.engine.connect() as conn:
            return _active_discovered(conn, evidence)

    def entry_pages(self, size: int) -> Iterator[list[Entry]]:
        """All entries, `size` at a time, in id order: bounded memory for large stores."""
        with self.engine.connect() as conn:
            yield from _entry_pages(conn, size)

    def heads(self, since: datetime, until: datetime) -> list[EntryHead]:
        """Entries published in [since, until], without their bodies, newest first."""
        published_at = entries.c.published
        return self._heads(sa.and_(published_at >= _ts(since), published_at <= _ts(until)))

    def _heads(self, where: sa.ColumnElement[bool], *, by_id: int | None = None) -> list[EntryHead]:
        columns = [c for c in entries.c if c.name not in ("content", "title_from_article")]
        if by_id is None:
            query = sa.select(*columns).order_by(entries.c.published.desc(), entries.c.id.desc())
        else:
            query = sa.select(*columns).order_by(entries.c.id).limit(by_id)
        query = query.where(where)
        with self.engine.connect() as conn:
            return [
                EntryHead(
                    id=r.id,
                    title=r.title,
                    published=_dt(r.published),
                    updated=_dt(max(r.published, r.changed_at or r.published)),
                    summary=r.summary,
                    summary_truncated=bool(r.summary_truncated),
                    related=tuple(r.related),
                    officials=tuple(r.officials),
                    topics=tuple(r.topics),
                    rev=r.rev,
                )
                for r in conn.execute(query)
            ]

    def head_pages(self, size: int, ids: Sequence[str] | None = None) -> Iterator[list[EntryHead]]:
        """Heads of all entries (or of `ids`), `size` at a time in id order."""
        if ids is not None:
            ordered = sorted(ids)
            for start in range(0, len(ordered), size):
                yield self._heads(entries.c.id.in_(ordered[start : start + size]))
            return
        after = ""
        while page := self._heads(entries.c.id > after, by_id=size):
            yield page
            after = page[-1].id

    def channel_stats(self) -> dict[str, tuple[int, datetime]]:
        """Channel key -> (entries, latest published) of every channel with entries."""
        totals = sa.select(months.c.channel, sa.func.sum(months.c.entries)).group_by(
            months.c.channel
        )
        with self.engine.connect() as conn:
            found: dict[str, tuple[int, datetime]] = {}
            for channel, count in conn.execute(totals).all():
                latest = conn.execute(
                    sa.select(sa.func.max(listing.c.published)).where(listing.c.channel == channel)
                ).scalar_one()
                found[channel] = (int(count), _dt(latest))
        return found

    def channel_months(self, channel: str) -> list[tuple[str, int]]:
        """(month, entries) of one channel, newest month first."""
        query = (
            sa.select(months.c.month, months.c.entries)
            .where(months.c.channel == channel)
            .order_by(months.c.month.desc())
        )
        with self.engine.connect() as conn:
            return [(r.month, r.entries) for r in conn.execute(query)]

    def listed(
        self,
        channel: str,
        *,
        month: str | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> list[Listed]:
        """A channel's entries (of one month), newest first, from the `offset`-th."""
        query = (
            sa.select(listing.c.id, listing.c.published, listing.c.updated, listing.c.rev)
            .where(listing.c.channel == channel)
            .order_by(listing.c.published.desc(), listing.c.id.desc())
        )
        if month is not None:
            query = query.where(listing.c.month == month)
        if limit is not None:
            query = query.limit(limit)
        if offset:
            query = query.offset(offset)
        with self.engine.connect() as conn:
            return [
                Listed(r.id, _dt(r.published), _dt(r.updated), r.rev) for r in conn.execute(query)
            ]

    def entries_titled(self, keys: Iterable[str]) -> dict[str, str]:
        """Folded title -> id of the newest entry with that title, for those that exist."""
        found: dict[str, tuple[int, str]] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(sorted(set(keys))):
                query = sa.select(titles).where(titles.c.key.in_(chunk))
                for r in conn.execute(query):
                    if r.key not in found or (r.published, r.id) > found[r.key]:
                        found[r.key] = (r.published, r.id)
        return {key: eid for key, (_, eid) in found.items()}

    def dirty(self) -> tuple[dict[str, dict[str, Mark]], list[str]]:
        """What changed since the last finished publish: channel -> month -> mark, and the
        ids of entries whose pages change."""
        by_channel: dict[str, dict[str, Mark]] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(sa.select(dirty_months)):
                mark = Mark(_dt(r.first), _dt(r.last), bool(r.shifted))
                by_channel.setdefault(r.channel, {})[r.month] = mark
            ids = list(conn.execute(sa.select(dirty_entries.c.id)).scalars())
        return by_channel, ids

    def count_before(self, channel: str, month: str, moment: datetime) -> int:
        """Entries of one channel and month published before `moment`."""
        query = sa.select(sa.func.count()).where(
            listing.c.channel == channel,
            listing.c.month == month,
            listing.c.published < _ts(moment),
        )
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def finish_publish(self, key: str, state: str) -> None:
        """Record the state published and forget the changes it covered.

        Only one writer runs at a time (the writer lock), so no build adds marks between a
        publish reading them and clearing them here."""
        with self.engine.begin() as conn:
            conn.execute(dirty_months.delete())
            conn.execute(dirty_entries.delete())
            conn.execute(meta.delete().where(meta.c.key == key))
            conn.execute(meta.insert(), [{"key": key, "value": state}])

    def signatures(self, paths: Sequence[str]) -> dict[str, str]:
        """Path -> signature of those of `paths` that were published."""
        found: dict[str, str] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(sorted(paths)):
                query = sa.select(published).where(published.c.path.in_(chunk))
                found.update((r.path, r.signature) for r in conn.execute(query))
        return found

    def published_paths(self, prefix: str = "") -> list[str]:
        """Every published path (starting with `prefix`), in order."""
        query = sa.select(published.c.path).order_by(published.c.path)
        if prefix:
            # A range on the primary key: the paths under one folder without a scan.
            query = query.where(published.c.path >= prefix, published.c.path < prefix + "\uffff")
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def save_published(self, changed: Mapping[str, str], removed: Iterable[str]) -> None:
        gone = sorted(set(removed) | set(changed))
        with self.engine.begin() as conn:
            for chunk in _chunks(gone):
                conn.execute(published.delete().where(published.c.path.in_(chunk)))
            rows = [{"path": p, "signature": s} for p, s in sorted(changed.items())]
            for chunk in _chunks(rows):
                conn.execute(published.insert(), list(chunk))

    # -- the outbox: the source of truth for digests ---------------------------------------------

    def first_seen(
        self, emails: Sequence[str], now: datetime, *, record: bool = True
    ) -> dict[str, datetime]:
        """When each subscriber first appeared in config (`now`, recorded unless a dry run)."""
        keys = [e.lower() for e in emails]
        with self.engine.begin() as conn:
            known = {
                r.email: r.first_seen
                for chunk in _chunks(keys)
                for r in conn.execute(sa.select(subscribers).where(subscribers.c.email.in_(chunk)))
            }
            new = [{"email": k, "first_seen": _ts(now)} for k in keys if k not in known]
            for chunk in _chunks(new if record else []):
                conn.execute(subscribers.insert(), list(chunk))
        return {k: _dt(known.get(k, _ts(now))) for k in keys}

    def known_subscribers(self) -> set[str]:
        """Addresses that have appeared before (each got, or gets, periods since then)."""
        with self.engine.connect() as conn:
            return set(conn.execute(sa.select(subscribers.c.email)).scalars())

    def unsubscribed(self) -> set[str]:
        with self.engine.connect() as conn:
            query = sa.select(subscribers.c.email).where(subscribers.c.unsubscribed.is_not(None))
            return {r.email for r in conn.execute(query)}

    def unsubscribe(self, email: str, now: datetime) -> None:
        key = email.lower()
        with self.engine.begin() as conn:
            done = conn.execute(
                subscribers.update().where(subscribers.c.email == key).values(unsubscribed=_ts(now))
            ).rowcount
            if not done:
                conn.execute(
                    subscribers.insert(),
                    [{"email": key, "first_seen": _ts(now), "unsubscribed": _ts(now)}],
                )

    def last_slots(self) -> dict[str, datetime]:
        """Each subscriber's latest recorded period slot, whatever its state."""
        with self.engine.connect() as conn:
            query = sa.select(outbox.c.subscriber, sa.func.max(outbox.c.slot)).group_by(
                outbox.c.subscriber
            )
            return {r[0]: _dt(r[1]) for r in conn.execute(query)}

    def add_periods(self, rows: Sequence[tuple[str, str, datetime]], now: datetime) -> None:
        """Record periods as pending; a period already recorded is left as it is."""
        with self.engine.begin() as conn:
            for chunk in _chunks(list(rows)):
                existing = {
                    (r.subscriber, r.period)
                    for r in conn.execute(
                        sa.select(outbox.c.subscriber, outbox.c.period).where(
                            sa.tuple_(outbox.c.subscriber, outbox.c.period).in_(
                                [(s, p) for s, p, _ in chunk]
                            )
                        )
                    )
                }
                new = [
                    {
                        "subscriber": s,
                        "period": p,
                        "slot": _ts(slot),
                        "state": "pending",
                        "attempts": 0,
                        "updated": _ts(now),
                    }
                    for s, p, slot in chunk
                    if (s, p) not in existing
                ]
                if new:
                    conn.execute(outbox.insert(), new)

    def due(self, now: datetime) -> list[OutboxRow]:
        """Pending periods and failed ones whose retry time has come, oldest slot first."""
        ready = sa.or_(
            outbox.c.state == "pending",
            sa.and_(outbox.c.state == "failed", outbox.c.next_attempt <= _ts(now)),
        )
        query = sa.select(outbox).where(ready).order_by(outbox.c.slot, outbox.c.subscriber)
        with self.engine.connect() as conn:
            return [_outbox_row(r) for r in conn.execute(query)]

    def next_retry(self) -> datetime | None:
        query = sa.select(sa.func.min(outbox.c.next_attempt)).where(outbox.c.state == "failed")
        with self.engine.connect() as conn:
            value = conn.execute(query).scalar()
        return _dt(value) if value is not None else None

    def claim(
        self, subscriber: str, period: str, now: datetime, *, items: int | None = None
    ) -> bool:
        """pending/failed -> sending, committed before any mail is sent; False if another
        run took it."""
        values = {"_subscriber": subscriber, "_period": period, "_now": _ts(now), "items": items}
        return self._write(_CLAIM_SQL, values) == 1

    def data_begins(self, subscriber: str, period: str, message_id: str) -> None:
        """Record, committed, that the message is about to be handed over (SMTP DATA, or the
        Maildir's rename): a row interrupted before this is safe to send again."""
        values = {"_subscriber": subscriber, "_period": period, "message_id": message_id}
        self._write(_DATA_SQL, values)

    def finish(
        self,
        subscriber: str,
        period: str,
        state: str,
        now: datetime,
        *,
        items: int | None = None,
        message_id: str | None = None,
        error: str | None = None,
        next_attempt: datetime | None = None,
    ) -> None:
        assert state in OUTBOX_STATES
        values = {
            "_subscriber": subscriber,
            "_period": period,
            "state": state,
            "items": items,
            "message_id": message_id,
            "error": error,
            "next_attempt": _ts(next_attempt) if next_attempt else None,
            "updated": _ts(now),
        }
        self._write(_FINISH_SQL, values)

    def _write(self, prepared: _Prepared, values: dict[str, Any]) -> int:
        """One statement in a transaction of its own, committed; the rows it changed."""
        raw = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            try:
                cursor.execute(prepared.sql, {**prepared.defaults, **values})
                raw.commit()
            except BaseException:
                raw.rollback()
                raise
            return int(cursor.rowcount)
        finally:
            raw.close()  # back to the pool

    def interrupted(self) -> list[OutboxRow]:
        """Rows left in `sending` by a process that died while sending them."""
        query = sa.select(outbox).where(outbox.c.state == "sending")
        with self.engine.connect() as conn:
            return [_outbox_row(r) for r in conn.execute(query)]

    def outbox_rows(self, limit: int = 50) -> list[OutboxRow]:
        query = sa.select(outbox).order_by(outbox.c.updated.desc(), outbox.c.slot.desc())
        with self.engine.connect() as conn:
            return [_outbox_row(r) for r in conn.execute(query.limit(limit))]

    def outbox_counts(self) -> dict[str, int]:
        query = sa.select(outbox.c.state, sa.func.count()).group_by(outbox.c.state)
        with self.engine.connect() as conn:
            found = {r[0]: int(r[1]) for r in conn.execute(query)}
        return {state: found.get(state, 0) for state in OUTBOX_STATES}

    def heads_new(
        self, after: datetime, until: datetime, *, published_after: datetime | None = None
    ) -> list[EntryHead]:
        """Entries that became new (first stored, or visible text changed) in (after, until],
        plus, with `published_after`, entries published in (published_after, until] that
        were stored by then; newest first."""
        a, u = _ts(after), _ts(until)
        new = sa.or_(
            sa.and_(entries.c.seen_at > a, entries.c.seen_at <= u),
            sa.and_(entries.c.changed_at > a, entries.c.changed_at <= u),
        )
        if published_after is not None:
            recent = sa.and_(
                entries.c.published > _ts(published_after),
                entries.c.published <= u,
                entries.c.seen_at <= u,
            )
            new = sa.or_(new, recent)
        return self._heads(new)

    def count_problems(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(problems)).scalar_one())

    def problems(self) -> list[Problem]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(problems).order_by(problems.c.source, problems.c.line))
            return [Problem(r.source, r.line, r.message) for r in rows]

    def transaction(self) -> StoreTransaction:
        return _SqlTransaction(self.engine)


def _active_discovered(conn: Connection, evidence: int) -> dict[str, tuple[str, str]]:
    counted = (
        sa.select(discovered_in.c.slug)
        .group_by(discovered_in.c.slug)
        .having(sa.func.count() >= evidence)
        .subquery()
    )
    query = sa.select(discovered).where(discovered.c.slug.in_(sa.select(counted.c.slug)))
    return {r.slug: (r.name, r.role) for r in conn.execute(query)}


def _entry_pages(conn: Connection, size: int) -> Iterator[list[Entry]]:
    after = ""
    while True:
        query = sa.select(entries).where(entries.c.id > after).order_by(entries.c.id)
        rows = list(conn.execute(query.limit(size)))
        if not rows:
            return
        yield [_entry(row) for row in rows]
        after = rows[-1].id


def _load_entries(
    conn: Connection, ids: Sequence[str] | None, *, with_sources: bool
) -> list[Entry]:
    rows: list[sa.Row[Any]] = []
    if ids is None:
        rows = list(conn.execute(sa.select(entries)))
    else:
        for chunk in _chunks(list(ids)):
            rows.extend(conn.execute(sa.select(entries).where(entries.c.id.in_(chunk))))
    located: dict[str, list[Location]] = {}
    if with_sources:
        query = sa.select(provenance).order_by(provenance.c.source, provenance.c.line)
        if ids is None:
            prov = list(conn.execute(query))
        else:
            prov = []
            for chunk in _chunks(list(ids)):
                prov.extend(conn.execute(query.where(provenance.c.entry_id.in_(chunk))))
        for p in prov:
            located.setdefault(p.entry_id, []).append(Location(p.source, p.line))
    return [_entry(row, located.get(row.id, ())) for row in rows]


class _SqlTransaction:
    """One build's writes, committed together or not at all."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.conn: Connection | None = None

    def __enter__(self) -> StoreTransaction:
        self.conn = self.engine.connect()
        self.conn.begin()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        assert self.conn is not None
        try:
            if exc_type is None:
                self.conn.commit()
            else:
                self.conn.rollback()
        finally:
            self.conn.close()
            self.conn = None

    @property
    def c(self) -> Connection:
        assert self.conn is not None, "use the transaction in a with block"
        return self.conn

    def entries(self, ids: Sequence[str]) -> list[Entry]:
        return _load_entries(self.c, ids, with_sources=False)

    def upsert_entries(self, new: Sequence[Entry], changed: Sequence[Entry]) -> None:
        fresh = [_entry_row(e) for e in new]
        for chunk in _chunks(fresh):
            self.c.execute(entries.insert(), list(chunk))
        stmt = (
            entries.update()
            .where(entries.c.id == sa.bindparam("_id"))
            .values({c.name: sa.bindparam(c.name) for c in entries.c if c.name != "id"})
        )
        rows = [{**_entry_row(e), "_id": e.id} for e in changed]
        for chunk in _chunks(rows):
            self.c.execute(stmt, list(chunk))
        _index(self.c, new, [r["rev"] for r in fresh], fresh=True)
        _index(self.c, changed, [r["rev"] for r in rows], fresh=False)

    def set_tags(self, tags: Sequence[Entry]) -> None:
        """Store re-tagged entries' officials and topics (and so their rev), nothing else."""
        stmt = (
            entries.update()
            .where(entries.c.id == sa.bindparam("_id"))
            .values(
                officials=sa.bindparam("officials"),
                topics=sa.bindparam("topics"),
                rev=sa.bindparam("rev"),
            )
        )
        revs = [entry_rev(e) for e in tags]
        rows = [
            {"_id": e.id, "officials": list(e.officials), "topics": list(e.topics), "rev": rev}
            for e, rev in zip(tags, revs, strict=True)
        ]
        for chunk in _chunks(rows):
            self.c.execute(stmt, list(chunk))
        _index(self.c, tags, revs, fresh=False)

    def _state_row(self, state: SourceState) -> dict[str, Any]:
        return {
            "name": state.name,
            "sha256": state.sha256,
            "size": state.size,
            "mtime_ns": state.mtime_ns,
            "items": state.items,
        }

    def save_source(
        self, state: SourceState, found: Iterable[tuple[Location, str]], bad: Sequence[Problem]
    ) -> None:
        """Replace what is known of one re-parsed file: its state, provenance and problems."""
        self.forget_source(state.name)
        self.c.execute(sources.insert(), [self._state_row(state)])
        rows = [{"source": loc.file, "line": loc.line, "entry_id": eid} for loc, eid in found]
        for chunk in _chunks(rows):
            self.c.execute(provenance.insert(), list(chunk))
        self.add_problems(bad)

    def add_problems(self, found: Iterable[Problem]) -> None:
        """Record problems of files whose records were just saved (merging reports late)."""
        rows = [{"source": p.file, "line": p.line, "message": p.message} for p in set(found)]
        keys = sa.tuple_(problems.c.source, problems.c.line, problems.c.message)
        for chunk in _chunks(sorted(rows, key=lambda r: (r["source"], r["line"], r["message"]))):
            self.c.execute(
                problems.delete().where(
                    keys.in_([(r["source"], r["line"], r["message"]) for r in chunk])
                )
            )
            self.c.execute(problems.insert(), list(chunk))

    def touch_source(self, state: SourceState) -> None:
        """Same content, new stat (touched or copied back): remember the stat, parse nothing."""
        self.c.execute(
            sources.update()
            .where(sources.c.name == state.name)
            .values(size=state.size, mtime_ns=state.mtime_ns)
        )

    def rename_source(self, old: str, state: SourceState) -> None:
        """A file moved with the same content: move its records, parse nothing."""
        for table in (provenance, problems):
            self.c.execute(table.update().where(table.c.source == old).values(source=state.name))
        self.c.execute(sources.delete().where(sources.c.name == old))
        self.c.execute(sources.insert(), [self._state_row(state)])

    def set_meta(self, key: str, value: str) -> None:
        self.c.execute(meta.delete().where(meta.c.key == key))
        self.c.execute(meta.insert(), [{"key": key, "value": value}])

    def add_discovered(self, found: Iterable[tuple[str, str, str, str]]) -> None:
        """Record (slug, name, role, entry id): a new leader, and an entry that names them."""
        found = list(found)
        rows = {slug: {"slug": slug, "name": name, "role": role} for slug, name, role, _ in found}
        for chunk in _chunks(sorted(rows)):
            self.c.execute(discovered.delete().where(discovered.c.slug.in_(chunk)))
            self.c.execute(discovered.insert(), [rows[slug] for slug in chunk])
        evidence = sorted({(slug, eid) for slug, _, _, eid in found})
        key = sa.tuple_(discovered_in.c.slug, discovered_in.c.entry_id)
        for chunk in _chunks(evidence):
            self.c.execute(discovered_in.delete().where(key.in_(chunk)))
            self.c.execute(discovered_in.insert(), [{"slug": s, "entry_id": e} for s, e in chunk])

    def forget_discovered_in(self, ids: Iterable[str] | None) -> None:
        """Forget what these entries (None: all) named, before they are tagged again."""
        if ids is None:
            self.c.execute(discovered_in.delete())
            return
        for chunk in _chunks(sorted(set(ids))):
            self.c.execute(discovered_in.delete().where(discovered_in.c.entry_id.in_(chunk)))

    def entry_pages(self, size: int) -> Iterator[list[Entry]]:
        """All entries, in this transaction's view, `size` at a time."""
        yield from _entry_pages(self.c, size)

    def active_discovered(self, evidence: int) -> dict[str, tuple[str, str]]:
        return _active_discovered(self.c, evidence)

    def forget_source(self, name: str) -> None:
        """The file is gone or being replaced; its entries stay published."""
        for table in (provenance, problems):
            self.c.execute(table.delete().where(table.c.source == name))
        self.c.execute(sources.delete().where(sources.c.name == name))
