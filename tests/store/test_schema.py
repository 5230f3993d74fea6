"""The schema on real SQLite files: plain SQL, upgrades, bad files refused, errors as StoreError."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from support import SEEDS, Project, base_config, copy_seeds

from digest.app import make_digest
from digest.config import load
from digest.errors import StoreError
from digest.merge import entry_id, merge
from digest.model import Item, Location, Mark
from digest.store import Store, open_store
from digest.store.schema import SCHEMA_VERSION, dt, metadata

pytestmark = pytest.mark.sqlite_only  # upgrades and damage of SQLite files


def test_store_schema_is_plain_sql(seeded: Project) -> None:
    seeded.digest("build")
    with sqlite3.connect(seeded.store) as db:
        tables = {r[0] for r in db.execute("select name from sqlite_master where type='table'")}
        assert {"entries", "sources", "provenance", "problems"} <= tables
        hashes = dict(db.execute("select name, sha256 from sources"))
    for name, digest in hashes.items():
        assert hashlib.sha256((SEEDS / name).read_bytes()).hexdigest() == digest


def test_a_schema_2_store_is_upgraded_in_place_and_publishes_nothing_new(
    seeded: Project,
) -> None:
    seeded.digest("build")
    index = (seeded.public / "index.html").read_bytes()
    with sqlite3.connect(seeded.store) as db:
        listed = sorted(db.execute("select * from listing"))
        counted = sorted(db.execute("select * from months"))
        for table in ("listing", "months", "titles", "mentions"):
            db.execute(f"drop table {table}")  # what a schema 2 store did not have
        db.execute("update meta set value = '2' where key = 'schema'")
    out = seeded.digest("build").stdout
    assert "published: 0 written" in out
    assert (seeded.public / "index.html").read_bytes() == index
    with sqlite3.connect(seeded.store) as db:
        assert sorted(db.execute("select * from listing")) == listed
        assert sorted(db.execute("select * from months")) == counted
        assert db.execute("select value from meta where key = 'schema'").fetchone() == ("9",)


NOW = datetime(2026, 1, 20, 8, 0, tzinfo=UTC)


def sql(path: Path, *statements: str) -> None:
    """Change the file behind the store's back, as another program would."""
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        for statement in statements:
            db.execute(statement)


def rows(path: Path, query: str) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return sorted(db.execute(query))


TABLES = {*metadata.tables, "search_text"}  # and search (an FTS5 table) on SQLite


def schema_of(path: Path) -> tuple[set[str], str | None]:
    names = {str(r[0]) for r in rows(path, "select name from sqlite_master where type='table'")}
    # FTS5's own tables behind search_text (its data, index, content, sizes and config).
    tables = {n for n in names if not n.startswith("search_text_")} - {"sqlite_sequence"}
    found = rows(path, "select value from meta where key = 'schema'")
    return tables, str(found[0][0]) if found else None


def built_store(root: Path) -> Path:
    """A store made by the real pipeline from the five seed captures."""
    (root / "config.toml").write_text(base_config(), encoding="utf-8")
    copy_seeds(root / "seeds")
    app = make_digest(load(root / "config.toml"))
    try:
        assert app.build().entries_new > 0
    finally:
        app.close()
    return root / "var" / "digest.sqlite"


def test_a_new_store_has_every_table_and_the_current_schema(tmp_path: Path) -> None:
    path = tmp_path / "var" / "deep" / "digest.sqlite"  # the folders are made too
    open_store(path).close()
    tables, version = schema_of(path)
    assert version == SCHEMA_VERSION == "9"
    assert tables == TABLES


