"""The store's schema: its tables, their version and upgrades, and the engine.

SQLAlchemy 2 Core with portable types (instants as integer UTC seconds, lists as JSON), so the
same tables serve SQLite and PostgreSQL. Errors from the database are turned into StoreError
at this package's boundary (`guarded`), their cause kept.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import operator
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from ..errors import StoreError

metadata = sa.MetaData()

# Text keys that are ordered or ranged over compare byte by byte, as SQLite does; a PostgreSQL
# database's own collation (en_US, say) would sort "a-b" and "ab" by language rules instead.
Key = sa.String().with_variant(sa.String(collation="C"), "postgresql")

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
    sa.Column("id", Key, primary_key=True),
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
# page or month of one channel is one range of its key (a month is a range of instants:
# model.month_span), and a change plans only its own channels.
listing = sa.Table(
    "listing",
    metadata,
    sa.Column("channel", Key, primary_key=True),
    sa.Column("published", sa.BigInteger, primary_key=True),
    sa.Column("id", Key, primary_key=True),
    sa.Column("month", sa.String(7), nullable=False),
    sa.Column("updated", sa.BigInteger, nullable=False),
    sa.Column("rev", sa.String(16), nullable=False),
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
    sa.Column("key", Key, primary_key=True),
    sa.Column("published", sa.BigInteger, primary_key=True),
    sa.Column("id", Key, primary_key=True),
)
mentions = sa.Table(
    "mentions",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("id", sa.String(36), primary_key=True),
)

# Search (search.py): each entry's words in the database's own full-text index, written in
# the ingest transaction. `doc` numbers the entry in the index in publish order (the instant,
# shifted, plus a few bits from its id): on SQLite the rowid of an FTS5 table, on PostgreSQL
# the key of the row that also holds a tsvector under a GIN index. Both hold words already
# folded (text.search_words), so both engines match alike.
search_docs = sa.Table(
    "search_docs",
    metadata,
    sa.Column(
        "doc",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),  # the rowid, 64 bits in SQLite
        primary_key=True,
        autoincrement=False,
    ),
    sa.Column("id", Key, nullable=False, unique=True),
)
for _statement, _dialect in (
    (
        "CREATE VIRTUAL TABLE search_text USING fts5(title, summary, body, "
        "tokenize = 'unicode61 remove_diacritics 0')",
        "sqlite",
    ),
    ("ALTER TABLE search_docs ADD COLUMN terms tsvector NOT NULL", "postgresql"),
    ("CREATE INDEX search_terms ON search_docs USING gin (terms)", "postgresql"),
):
    _ddl = sa.DDL(_statement)  # type: ignore[no-untyped-call]
    sa.event.listen(search_docs, "after_create", _ddl.execute_if(dialect=_dialect))

# What ingest changed, as a log: each ingest transaction appends one change (its sequence
# number) with the channel months and entry pages it touched. Every daemon publishing from this
# store follows the log from its own position (`nodes`), so a change made on one machine is
# published on all of them; ingest transactions take turns, so numbers follow commit order.
changes = sa.Table(
    "changes",
    metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("at", sa.BigInteger, nullable=False),
    sqlite_autoincrement=True,  # a number is never reused, even after the log is pruned
)
changed_months = sa.Table(
    "changed_months",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True),
    sa.Column("channel", Key, primary_key=True),
    sa.Column("month", sa.String(7), primary_key=True),
    sa.Column("first", sa.BigInteger, nullable=False),  # published, of the entries changed
    sa.Column("last", sa.BigInteger, nullable=False),
    sa.Column("shifted", sa.Boolean, nullable=False),  # entries came or went
)
changed_entries = sa.Table(
    "changed_entries",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True),
    sa.Column("id", Key, primary_key=True),
)

# Each daemon's publish: the state (settings, templates, names) it last published, how far
# along the change log, and when it last did.
nodes = sa.Table(
    "nodes",
    metadata,
    sa.Column("name", Key, primary_key=True),
    sa.Column("state", sa.Text, nullable=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("published", sa.BigInteger, nullable=False),
)

# The signature of every file each daemon published in its own public folder.
published = sa.Table(
    "published",
    metadata,
    sa.Column("node", Key, primary_key=True),
    sa.Column("path", Key, primary_key=True),
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
    # Who claimed a `sending` row: the claiming process's number, live while it holds its lock
    # (mail/ explains); only the owner may record DATA or the outcome.
    sa.Column("owner", sa.BigInteger, nullable=True),
)

# Every subscriber, from config.toml, the web forms or the command line (docs/subscriptions.md).
subscribers = sa.Table(
    "subscribers",
    metadata,
    sa.Column("email", sa.String, primary_key=True),  # lower-cased
    sa.Column("key", sa.String(32), nullable=False, unique=True),  # in links, not the address
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("schedule", sa.String(8), nullable=False),
    sa.Column("officials", sa.JSON, nullable=False),
    sa.Column("topics", sa.JSON, nullable=False),
    sa.Column("state", sa.String(12), nullable=False, index=True),
    sa.Column("source", sa.String(8), nullable=False),
    sa.Column("created", sa.BigInteger, nullable=False),
    sa.Column("first_seen", sa.BigInteger, nullable=True),  # active since
    sa.Column("unsubscribed", sa.BigInteger, nullable=True),
    sa.Column("consent", sa.JSON, nullable=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("requested", sa.JSON, nullable=True),  # choices of a sign-up not yet confirmed
    sa.Column("expires", sa.BigInteger, nullable=True, index=True),
    sa.Column("noticed", sa.BigInteger, nullable=True),  # last confirmation mail queued
    sa.Column("rev", sa.Integer, nullable=False),  # every write raises it: no lost update
)

# Mails that are not digests (confirmations), queued by the forms, sent by the mail stage.
notices = sa.Table(
    "notices",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("email", sa.String, nullable=False, index=True),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("created", sa.BigInteger, nullable=False, index=True),
    sa.Column("state", sa.String(8), nullable=False, index=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt", sa.BigInteger, nullable=True),
    sa.Column("message_id", sa.String, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("updated", sa.BigInteger, nullable=False),
)

# Sign-ups per client and hour, for the forms' rate limit; shared by every process.
form_hits = sa.Table(
    "form_hits",
    metadata,
    sa.Column("client", sa.String, primary_key=True),
    sa.Column("window", sa.BigInteger, primary_key=True),
    sa.Column("count", sa.Integer, nullable=False),
)

SCHEMA_VERSION = "9"
OUTBOX_STATES = ("pending", "sending", "sent", "empty", "failed", "dead", "unknown")
CHUNK = 500  # bound IN lists and executemany batches well below SQLite's variable limit


def ts(moment: datetime) -> int:
    return int(moment.astimezone(UTC).timestamp())


def dt(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def insert_rows(conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert `rows` (each with the same keys) of `table`, straight through the driver: a
    cold build inserts over three million rows, and SQLAlchemy's own executemany checked and
    processed each row's parameters at a cost above the database's work of storing it. The
    columns' types still convert the values (lists to JSON) as they do in SQLAlchemy."""
    if not rows:
        return
    sql, row_values = _driver_insert(conn.dialect, table, tuple(rows[0]))
    for chunk in chunks(rows):
        conn.exec_driver_sql(sql, [row_values(row) for row in chunk])


