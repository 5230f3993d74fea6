"""Entries and where they came from: the ingest side of the store.

Sources (each capture's size, mtime and hash), the merged entries, provenance (which file and
line each entry was read from), problems, and the leaders discovered in the captures. A build
writes through one transaction; its entries' listing, month counts and change marks (index.py)
and their words for search (search.py) are kept in the same transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..model import Entry, EntryHead, Location, Problem
from .index import index_entries
from .schema import (
    INGEST_LOCK,
    advisory,
    chunks,
    discovered,
    discovered_in,
    dt,
    entries,
    guarded,
    insert_rows,
    meta,
    problems,
    provenance,
    rows_with,
    sources,
    ts,
)
from .search import index_search
from .types import IngestTransaction, SourceState


def entry_rev(entry: Entry) -> str:
    shown = [
        entry.title,
        entry.summary,
        entry.summary_truncated,
        entry.content,
        entry.related,
        entry.officials,
        entry.topics,
        ts(entry.published),
        ts(entry.updated),
    ]
    return hashlib.sha256(json.dumps(shown, ensure_ascii=False).encode()).hexdigest()[:16]


def _entry_row(entry: Entry) -> dict[str, Any]:
    return {
        "rev": entry_rev(entry),
        "id": entry.id,
        "title": entry.title,
        "title_from_article": entry.title_from_article,
        "published": ts(entry.published),
        "summary": entry.summary,
        "summary_truncated": entry.summary_truncated,
        "content": list(entry.content) if entry.content is not None else None,
        "related": list(entry.related),
        "officials": list(entry.officials),
        "topics": list(entry.topics),
        "seen_at": ts(entry.seen_at),
        "changed_at": ts(entry.changed_at) if entry.changed_at else None,
    }


def entry_from_row(row: Sequence[Any], locations: Sequence[Location] = ()) -> Entry:
    """The entry of a row of `entries`, its columns in the table's order (`sa.select(entries)`
    or `rows_with`)."""
    (
        eid, title, from_article, published, summary, truncated, content, related, officials,
        topics, seen_at, changed_at, _rev,
    ) = row  # fmt: skip
    return Entry(
        id=eid,
        title=title,
        title_from_article=bool(from_article),
        published=dt(published),
        summary=summary,
        summary_truncated=bool(truncated),
        content=tuple(content) if content is not None else None,
        related=tuple(related),
        officials=tuple(officials),
        topics=tuple(topics),
        seen_at=dt(seen_at),
        changed_at=dt(changed_at) if changed_at is not None else None,
        sources=tuple(locations),
    )


@guarded
class SqlEntries:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def source_states(self, names: Iterable[str] | None = None) -> dict[str, SourceState]:
        """What is known of every source file (or of those of `names` that are known)."""
        # Read on every build (10,000 rows in a large corpus): positional, not by name.
        query = sa.select(*(sources.c[c] for c in ("name", "sha256", "size", "mtime_ns", "items")))
        with self.engine.connect() as conn:
            if names is None:
                return {row[0]: SourceState(*row) for row in conn.execute(query)}
            found: dict[str, SourceState] = {}
            for chunk in chunks(sorted(set(names))):
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

    def heads(self, since: datetime, until: datetime) -> list[EntryHead]:
        """Entries published in [since, until], without their bodies, newest first."""
        published_at = entries.c.published
        return self._heads(sa.and_(published_at >= ts(since), published_at <= ts(until)))

    def _heads(self, where: sa.ColumnElement[bool]) -> list[EntryHead]:
        columns = [c for c in entries.c if c.name not in ("content", "title_from_article")]
        query = sa.select(*columns).order_by(entries.c.published.desc(), entries.c.id.desc())
        query = query.where(where)
        with self.engine.connect() as conn:
            return [
                EntryHead(
                    id=r.id,
                    title=r.title,
                    published=dt(r.published),
                    updated=dt(max(r.published, r.changed_at or r.published)),
                    summary=r.summary,
                    summary_truncated=bool(r.summary_truncated),
                    related=tuple(r.related),
                    officials=tuple(r.officials),
                    topics=tuple(r.topics),
                    rev=r.rev,
                )
                for r in conn.execute(query)
            ]

    def head_pages(self, size: int, ids: Sequence[str]) -> Iterator[list[EntryHead]]:
        """Heads of the entries `ids` (those that exist), `size` at a time in id order."""
        ordered = sorted(ids)
        for start in range(0, len(ordered), size):
            yield self._heads(entries.c.id.in_(ordered[start : start + size]))

    def heads_new(
        self, after: datetime, until: datetime, *, published_after: datetime | None = None
    ) -> list[EntryHead]:
        """Entries that became new (first stored, or visible text changed) in (after, until],
        plus, with `published_after`, entries published in (published_after, until] that
        were stored by then; newest first."""
        a, u = ts(after), ts(until)
        new = sa.or_(
            sa.and_(entries.c.seen_at > a, entries.c.seen_at <= u),
            sa.and_(entries.c.changed_at > a, entries.c.changed_at <= u),
        )
        if published_after is not None:
            recent = sa.and_(
                entries.c.published > ts(published_after),
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

    def transaction(self) -> IngestTransaction:
        return _Transaction(self.engine)


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
        yield [entry_from_row(row) for row in rows]
        after = rows[-1].id


def _load_entries(
    conn: Connection, ids: Sequence[str] | None, *, with_sources: bool
) -> list[Entry]:
    if ids is None:
        rows: Sequence[Sequence[Any]] = list(conn.execute(sa.select(entries)))
    else:
        rows = list(rows_with(conn, entries.c.id, list(ids)))
    located: dict[str, list[Location]] = {}
    if with_sources:
        query = sa.select(provenance).order_by(provenance.c.source, provenance.c.line)
        if ids is None:
            prov = list(conn.execute(query))
        else:
            prov = []
            for chunk in chunks(list(ids)):
                prov.extend(conn.execute(query.where(provenance.c.entry_id.in_(chunk))))
        for p in prov:
            located.setdefault(p.entry_id, []).append(Location(p.source, p.line))
    return [entry_from_row(row, located.get(row[0], ())) for row in rows]


@guarded
class _Transaction:
    """One build's writes, committed together or not at all."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.conn: Connection | None = None

    def __enter__(self) -> IngestTransaction:
        self.conn = self.engine.connect()
        self.conn.execution_options(immediate=True)  # a build writes: see schema.writing
        self.conn.begin()
        advisory(self.conn, INGEST_LOCK)  # the change log's numbers follow commit order
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        assert self.conn is not None
        try:
            if exc_type is None:
                self.commit()
            else:
                self.conn.rollback()
        finally:
            self.conn.close()
            self.conn = None

    def commit(self) -> None:
        assert self.conn is not None
        self.conn.commit()

    @property
    def c(self) -> Connection:
        assert self.conn is not None, "use the transaction in a with block"
        return self.conn

    def entries(self, ids: Sequence[str]) -> list[Entry]:
        return _load_entries(self.c, ids, with_sources=False)

    def upsert_entries(self, new: Sequence[Entry], changed: Sequence[Entry]) -> None:
        fresh = [_entry_row(e) for e in new]
        insert_rows(self.c, entries, fresh)
        stmt = (
            entries.update()
            .where(entries.c.id == sa.bindparam("_id"))
            .values({c.name: sa.bindparam(c.name) for c in entries.c if c.name != "id"})
        )
        rows = [{**_entry_row(e), "_id": e.id} for e in changed]
        index_entries(self.c, new, [r["rev"] for r in fresh], fresh=True)
        index_entries(self.c, changed, [r["rev"] for r in rows], fresh=False)  # rows as stored
        for chunk in chunks(rows):
            self.c.execute(stmt, list(chunk))
        index_search(self.c, new, fresh=True)
        index_search(self.c, changed, fresh=False)

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
        index_entries(self.c, tags, revs, fresh=False)  # reads the rows as they are stored
        for chunk in chunks(rows):
            self.c.execute(stmt, list(chunk))

    def _state_row(self, state: SourceState) -> dict[str, Any]:
        return {
            "name": state.name,
            "sha256": state.sha256,
            "size": state.size,
            "mtime_ns": state.mtime_ns,
            "items": state.items,
        }

    def save_source(
        self,
        state: SourceState,
        found: Iterable[tuple[Location, str]],
        bad: Sequence[Problem],
        *,
        known: bool = True,
    ) -> None:
        """Replace what is known of one re-parsed file: its state, provenance and problems.
        `known=False`: the store has nothing of it yet (every file of a cold build), so
        there is nothing to forget first."""
        if known:
            self.forget_source(state.name)
        self.c.execute(sources.insert(), [self._state_row(state)])
        rows = [{"source": loc.file, "line": loc.line, "entry_id": eid} for loc, eid in found]
        insert_rows(self.c, provenance, rows)
        self.add_problems(bad)

    def add_problems(self, found: Iterable[Problem]) -> None:
        """Record problems of files whose records were just saved (merging reports late)."""
        rows = [{"source": p.file, "line": p.line, "message": p.message} for p in set(found)]
        keys = sa.tuple_(problems.c.source, problems.c.line, problems.c.message)
        for chunk in chunks(sorted(rows, key=lambda r: (r["source"], r["line"], r["message"]))):
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
        for chunk in chunks(sorted(rows)):
            self.c.execute(discovered.delete().where(discovered.c.slug.in_(chunk)))
            self.c.execute(discovered.insert(), [rows[slug] for slug in chunk])
        evidence = sorted({(slug, eid) for slug, _, _, eid in found})
        key = sa.tuple_(discovered_in.c.slug, discovered_in.c.entry_id)
        for chunk in chunks(evidence):
            self.c.execute(discovered_in.delete().where(key.in_(chunk)))
            self.c.execute(discovered_in.insert(), [{"slug": s, "entry_id": e} for s, e in chunk])

    def forget_discovered_in(self, ids: Iterable[str] | None) -> None:
        """Forget what these entries (None: all) named, before they are tagged again."""
        if ids is None:
            self.c.execute(discovered_in.delete())
            return
        for chunk in chunks(sorted(set(ids))):
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