@pytest.mark.parametrize("kind", ["garbage", "folder"])
def test_a_file_that_is_not_a_store_is_refused_and_left_alone(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "digest.sqlite"
    junk = b"This is a note, not a database.\n" * 200
    if kind == "garbage":
        path.write_bytes(junk)
    else:
        path.mkdir()
    with pytest.raises(StoreError) as caught:
        open_store(path)
    error = caught.value
    assert isinstance(error, RuntimeError)
    assert error.exit_code == 3
    message = str(error)
    assert message.startswith(f"{path}: cannot open the store")
    assert "[paths] store" in message and "move the damaged file away" in message
    assert isinstance(error.__cause__, sa.exc.DBAPIError)
    assert isinstance(error.__cause__.orig, sqlite3.Error)
    if kind == "garbage":
        assert path.read_bytes() == junk
    else:
        assert list(path.iterdir()) == []


def test_a_store_folder_that_cannot_be_made_is_named(tmp_path: Path) -> None:
    (tmp_path / "var").write_text("a file where the folder should be", encoding="utf-8")
    with pytest.raises(StoreError, match="cannot create the store folder") as caught:
        open_store(tmp_path / "var" / "digest.sqlite")
    assert str(caught.value).startswith(f"{tmp_path / 'var'}:")


@pytest.mark.parametrize(
    ("change", "shown"),
    [
        ("update meta set value = '10' where key = 'schema'", "schema 10"),
        ("delete from meta where key = 'schema'", "schema unknown"),
    ],
)
def test_a_store_of_another_schema_is_refused_untouched(
    tmp_path: Path, change: str, shown: str
) -> None:
    path = tmp_path / "digest.sqlite"
    store = open_store(path)
    store.outbox.add_periods([("a@example.org", "daily:2026-01-20", NOW)], NOW)
    store.close()
    sql(path, change)
    before = schema_of(path)
    with pytest.raises(StoreError) as caught:
        open_store(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: the store has {shown}, this version needs 9")
    assert "move the file away" in message and "digest build" in message
    assert schema_of(path) == before
    assert rows(path, "select count(*) from outbox") == [(1,)]


def test_a_schema_3_store_gets_the_discovery_evidence_table(tmp_path: Path) -> None:
    path = built_store(tmp_path)
    listed = rows(path, "select * from listing")
    stored = rows(path, "select id, rev from entries")
    sql(path, "drop table discovered_in", "update meta set value = '3' where key = 'schema'")
    assert "discovered_in" not in schema_of(path)[0]

    store = open_store(path)
    try:
        tables, version = schema_of(path)
        assert version == "9"
        assert tables == TABLES
        assert rows(path, "select * from listing") == listed
        assert rows(path, "select id, rev from entries") == stored
        some = [e.id for e in store.entries.entries(with_sources=False)[:2]]
        with store.entries.transaction() as tx:  # the new table works
            tx.add_discovered([("le-van-a", "Lê Văn A", "Thứ trưởng", eid) for eid in some])
        assert store.entries.active_discovered(2) == {"le-van-a": ("Lê Văn A", "Thứ trưởng")}
    finally:
        store.close()
    open_store(path).close()  # already upgraded: opens as it is
    assert schema_of(path)[1] == "9"


def test_a_schema_7_store_drops_its_month_index_and_lists_each_month_alike(
    tmp_path: Path,
) -> None:
    """Schema 8 reads a channel's month as a range of instants (the Vietnam month) in the
    listing's key: the same entries, in the same order, as the month column picked."""
    path = built_store(tmp_path)
    sql(
        path,
        "create index listing_month on listing (channel, month, published, id)",
        "update meta set value = '7' where key = 'schema'",
    )
    store = open_store(path)
    try:
        assert schema_of(path)[1] == "9"
        assert rows(path, "select name from sqlite_master where name = 'listing_month'") == []
        months = rows(path, "select channel, month from months")
        assert len({m for _, m in months}) > 1
        with contextlib.closing(sqlite3.connect(path)) as db:
            for channel, month in months:
                key = (channel, month)
                by_column = db.execute(
                    "select published, id from listing where channel = ? and month = ? "
                    "order by published desc, id desc",
                    key,
                ).fetchall()
                listed = store.index.listed(str(channel), month=str(month))
                assert [(int(x.published.timestamp()), x.id) for x in listed] == by_column
                for published, _ in by_column:
                    before = db.execute(
                        "select count(*) from listing where channel = ? and month = ? "
                        "and published < ?",
                        (*key, published),
                    ).fetchone()[0]
                    moment = datetime.fromtimestamp(published, UTC)
                    assert store.index.count_before(str(channel), str(month), moment) == before
    finally:
        store.close()


_TITLES = itertools.count()


def _entry_item() -> Item:
    return Item(
        "listing",
        f"Bộ trưởng họp lần {next(_TITLES)}",  # a new entry each time
        datetime(2026, 1, 5, 2, 0, tzinfo=UTC),
        "Tóm tắt",
        False,
        None,
        (),
        Location("a.txt", 1),
    )


def _upsert(store: Store) -> object:
    item = _entry_item()
    entry = merge(entry_id(item.title, item.published), None, [item], now=NOW).entry
    with store.entries.transaction() as tx:
        tx.upsert_entries([entry], [])
    return None


# (table dropped behind the store's back, a call that needs it)
MID_CALL: list[tuple[str, Callable[[Store], object]]] = [
    ("entries", lambda s: s.entries.count_entries()),
    ("entries", lambda s: list(s.entries.head_pages(10, ["x"]))),
    ("problems", lambda s: s.entries.problems()),
    ("listing", _upsert),
    ("months", lambda s: s.index.channel_stats()),
    ("published", lambda s: s.index.save_published({"index.html": "sig"}, [])),
    ("outbox", lambda s: s.outbox.due(NOW)),
    ("subscribers", lambda s: s.subscribers.active()),
    ("form_hits", lambda s: s.subscribers.hit("203.0.113.9", NOW, 5)),
    ("notices", lambda s: s.outbox.notices_due(NOW)),
]
MID_CALL_PARAMS = [
    *(pytest.param(table, call, id=f"{table}-{n}") for n, (table, call) in enumerate(MID_CALL)),
    pytest.param(
        "outbox",
        lambda s: s.outbox.claim("a@example.org", "daily:2026-01-20", NOW, owner=1),
        id="outbox-claim",
    ),
    pytest.param(
        "outbox",
        lambda s: s.outbox.data_begins(
            "a@example.org", "daily:2026-01-20", "<id>", owner=1, items=1
        ),
        id="outbox-data_begins",
    ),
    pytest.param(
        "outbox",
        lambda s: s.outbox.finish("a@example.org", "daily:2026-01-20", "sent", NOW),
        id="outbox-finish",
    ),
]


@pytest.mark.parametrize(("table", "call"), MID_CALL_PARAMS)
def test_a_database_error_mid_call_is_a_store_error_with_its_cause(
    tmp_path: Path, table: str, call: Callable[[Store], object]
) -> None:
    path = tmp_path / "digest.sqlite"
    store = open_store(path)
    try:
        call(store)  # works while the table is there
        sql(path, f"drop table {table}")
        with pytest.raises(StoreError) as caught:
            call(store)
        assert f"no such table: {table}" in str(caught.value)
        assert str(caught.value).startswith(f"{path}: the store failed")
        assert isinstance(caught.value.__cause__, sa.exc.SQLAlchemyError)
    finally:
        store.close()


def test_a_failed_write_in_a_transaction_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "digest.sqlite"
    store = open_store(path)
    try:
        sql(path, "drop table months")  # the entry's row goes in, then its month count fails
        with pytest.raises(StoreError, match="no such table: months"):
            _upsert(store)
    finally:
        store.close()
    assert rows(path, "select count(*) from entries") == [(0,)]
    assert rows(path, "select count(*) from listing") == [(0,)]


def _count(store: Store) -> object:
    return store.entries.count_entries()


def _begin(store: Store) -> object:
    with store.entries.transaction():
        return None


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(_count, id="read"),
        pytest.param(_begin, id="transaction"),
    ],
)
def test_a_store_file_damaged_while_open_gives_store_errors(
    tmp_path: Path, call: Callable[[Store], object]
) -> None:
    path = tmp_path / "digest.sqlite"
    store = open_store(path)
    try:
        call(store)
        store.close()  # the pool lets go of its connections; the next call opens a new one
        path.write_bytes(b"overwritten by something else\n" * 200)
        with pytest.raises(StoreError) as caught:
            call(store)
        assert "file is not a database" in str(caught.value)
        assert isinstance(caught.value.__cause__, sa.exc.DBAPIError)
    finally:
        store.close()


