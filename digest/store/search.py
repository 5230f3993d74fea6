"""Search: the entries' words in the database's own full-text index, and the queries on it.

Words are folded before either engine sees them (`text.search_words`: no case, no tone marks,
đ as d), so SQLite (an FTS5 table) and PostgreSQL (a tsvector under a GIN index) hold and
match the same words; the database only finds and ranks. The ingest transaction keeps the
index in step with the entries (`index_search`), so a committed entry is findable and a rolled
back one never was.

Each entry's number in the index (`doc`) is its publish instant shifted left by 20 bits, plus
20 bits of its id: the index's own order is then newest last, so "newest first" and a date range
read the index in order and stop, with no sort. Ranking weighs a word in the title over one in
the teaser, and that over one in the article (BM25 on SQLite, ts_rank on PostgreSQL), over the
newest `WINDOW` matches; recency breaks ties. Counting stops at `COUNT_CAP`.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..model import Entry, Found, Phrase, Search
from ..text import nfc, search_words, unmarked
from .schema import chunks, entries, guarded, insert, search_docs, ts

WINDOW = 2000  # matches ranked, the newest: BM25 costs a few µs a match
COUNT_CAP = 10_000
_SHIFT = 20
_LOW = (1 << _SHIFT) - 1
_PAGE = 1000  # entries read at a time when the whole index is written
_FTS_INSERT = "INSERT INTO search_text (rowid, title, summary, body) VALUES (?, ?, ?, ?)"
_FTS_ROW = itemgetter("doc", "title", "summary", "body")
_PG_INSERT = sa.text(
    "INSERT INTO search_docs (doc, id, terms) VALUES (:doc, :id, "
    "setweight(to_tsvector('simple', :title), 'A') || "
    "setweight(to_tsvector('simple', :summary), 'B') || "
    "setweight(to_tsvector('simple', :body), 'C')) ON CONFLICT (doc) DO NOTHING"
)


def doc_of(published: int, entry_id: str, step: int = 0) -> int:
    """An entry's number in the index: its instant, then bits of its id (the next ones if
    another entry of the same second has those)."""
    return (published << _SHIFT) | ((zlib.crc32(entry_id.encode()) + step) & _LOW)


def _fields(entry: Entry, sqlite: bool) -> dict[str, Any]:
    texts = (entry.title, entry.summary, " ".join(entry.content or ()))
    if sqlite:  # FTS5's unicode61 splits words as search_words does: unmarked text will do
        title, summary, body = (unmarked(nfc(t)) for t in texts)
    else:  # PostgreSQL's parser has ideas of its own (hyphenated words): hand it the words
        title, summary, body = (" ".join(search_words(t)) for t in texts)
    return {"id": entry.id, "title": title, "summary": summary, "body": body}


def index_search(conn: Connection, changed: Sequence[Entry], *, fresh: bool) -> None:
    """Index `changed` (just inserted when `fresh`, else replacing what was indexed)."""
    if not changed:
        return
    sqlite = conn.dialect.name == "sqlite"
    if not fresh:
        for chunk in chunks([e.id for e in changed]):
            if sqlite:
                conn.execute(
                    sa.text("DELETE FROM search_text WHERE rowid IN :docs").bindparams(
                        sa.bindparam("docs", expanding=True)
                    ),
                    {"docs": list(_docs(conn, chunk))},
                )
            conn.execute(search_docs.delete().where(search_docs.c.id.in_(chunk)))
    placed: list[dict[str, Any]] = []
    for chunk in chunks(changed):
        rows = [{**_fields(e, sqlite), "doc": 0} for e in chunk]
        _place(conn, chunk, rows, with_terms=not sqlite)
        placed += rows
    if sqlite:
        # FTS5 writes out what it holds each time a row comes with a lower number than the
        # row before it: captures list the newest first, so rows go in ascending (3x faster).
        placed.sort(key=itemgetter("doc"))
        for chunk in chunks(placed):
            conn.exec_driver_sql(_FTS_INSERT, list(map(_FTS_ROW, chunk)))


def _docs(conn: Connection, ids: Sequence[str]) -> dict[int, str]:
    found = conn.execute(
        sa.select(search_docs.c.doc, search_docs.c.id).where(search_docs.c.id.in_(ids))
    )
    return {doc: entry_id for doc, entry_id in found}


def _place(
    conn: Connection, chunk: Sequence[Entry], rows: list[dict[str, Any]], *, with_terms: bool
) -> None:
    """Store each row under its doc number, the next free one if another entry of the same
    second has it (in this batch or before); on PostgreSQL with its terms."""
    published = {e.id: ts(e.published) for e in chunk}
    pending = rows
    step = 0
    while pending:
        taken: set[int] = set()
        batch = []
        for row in pending:
            row["doc"] = doc_of(published[row["id"]], row["id"], step)
            if row["doc"] not in taken:
                taken.add(row["doc"])
                batch.append(row)
        if with_terms:  # PostgreSQL: the row holds the terms too
            result = conn.execute(_PG_INSERT, batch)
        else:
            result = conn.execute(
                insert(conn, search_docs).on_conflict_do_nothing(),
                [{"doc": r["doc"], "id": r["id"]} for r in batch],
            )
        if (
            len(batch) == len(pending) == result.rowcount
            and conn.dialect.supports_sane_multi_rowcount
        ):
            return  # every row went in under its number: nothing to read back
        stored = _docs(conn, [r["id"] for r in pending])
        pending = [r for r in pending if stored.get(r["doc"]) != r["id"]]
        step += 1


def index_all(conn: Connection) -> None:
    """Index every entry anew (a store upgraded from before search)."""
    from .entries import entry_from_row  # entries.py writes through this module

    if conn.dialect.name == "sqlite":
        conn.execute(sa.text("DELETE FROM search_text"))
    conn.execute(search_docs.delete())
    after = ""
    while page := list(
        conn.execute(
            sa.select(entries).where(entries.c.id > after).order_by(entries.c.id).limit(_PAGE)
        )
    ):
        index_search(conn, [entry_from_row(r) for r in page], fresh=True)
        after = page[-1].id


def match_expression(phrases: Sequence[Phrase], dialect: str) -> str:
    """The phrases in the engine's own query syntax. Words are letters and digits only
    (`search_words`), so quoting them is enough to keep every operator out."""
    wanted = [p for p in phrases if not p.exclude]
    unwanted = [p for p in phrases if p.exclude]
    if dialect == "sqlite":

        def fts(p: Phrase) -> str:
            return '"' + " ".join(p.words) + '"' + ("*" if p.prefix else "")

        expression = " AND ".join(map(fts, wanted))
        for p in unwanted:
            expression = f"({expression}) NOT {fts(p)}"
        return expression

    def tsquery(p: Phrase) -> str:
        quoted = [f"'{w}'" for w in p.words]
        if p.prefix:
            quoted[-1] += ":*"
        return "(" + " <-> ".join(quoted) + ")"

    return " & ".join([*map(tsquery, wanted), *(f"!{tsquery(p)}" for p in unwanted)])


# The statements of a search with words, per engine; {where} is built of our own fragments
# below, and every value is a bound parameter. bench/search.py runs the SQLite ones alone as
# the floor of a search page.
MATCHED = {
    "sqlite": {
        "match": "search_text MATCH :match",
        "doc": "rowid",
        # `+rowid`: filter FTS5's rows as they come, rather than look each value up
        "listed": "+rowid IN (SELECT doc FROM search_docs WHERE id IN ({}))",
        "count": "SELECT count(*) FROM (SELECT rowid FROM search_text WHERE {where} LIMIT :cap)",
        "newest": "SELECT d.id FROM (SELECT rowid AS doc FROM search_text WHERE {where} "
        "ORDER BY rowid DESC LIMIT :limit OFFSET :offset) AS r "
        "JOIN search_docs AS d ON d.doc = r.doc ORDER BY r.doc DESC",
        "ranked": "SELECT d.id FROM (SELECT rowid AS doc, bm25(search_text, 5.0, 2.0, 1.0) "
        "AS score FROM search_text WHERE {where} ORDER BY rowid DESC LIMIT :window) AS r "
        "JOIN search_docs AS d ON d.doc = r.doc "
        "ORDER BY r.score, r.doc DESC LIMIT :limit OFFSET :offset",
    },
    "postgresql": {
        "match": "terms @@ to_tsquery('simple'::regconfig, :match)",
        "doc": "doc",
        "listed": "id IN ({})",
        "count": "SELECT count(*) FROM (SELECT 1 FROM search_docs WHERE {where} LIMIT :cap) AS c",
        "newest": "SELECT id FROM search_docs WHERE {where} "
        "ORDER BY doc DESC LIMIT :limit OFFSET :offset",
        # ts_rank's default weights for A, B, C (title, teaser, article) are 1, 0.4, 0.2
        "ranked": "SELECT id FROM (SELECT id, doc, "
        "ts_rank(terms, to_tsquery('simple'::regconfig, :match)) AS score "
        "FROM search_docs WHERE {where} ORDER BY doc DESC LIMIT :window) AS r "
        "ORDER BY score DESC, doc DESC LIMIT :limit OFFSET :offset",
    },
}
_IN_CHANNELS = "SELECT id FROM listing WHERE channel IN :{}"
_LISTED = {
    "count": "SELECT count(*) FROM (SELECT DISTINCT id FROM listing WHERE {where} LIMIT :cap) AS c",
    "page": "SELECT id FROM listing WHERE {where}{group} "
    "ORDER BY published DESC, id DESC LIMIT :limit OFFSET :offset",
}


def _statement(sql: str, params: dict[str, Any]) -> sa.TextClause:
    lists: list[sa.BindParameter[Any]] = [
        sa.bindparam(k, expanding=True) for k, v in params.items() if isinstance(v, list)
    ]
    return sa.text(sql).bindparams(*lists)


@guarded
class SqlSearch:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sql = MATCHED[engine.dialect.name]

    def find(self, search: Search, *, offset: int = 0, limit: int = 20) -> Found:
        """One page of the entries that `search` finds, and how many it finds."""
        params: dict[str, Any] = {"offset": offset, "limit": limit, "cap": COUNT_CAP + 1}
        for kind, slugs in (("officials", search.officials), ("topics", search.topics)):
            if slugs:
                params[kind] = [f"{kind}/{slug}" for slug in slugs]
        if any(not p.exclude for p in search.phrases):
            params["match"] = match_expression(search.phrases, self.engine.dialect.name)
            count, page = self._matched(search, params)
        else:
            count, page = self._listed(search, params)
        with self.engine.connect() as conn:
            total = int(conn.execute(_statement(count, params), params).scalar_one())
            shown = min(total, COUNT_CAP)
            if total <= offset:
                return Found((), shown, total > COUNT_CAP)
            ids = conn.execute(_statement(page, params), params).scalars()
            return Found(tuple(ids), shown, total > COUNT_CAP)

    def _matched(self, search: Search, params: dict[str, Any]) -> tuple[str, str]:
        sql = self.sql
        where = [sql["match"]]
        if search.since is not None:
            params["low"] = ts(search.since) << _SHIFT
            where.append(f"{sql['doc']} >= :low")
        if search.until is not None:
            params["high"] = ts(search.until) << _SHIFT
            where.append(f"{sql['doc']} < :high")
        for kind in ("officials", "topics"):
            if kind in params:
                where.append(sql["listed"].format(_IN_CHANNELS.format(kind)))
        params["window"] = WINDOW
        condition = " AND ".join(where)
        page = sql["newest" if search.newest_first else "ranked"]
        return sql["count"].format(where=condition), page.format(where=condition)

    @staticmethod
    def _listed(search: Search, params: dict[str, Any]) -> tuple[str, str]:
        """A combination without words: read from the channels' listings."""
        kinds: list[str] = [k for k in ("officials", "topics") if k in params]
        if not kinds:
            params["all"] = ["all"]
            kinds = ["all"]
        where = [f"channel IN :{kinds[0]}"]
        where += [f"id IN ({_IN_CHANNELS.format(k)})" for k in kinds[1:]]
        if search.since is not None:
            params["since"] = ts(search.since)
            where.append("published >= :since")
        if search.until is not None:
            params["until"] = ts(search.until)
            where.append("published < :until")
        condition = " AND ".join(where)
        # One channel lists an entry once, in the order wanted: its index is read in order.
        group = " GROUP BY id, published" if len(params[kinds[0]]) > 1 else ""
        count = _LISTED["count"].format(where=condition)
        return count, _LISTED["page"].format(where=condition, group=group)