@functools.cache
def _driver_insert(
    dialect: sa.Dialect, table: sa.Table, names: tuple[str, ...]
) -> tuple[str, Callable[[Mapping[str, Any]], tuple[Any, ...]]]:
    """The INSERT of `names` in the driver's own parameter style, and what makes a row's
    values for it."""
    columns = [table.c[n] for n in names]  # only the table's own columns reach the SQL
    quote = dialect.identifier_preparer.quote
    listed = ", ".join(quote(c.name) for c in columns)
    marks = ", ".join([_mark(dialect)] * len(columns))
    sql = f"INSERT INTO {quote(table.name)} ({listed}) VALUES ({marks})"  # noqa: S608 - our names
    typed = [(c.name, c.type.dialect_impl(dialect).bind_processor(dialect)) for c in columns]
    if len(names) > 1 and all(convert is None for _, convert in typed):
        # Nothing to convert (the listing, titles, provenance): the values as they are, as a
        # tuple picked in C rather than by a Python loop for each of millions of rows.
        return sql, operator.itemgetter(*names)
    return sql, lambda row: tuple(
        [row[n] if convert is None else convert(row[n]) for n, convert in typed]
    )


def rows_with(
    conn: Connection, column: sa.Column[Any], values: Sequence[Any]
) -> Iterator[tuple[Any, ...]]:
    """The rows of `column`'s table whose `column` is one of `values`: every column, in the
    table's order, each value as SQLAlchemy would read it (JSON decoded, booleans), straight
    from the driver. A publish reads every entry it renders: SQLAlchemy's compiling of each
    IN list and processing of each row cost twice what the database and JSON do."""
    select, convert = _driver_select(conn.dialect, column.table, column.name)
    mark = _mark(conn.dialect)
    for chunk in chunks(values):
        found = conn.exec_driver_sql(f"{select} ({', '.join([mark] * len(chunk))})", tuple(chunk))
        yield from map(convert, found)