# Before schema 5 a subscriber row was an address from config: when it first appeared and
# when it unsubscribed.
OLD_SUBSCRIBERS = [
    ("an@example.org", 1_767_225_600, None),
    ("binh@example.org", 1_767_312_000, 1_768_000_000),
    ("chi@example.org", 1_767_398_400, None),
]


def schema_4_store(path: Path) -> None:
    """A store as schema 4 left it: no notices or rate-limit counts, subscribers old-shaped."""
    store = open_store(path)
    store.outbox.add_periods([("an@example.org", "daily:2026-01-20", NOW)], NOW)
    store.close()
    values = ", ".join(
        f"('{email}', {first}, {'null' if gone is None else gone})"
        for email, first, gone in OLD_SUBSCRIBERS
    )
    sql(
        path,
        "drop table notices",
        "drop table form_hits",
        "drop table subscribers",
        "create table subscribers "
        "(email varchar primary key, first_seen bigint not null, unsubscribed bigint)",
        f"insert into subscribers values {values}",
        "update meta set value = '4' where key = 'schema'",
    )


def test_a_schema_4_store_gets_its_subscribers_into_the_store(tmp_path: Path) -> None:
    path = tmp_path / "digest.sqlite"
    schema_4_store(path)
    tables, version = schema_of(path)
    assert version == "4" and not {"notices", "form_hits"} & tables
    outbox = rows(path, "select * from outbox")

    store = open_store(path)
    try:
        tables, version = schema_of(path)
        assert version == SCHEMA_VERSION == "9"
        assert tables == TABLES
        found = store.subscribers.all()
        assert [
            (r.email, r.state, r.source, r.created, r.since, r.unsubscribed) for r in found
        ] == [
            (
                email,
                "active" if gone is None else "unsubscribed",
                "config",
                datetime.fromtimestamp(first, UTC),
                datetime.fromtimestamp(first, UTC),
                None if gone is None else datetime.fromtimestamp(gone, UTC),
            )
            for email, first, gone in OLD_SUBSCRIBERS
        ]
        keys = [r.key for r in found]
        assert len(set(keys)) == len(OLD_SUBSCRIBERS) and all(len(k) >= 16 for k in keys)
        for r in found:
            assert store.subscribers.find(key=r.key) == r
            assert (r.requested, r.expires, r.consent, r.noticed) == (None, None, None, None)
        assert [r.email for r in store.subscribers.active()] == [
            email for email, _, gone in OLD_SUBSCRIBERS if gone is None
        ]
        assert rows(path, "select * from outbox") == outbox
        # The new tables work.
        assert store.subscribers.hit("203.0.113.9", NOW, 1)
        assert not store.subscribers.hit("203.0.113.9", NOW, 1)
        assert store.subscribers.notices_since(NOW) == 0
    finally:
        store.close()
    upgraded = rows(path, "select * from subscribers")
    open_store(path).close()  # already upgraded: opens as it is
    assert schema_of(path) == (TABLES, "9")
    assert rows(path, "select * from subscribers") == upgraded


