"""The publish index: what planning feeds and pages reads, kept with the entries.

The listing (each channel's entries with their month and revision), entries per channel and
month, folded titles and the related titles each entry names, the marks of what changed since
the last publish, and the signature of every published file. The ingest transaction keeps the
first four in step with the entries (`index_entries`); the publisher reads them and records
what it wrote.
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..model import Entry, Listed, Mark, channels_of, month_of, month_span
from ..text import fold
from .schema import (
    changed_entries,
    changed_months,
    changes,
    chunks,
    dt,
    entries,
    guarded,
    insert,
    insert_rows,
    listing,
    mentions,
    meta,
    months,
    nodes,
    published,
    titles,
    ts,
    upsert,
    writing,
)
from .types import Changes, NodeState

_UNLIST = listing.delete().where(
    listing.c.channel == sa.bindparam("c"),
    listing.c.published == sa.bindparam("p"),
    listing.c.id == sa.bindparam("i"),
)
_UNTITLE = titles.delete().where(
    titles.c.key == sa.bindparam("k"),
    titles.c.published == sa.bindparam("p"),
    titles.c.id == sa.bindparam("i"),
)
_UNMENTION = mentions.delete().where(
    mentions.c.key == sa.bindparam("k"), mentions.c.id == sa.bindparam("i")
)
_PRUNED_KEY = "changes_pruned"  # the log holds no change at or below this number
_FORGOTTEN = 7 * 86400  # a node silent this long no longer holds the log back


def index_entries(
    conn: Connection, changed: Sequence[Entry], revs: Sequence[str], *, fresh: bool
) -> None:
    """Keep the listing, month counts, title index and dirty marks in step with `changed`
    (just inserted when `fresh`, else about to be updated: their stored rows are read for
    where they are listed now), whose revs are `revs`."""
    if not changed:
        return
    ids = [e.id for e in changed]
    delta: Counter[tuple[str, str]] = Counter()
    touched: dict[tuple[str, str], list[int]] = {}  # published instants changed, per month
    old_titles: list[dict[str, Any]] = []
    if not fresh:
        # An entry's rows in the listing, titles and mentions are keyed by what its stored
        # row holds (channels, folded title, related titles), so they are found by their
        # primary keys: no index by entry to keep up (a third of writing each), and no scan.
        gone: list[dict[str, Any]] = []
        old_mentions: list[dict[str, Any]] = []
        for chunk in chunks(ids):
            stored = sa.select(
                entries.c.id,
                entries.c.published,
                entries.c.officials,
                entries.c.topics,
                entries.c.title,
                entries.c.related,
            ).where(entries.c.id.in_(chunk))
            for r in conn.execute(stored):
                month = month_of(dt(r.published))
                for channel in channels_of(r.officials, r.topics):
                    delta[(channel, month)] -= 1
                    touched.setdefault((channel, month), []).append(r.published)
                    gone.append({"c": channel, "p": r.published, "i": r.id})
                old_titles.append({"k": fold(r.title), "p": r.published, "i": r.id})
                old_mentions.extend({"k": k, "i": r.id} for k in {fold(t) for t in r.related})
        for statement, stale in (
            (_UNLIST, gone),
            (_UNTITLE, old_titles),
            (_UNMENTION, old_mentions),
        ):
            if stale:
                conn.execute(statement, stale)
    rows: list[dict[str, Any]] = []
    mentioned: set[tuple[str, str]] = set()
    for e, rev in zip(changed, revs, strict=True):
        month = month_of(e.published)
        published_at, updated_at = ts(e.published), ts(e.updated)
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
    insert_rows(conn, listing, rows)
    insert_rows(conn, mentions, [{"key": k, "id": i} for k, i in sorted(mentioned)])
    dirty = set(ids)
    keys = {fold(e.title) for e in changed}
    relinked = set(keys)  # titles whose newest entry may now be another
    if not fresh:
        relinked = keys ^ {r["k"] for r in old_titles}  # a changed title: the old and the new
    # Every entry has its row: of two with one title, the newest is found at read time.
    insert_rows(
        conn,
        titles,
        [{"key": fold(e.title), "published": ts(e.published), "id": e.id} for e in changed],
    )
    for chunk in chunks(sorted(relinked)):
        # Pages listing one of these titles as related now link to another entry.
        found = sa.select(mentions.c.id).where(mentions.c.key.in_(chunk))
        dirty.update(conn.execute(found).scalars())
    _count_months(conn, delta)
    shifted = {k for k, n in delta.items() if n}
    seq = conn.execute(changes.insert().values(at=int(time.time()))).inserted_primary_key[0]  # type: ignore[index]
    marks = [
        {
            "seq": seq,
            "channel": c,
            "month": m,
            "first": min(instants),
            "last": max(instants),
            "shifted": (c, m) in shifted,
        }
        for (c, m), instants in sorted(touched.items())
    ]
    insert_rows(conn, changed_months, marks)
    insert_rows(conn, changed_entries, [{"seq": seq, "id": i} for i in sorted(dirty)])


def _count_months(conn: Connection, delta: Mapping[tuple[str, str], int]) -> None:
    changed = sorted(k for k, n in delta.items() if n)
    key = sa.tuple_(months.c.channel, months.c.month)
    for chunk in chunks(changed):
        query = sa.select(months).where(key.in_(chunk))
        counts = {(r.channel, r.month): r.entries for r in conn.execute(query)}
        conn.execute(months.delete().where(key.in_(chunk)))
        rows = [
            {"channel": c, "month": m, "entries": counts.get((c, m), 0) + delta[(c, m)]}
            for c, m in chunk
        ]
        insert_rows(conn, months, [r for r in rows if r["entries"] > 0])


def _pruned(conn: Connection) -> int:
    value = conn.execute(sa.select(meta.c.value).where(meta.c.key == _PRUNED_KEY)).scalar()
    return int(value or 0)


def _head(conn: Connection) -> int:
    """The latest change's number; once the log is pruned empty, the last one pruned, so the
    head never goes back and nodes at it stay where they are."""
    latest = conn.execute(sa.select(sa.func.max(changes.c.seq))).scalar()
    return max(int(latest or 0), _pruned(conn))


@guarded
class SqlIndex:
    """The publish index as one daemon (`node`) sees it: its own files and log position."""

    def __init__(self, engine: Engine, node: str) -> None:
        self.engine = engine
        self.node = node

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
                found[channel] = (int(count), dt(latest))
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
        query = _listed_query(month is not None, limit is not None, offset > 0)
        values = {"channel": channel, "limit": limit, "offset": offset}
        if month is not None:
            values["start"], values["end"] = map(ts, month_span(month))
        with self.engine.connect() as conn:
            return [
                Listed(entry_id, dt(published), dt(updated), rev)
                for entry_id, published, updated, rev in conn.execute(query, values)
            ]

    def entries_titled(self, keys: Iterable[str]) -> dict[str, str]:
        """Folded title -> id of the newest entry with that title, for those that exist."""
        found: dict[str, tuple[int, str]] = {}
        with self.engine.connect() as conn:
            for chunk in chunks(sorted(set(keys))):
                query = sa.select(titles).where(titles.c.key.in_(chunk))
                for r in conn.execute(query):
                    if r.key not in found or (r.published, r.id) > found[r.key]:
                        found[r.key] = (r.published, r.id)
        return {key: eid for key, (_, eid) in found.items()}

    def head(self) -> int:
        """The number of the latest change in the log (0: none yet)."""
        with self.engine.connect() as conn:
            return _head(conn)

    def changes(self) -> Changes:
        """What changed since this node's last finished publish, up to the log's head now."""
        with self.engine.connect() as conn:
            head = _head(conn)
            mine = conn.execute(sa.select(nodes.c.seq).where(nodes.c.name == self.node)).scalar()
            if mine is None or mine < _pruned(conn):  # the log no longer reaches back
                return Changes({}, [], mine or 0, head, complete=False)
            after = (changed_months.c.seq > mine) & (changed_months.c.seq <= head)
            by_channel: dict[str, dict[str, Mark]] = {}
            for r in conn.execute(sa.select(changed_months).where(after)):
                mark = Mark(dt(r.first), dt(r.last), bool(r.shifted))
                old = by_channel.setdefault(r.channel, {}).get(r.month)
                if old is not None:  # several changes to one month: one wider mark
                    mark = Mark(
                        min(old.first, mark.first),
                        max(old.last, mark.last),
                        old.shifted or mark.shifted,
                    )
                by_channel[r.channel][r.month] = mark
            ids = (
                sa.select(changed_entries.c.id)
                .where((changed_entries.c.seq > mine) & (changed_entries.c.seq <= head))
                .distinct()
            )
            return Changes(by_channel, sorted(conn.execute(ids).scalars()), mine, head)

    def count_before(self, channel: str, month: str, moment: datetime) -> int:
        """Entries of one channel and month published before `moment`."""
        start, end = month_span(month)
        query = sa.select(sa.func.count()).where(
            listing.c.channel == channel,
            listing.c.published >= ts(start),
            listing.c.published < min(ts(moment), ts(end)),
        )
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def published_state(self) -> str | None:
        """The state (a digest of settings, templates and names) this node last published."""
        with self.engine.connect() as conn:
            query = sa.select(nodes.c.state).where(nodes.c.name == self.node)
            value = conn.execute(query).scalar()
        return None if value is None else str(value)

    def finish_publish(self, state: str, upto: int) -> None:
        """Record the state this node published and that it covered the log up to `upto`;
        drop the changes every node has now published."""
        now = int(time.time())
        with writing(self.engine) as conn:
            upsert(conn, nodes, {"name": self.node, "state": state, "seq": upto, "published": now})
            recent = nodes.c.published >= now - _FORGOTTEN
            low = conn.execute(sa.select(sa.func.min(nodes.c.seq)).where(recent)).scalar()
            if low is not None and low > _pruned(conn):
                for table in (changed_months, changed_entries, changes):
                    conn.execute(table.delete().where(table.c.seq <= low))
                upsert(conn, meta, {"key": _PRUNED_KEY, "value": str(low)})

    def nodes(self) -> list[NodeState]:
        """Every daemon that published from this store: how far behind the log each is."""
        with self.engine.connect() as conn:
            head = _head(conn)
            found = []
            for r in conn.execute(sa.select(nodes).order_by(nodes.c.name)):
                oldest = conn.execute(
                    sa.select(sa.func.min(changes.c.at)).where(changes.c.seq > r.seq)
                ).scalar()
                found.append(NodeState(r.name, r.seq, head, dt(r.published), oldest and dt(oldest)))
        return found

    def signatures(self, paths: Sequence[str]) -> dict[str, str]:
        """Path -> signature of those of `paths` that were published."""
        found: dict[str, str] = {}
        with self.engine.connect() as conn:
            for chunk in chunks(sorted(paths)):
                query = sa.select(published).where(
                    published.c.node == self.node, published.c.path.in_(chunk)
                )
                found.update((r.path, r.signature) for r in conn.execute(query))
        return found

    def published_paths(self, prefix: str = "", *, limit: int | None = None) -> list[str]:
        """Every published path (starting with `prefix`), in order; the first `limit`."""
        query = (
            sa.select(published.c.path)
            .where(published.c.node == self.node)
            .order_by(published.c.path)
            .limit(limit)
        )
        if prefix:
            # A range on the primary key: the paths under one folder without a scan.
            query = query.where(published.c.path >= prefix, published.c.path < prefix + "\uffff")
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def save_published(self, changed: Mapping[str, str], removed: Iterable[str]) -> None:
        gone = sorted(set(removed) - set(changed))
        with writing(self.engine) as conn:
            for chunk in chunks(gone):
                conn.execute(
                    published.delete().where(
                        published.c.node == self.node, published.c.path.in_(chunk)
                    )
                )
            # One statement a path whether or not it was published before: a cold build's
            # paths are all new, and a delete of each first cost as much as the insert.
            statement = insert(conn, published)
            statement = statement.on_conflict_do_update(
                index_elements=[published.c.node, published.c.path],
                set_={"signature": statement.excluded.signature},
            )
            rows = [
                {"node": self.node, "path": p, "signature": s} for p, s in sorted(changed.items())
            ]
            for chunk in chunks(rows):
                conn.execute(statement, list(chunk))


@functools.cache
def _listed_query(by_month: bool, limited: bool, offset: bool) -> sa.Select[Any]:
    """`listed`'s statement of each shape, built once: a publish plans thousands of lists,
    and building a statement costs more than running it."""
    query = (
        sa.select(listing.c.id, listing.c.published, listing.c.updated, listing.c.rev)
        .where(listing.c.channel == sa.bindparam("channel"))
        .order_by(listing.c.published.desc(), listing.c.id.desc())
    )
    if by_month:
        query = query.where(
            listing.c.published >= sa.bindparam("start", type_=sa.BigInteger),
            listing.c.published < sa.bindparam("end", type_=sa.BigInteger),
        )
    if limited:
        query = query.limit(sa.bindparam("limit", type_=sa.Integer))
    if offset:
        query = query.offset(sa.bindparam("offset", type_=sa.Integer))
    return query