@functools.cache
def _driver_select(
    dialect: sa.Dialect, table: sa.Table, name: str
) -> tuple[str, Callable[[Sequence[Any]], tuple[Any, ...]]]:
    """`rows_with`'s SELECT up to its IN list, and what makes a row's values as SQLAlchemy
    reads them."""
    quote = dialect.identifier_preparer.quote
    listed = ", ".join(quote(c.name) for c in table.c)
    select = f"SELECT {listed} FROM {quote(table.name)} WHERE {quote(name)} IN"  # noqa: S608 - our names
    typed = [c.type.dialect_impl(dialect).result_processor(dialect, None) for c in table.c]
    if all(convert is None for convert in typed):  # psycopg decodes JSON itself
        return select, tuple
    return (
        select,
        lambda row: tuple(
            [
                value if convert is None else convert(value)
                for value, convert in zip(row, typed, strict=True)
            ]
        ),
    )


def _mark(dialect: sa.Dialect) -> str:
    """The driver's own parameter mark: sqlite3's qmark, psycopg's format."""
    return "?" if dialect.paramstyle == "qmark" else "%s"


def insert(conn: Connection, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that can say what to do on a conflict, in this connection's dialect."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def upsert(conn: Connection, table: sa.Table, values: dict[str, Any]) -> None:
    """Insert `values`, or update the row with its primary key: one statement, so two
    processes writing the same row at once cannot both insert it."""
    keys = [c.name for c in table.primary_key.columns]
    rest = {k: v for k, v in values.items() if k not in keys}
    statement = insert(conn, table).values(values)
    conn.execute(statement.on_conflict_do_update(index_elements=keys, set_=rest))


T = TypeVar("T")


_CONTEXT = ("__enter__", "__exit__")  # a transaction opens and commits in these


def guarded(cls: type[T]) -> type[T]:
    """Wrap every public method of a store class so that a database error surfaces as a
    StoreError naming the store, with the error kept as its cause (generators included)."""
    for name, method in list(vars(cls).items()):
        if (name.startswith("_") and name not in _CONTEXT) or not callable(method):
            continue
        setattr(cls, name, _guard(method))
    return cls


def _guard(method: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def generator(self: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from method(self, *args, **kwargs)
            except sa.exc.SQLAlchemyError as exc:
                raise _store_error(self.engine, exc) from exc

        return generator

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sa.exc.SQLAlchemyError as exc:
            raise _store_error(self.engine, exc) from exc

    return call


def describe(engine: Engine) -> str:
    """The store as messages name it: the SQLite file, or the server's URL without password."""
    if engine.dialect.name == "sqlite":
        return str(engine.url.database)
    return engine.url.render_as_string(hide_password=True)


def _store_error(engine: Engine, exc: sa.exc.SQLAlchemyError) -> StoreError:
    detail = getattr(exc, "orig", None) or exc
    where = describe(engine)
    check = (
        "check that the database server is up and reachable and [store] url"
        if engine.dialect.name == "postgresql"
        else "check the disk and [paths] store"
    )
    return StoreError(
        f"{where}: the store failed: {detail}; {check}, then run the command again (a build "
        "is one transaction: nothing half-written stays)"
    )


# PostgreSQL advisory locks of this program: (LOCKS, what). Held by a database session, they
# end with it: a process that dies, or whose machine does, lets go (keepalives, below).
LOCKS = 0x64696765  # "dige"
SCHEMA_LOCK = 0  # creating or upgrading the tables
INGEST_LOCK = 1  # an ingest transaction: they take turns, so the change log is in commit order
LEASE_LOCK = 2  # the node that ingests (nodes.py)
OWNERS = LOCKS + 1  # (OWNERS, n): delivering process n is alive (outbox.py)


def advisory(conn: Connection, key: int, *, space: int = LOCKS) -> None:
    """Wait for an advisory lock held until this transaction ends (PostgreSQL only: SQLite
    has one writer at a time already)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(space, key)))


@contextlib.contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A transaction that writes. On SQLite it takes the write lock as it begins (BEGIN
    IMMEDIATE), so it waits its turn (busy_timeout) instead of failing when another process
    commits between its reads and its first write, which a WAL reader cannot wait out. On
    PostgreSQL, rows are locked as they are written and writers conflict only on those."""
    with engine.connect() as conn:
        conn.execution_options(immediate=True)
        with conn.begin():
            yield conn


def open_engine(url: str, *, password: str | None = None, node: str = "local") -> Engine:
    """The store at `url` (sqlite:///file or postgresql+psycopg://server/database), its
    tables created if missing and upgraded in place from an older schema."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = _sqlite(Path(parsed.database or ""))
    else:
        # No pre-ping: it doubled the round trips of every digest. After a server restart
        # the first statement fails (a StoreError, retried like any) and SQLAlchemy drops
        # the whole pool, so the rest reconnect.
        engine = sa.create_engine(
            parsed.set(password=password) if password else parsed,
            connect_args={
                "application_name": f"digest {node}",  # pg_stat_activity names the node
                "connect_timeout": 10,
                # A machine that dies silently loses its locks in ~10 s, not the OS's 2 hours.
                "keepalives": 1,
                "keepalives_idle": 5,
                "keepalives_interval": 2,
                "keepalives_count": 3,
            },
        )
    where = describe(engine)
    try:
        _check_schema(engine, where)
    except sa.exc.DBAPIError as exc:
        engine.dispose()
        hint = (
            "check [store] url, that the server is up, and the password (DIGEST_STORE_PASSWORD "
            "or store.password_file)"
            if engine.dialect.name == "postgresql"
            else "check the path in config.toml [paths] store, or move the damaged file away "
            "to rebuild from the seeds"
        )
        raise StoreError(f"{where}: cannot open the store ({exc.orig}); {hint}") from exc
    except StoreError:
        engine.dispose()
        raise
    return engine


def _sqlite(path: Path) -> Engine:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"{path.parent}: cannot create the store folder: {exc.strerror}") from None
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
        # The driver's own transaction handling begins a transaction only before DML, so an
        # upgrade's CREATE and ALTER would commit on their own: SQLAlchemy begins instead
        # (its documented recipe for pysqlite), and every transaction holds its DDL too.
        dbapi_connection.isolation_level = None

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("immediate")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _version(conn: Connection) -> tuple[bool, str | None]:
    if not sa.inspect(conn).has_table("meta"):
        return False, None
    return True, conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema")).scalar()


def _check_schema(engine: Engine, where: str) -> None:
    with engine.connect() as conn:
        _, version = _version(conn)
    if version == SCHEMA_VERSION:
        return
    with writing(engine) as conn:
        advisory(conn, SCHEMA_LOCK)  # daemons starting together: one creates, the rest wait
        has_meta, version = _version(conn)
        if version == SCHEMA_VERSION:
            return
        if version in ("2", "3", "4", "5", "6"):
            _migrate(conn, version)
            return
        if version in ("7", "8"):
            _lean_listing(conn)
            return
        if has_meta:
            raise StoreError(
                f"{where}: the store has schema {version or 'unknown'}, this version needs "
                f"{SCHEMA_VERSION}; move the file away and run `digest build` to rebuild it "
                "from the seeds (entry ids stay the same)"
            )
        metadata.create_all(conn)
        conn.execute(meta.insert(), [{"key": "schema", "value": SCHEMA_VERSION}])


def _migrate(conn: Connection, version: str) -> None:
    """Schema 3 added the listing and title indexes, derived from the entries; schema 4 the
    discovery evidence, which the next build's re-tagging fills in; schema 5 subscribers in
    the store (those before were config's), notices and the forms' rate limit; schema 6 the
    change log that several daemons publish from, and outbox owners; schema 7 search;
    schema 8 reads a channel's month as a range of the listing's key, and schema 9 where
    an entry is listed from its row (`_lean_listing`)."""
    # The upgrade reads entries and writes the indexes: the modules built on these tables.
    from .entries import entry_from_row, entry_rev
    from .index import index_entries
    from .search import index_all

    before_6 = _published_per_node(conn)  # before create_all makes the new `published`
    metadata.create_all(conn)
    if version == "2":
        after = ""
        while page := [
            entry_from_row(r)
            for r in conn.execute(
                sa.select(entries).where(entries.c.id > after).order_by(entries.c.id).limit(2000)
            )
        ]:
            index_entries(conn, page, [entry_rev(e) for e in page], fresh=True)
            after = page[-1].id
    _subscribers_in_the_store(conn)
    if "owner" not in {c["name"] for c in sa.inspect(conn).get_columns("outbox")}:
        conn.execute(sa.text("ALTER TABLE outbox ADD COLUMN owner BIGINT"))
    if before_6:
        _changes_from_marks(conn)
    index_all(conn)
    _lean_listing(conn)


def _lean_listing(conn: Connection) -> None:
    """The listing's indexes besides its key go, each a part of its writing: schema 8 reads
    a month of one channel as a range of instants in the key (no index by month); schema 9
    finds the rows of an entry that changes from the channels and instant in its stored row
    (no index by entry)."""
    conn.execute(sa.text("DROP INDEX IF EXISTS listing_month"))
    conn.execute(sa.text("DROP INDEX IF EXISTS listing_entry"))
    conn.execute(meta.update().where(meta.c.key == "schema").values(value=SCHEMA_VERSION))


def _published_per_node(conn: Connection) -> bool:
    """Before schema 6 one daemon published: its files' signatures become node "local"'s (the
    name a SQLite store's daemon has), and it follows the log from the start. True if so."""
    inspector = sa.inspect(conn)
    if not inspector.has_table("published"):
        return False
    if "node" in {c["name"] for c in inspector.get_columns("published")}:
        return False
    conn.execute(sa.text("ALTER TABLE published RENAME TO published_v5"))
    published.create(conn)
    conn.execute(
        sa.text(
            "INSERT INTO published (node, path, signature) "
            "SELECT 'local', path, signature FROM published_v5"
        )
    )
    conn.execute(sa.text("DROP TABLE published_v5"))
    return True


def _changes_from_marks(conn: Connection) -> None:
    """What schema 5 had marked for the next publish becomes the log's first change, and the
    one daemon's publish state node "local"'s."""
    state = conn.execute(sa.text("SELECT value FROM meta WHERE key = 'published_state'")).scalar()
    if sa.inspect(conn).has_table("dirty_months"):
        seq = conn.execute(changes.insert().values(at=0)).inserted_primary_key[0]  # type: ignore[index]
        for table, columns in (
            ("changed_months", "channel, month, first, last, shifted"),
            ("changed_entries", "id"),
        ):
            source = "dirty_" + table.removeprefix("changed_")
            conn.execute(
                sa.text(
                    f"INSERT INTO {table} (seq, {columns}) SELECT :seq, {columns} FROM {source}"  # noqa: S608 - names of our tables
                ),
                {"seq": seq},
            )
            conn.execute(sa.text(f"DROP TABLE {source}"))
    conn.execute(nodes.insert().values(name="local", state=state, seq=0, published=0))
    conn.execute(sa.text("DELETE FROM meta WHERE key = 'published_state'"))


def _subscribers_in_the_store(conn: Connection) -> None:
    """Before schema 5 a subscriber row was an address from config, when it first appeared
    and whether it unsubscribed; now it holds the whole subscriber. Old rows become config
    subscribers (the next run fills in their name and filters from config.toml)."""
    columns = {c["name"] for c in sa.inspect(conn).get_columns("subscribers")}
    if "key" in columns:
        return
    conn.execute(sa.text("ALTER TABLE subscribers RENAME TO subscribers_v4"))
    subscribers.create(conn)
    old = conn.execute(sa.text("SELECT email, first_seen, unsubscribed FROM subscribers_v4"))
    rows = [
        {
            "email": r.email,
            "key": new_key(),
            "name": "",
            "schedule": "daily",
            "officials": [],
            "topics": [],
            "state": "unsubscribed" if r.unsubscribed is not None else "active",
            "source": "config",
            "created": r.first_seen,
            "first_seen": r.first_seen,
            "unsubscribed": r.unsubscribed,
            "consent": None,
            "version": 0,
            "requested": None,
            "expires": None,
            "noticed": None,
            "rev": 0,
        }
        for r in old
    ]
    insert_rows(conn, subscribers, rows)
    conn.execute(sa.text("DROP TABLE subscribers_v4"))


def new_key() -> str:
    """A subscriber's key: 128 random bits, URL-safe."""
    return secrets.token_urlsafe(16)