def test_a_schema_4_upgrade_that_fails_leaves_the_store_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "digest.sqlite"
    schema_4_store(path)
    # The upgrade's last write fails, as a full disk or a kill would stop it.
    sql(
        path,
        "create trigger stop before update on meta begin select raise(abort, 'disk full'); end",
    )
    with pytest.raises(StoreError, match="disk full"):
        open_store(path)
    assert schema_of(path)[1] == "4"
    sql(path, "drop trigger stop")
    store = open_store(path)  # the cause gone, the upgrade runs again
    try:
        assert [(r.email, r.state) for r in store.subscribers.all()] == [
            (email, "active" if gone is None else "unsubscribed")
            for email, _, gone in OLD_SUBSCRIBERS
        ]
    finally:
        store.close()
    assert schema_of(path) == (TABLES, "9")


def schema_5_store(path: Path) -> None:
    """Turn a current store into what schema 5 wrote: one publisher, its marks of what
    changed in two tables of their own, its state in meta, no claim owners."""
    sql(
        path,
        "drop table changes",
        "drop table changed_months",
        "drop table changed_entries",
        "drop table nodes",
        "alter table published rename to published_6",
        "create table published (path varchar not null primary key, signature varchar(64) "
        "not null)",
        "insert into published select path, signature from published_6",
        "drop table published_6",
        "alter table outbox drop column owner",
        "create table dirty_months (channel varchar not null, month varchar(7) not null, "
        "first bigint not null, last bigint not null, shifted boolean not null, "
        "primary key (channel, month))",
        "create table dirty_entries (id varchar(36) not null primary key)",
        "delete from meta where key = 'changes_pruned'",
        "insert into meta values ('published_state', 'the state of schema 5')",
        "update meta set value = '5' where key = 'schema'",
    )


def test_a_schema_5_store_keeps_what_it_published_and_what_it_had_yet_to(
    tmp_path: Path,
) -> None:
    path = built_store(tmp_path)
    store = open_store(path)
    try:
        store.index.finish_publish("s", store.index.changes().upto)
        store.index.save_published({"index.html": "a" * 64, "feeds/all.atom": "b" * 64}, ())
    finally:
        store.close()
    [(some_id,)] = rows(path, "select id from entries order by id limit 1")
    schema_5_store(path)
    sql(
        path,
        f"insert into dirty_entries values ('{some_id}')",
        "insert into dirty_months values ('all', '2026-01', 100, 200, 1)",
    )
    assert schema_of(path)[1] == "5"

    store = open_store(path)
    try:
        tables, version = schema_of(path)
        assert (version, tables) == (SCHEMA_VERSION, TABLES)
        # The one daemon of a SQLite store is node "local": its files and state are kept...
        assert store.index.published_paths() == ["feeds/all.atom", "index.html"]
        assert store.index.published_state() == "the state of schema 5"
        # ...and what it had not published yet is the first change it follows.
        changes = store.index.changes()
        assert changes.complete and changes.entries == [some_id]
        assert changes.months == {"all": {"2026-01": Mark(dt(100), dt(200), True)}}
        assert rows(path, "select owner from outbox") == []
    finally:
        store.close()
