"""The entry store on a real SQLite file: transactions, sources, problems, heads and discovery."""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from support import stored_entry

from digest.model import Entry, Location, Problem
from digest.store import SourceState, Store, open_store
from digest.store.schema import entries, insert_rows, rows_with

pytestmark = pytest.mark.both_engines  # every test on SQLite and PostgreSQL

NOW = datetime(2026, 1, 20, 8, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


make_entry = functools.partial(stored_entry, seen_at=NOW)


def state(
    name: str, sha: str = "a" * 64, *, size: int = 100, mtime: int = 1, items: int = 1
) -> SourceState:
    return SourceState(name=name, sha256=sha, size=size, mtime_ns=mtime, items=items)


def write(store: Store, entries: Sequence[Entry]) -> None:
    with store.entries.transaction() as tx:
        tx.upsert_entries(entries, [])


def test_a_transaction_that_raises_writes_nothing(store: Store, path: Path) -> None:
    entry = make_entry("Bộ trưởng họp giao ban", datetime(2026, 1, 5, 2, 0, tzinfo=UTC))
    with pytest.raises(RuntimeError, match="build broke"), store.entries.transaction() as tx:
        tx.upsert_entries([entry], [])
        tx.save_source(state("a.txt"), [(Location("a.txt", 3), entry.id)], [])
        tx.add_problems([Problem("a.txt", 7, "teaser differs")])
        tx.set_meta("classifier", "v1")
        tx.add_discovered([("nguyen-van-a", "Nguyễn Văn A", "Thứ trưởng", entry.id)])
        assert [e.id for e in tx.entries([entry.id])] == [entry.id]  # visible inside
        raise RuntimeError("build broke")
    again = open_store(path)
    try:
        assert again.entries.count_entries() == 0
        assert again.entries.source_states() == {}
        assert again.entries.problems() == []
        assert again.entries.meta("classifier") is None
        assert again.entries.discovered() == {}
        assert again.index.channel_stats() == {}
        changes = again.index.changes()
        assert (changes.upto, changes.months, changes.entries) == (0, {}, [])
    finally:
        again.close()


def test_a_completed_transaction_is_visible_to_a_fresh_store(store: Store, path: Path) -> None:
    older = make_entry("Thứ trưởng tiếp đoàn WHO", datetime(2025, 12, 1, 3, 0, tzinfo=UTC))
    newer = make_entry("Bộ Y tế ban hành thông tư", datetime(2026, 1, 2, 9, 30, tzinfo=UTC))
    with store.entries.transaction() as tx:
        tx.upsert_entries([older, newer], [])
        found = [(Location("a.txt", 4), newer.id), (Location("a.txt", 9), older.id)]
        tx.save_source(state("a.txt", items=2), found, [])
        tx.save_source(state("b.txt"), [(Location("b.txt", 2), newer.id)], [])
        tx.set_meta("classifier", "v1")
    store.close()
    again = open_store(path)
    try:
        assert again.entries.count_entries() == 2
        assert again.entries.meta("classifier") == "v1"
        got = again.entries.entries()
        assert got == [
            replace(newer, sources=(Location("a.txt", 4), Location("b.txt", 2))),
            replace(older, sources=(Location("a.txt", 9),)),
        ]
        assert again.entries.entries([older.id], with_sources=False) == [older]
    finally:
        again.close()


def test_changed_entries_replace_the_stored_ones(store: Store) -> None:
    entry = make_entry("Bộ trưởng kiểm tra bệnh viện", datetime(2026, 1, 3, 1, 0, tzinfo=UTC))
    write(store, [entry])
    changed = replace(
        entry,
        summary="Một đoạn tóm tắt dài hơn",
        content=("Đoạn một.", "Đoạn hai."),
        changed_at=NOW + timedelta(days=1),
    )
    with store.entries.transaction() as tx:
        tx.upsert_entries([], [changed])
    assert store.entries.entries([entry.id]) == [changed]
    assert store.entries.count_entries() == 1


def test_set_tags_stores_only_the_tags(store: Store) -> None:
    entry = make_entry("Thứ trưởng dự hội nghị", datetime(2026, 1, 4, 1, 0, tzinfo=UTC))
    write(store, [entry])
    tagged = replace(
        entry, officials=("do-xuan-tuyen",), topics=("chuyen-doi-so",), summary="ignored"
    )
    with store.entries.transaction() as tx:
        tx.set_tags([tagged])
    [stored] = store.entries.entries([entry.id])
    assert (stored.officials, stored.topics) == (("do-xuan-tuyen",), ("chuyen-doi-so",))
    assert stored.summary == entry.summary


def test_source_states_round_trip(store: Store) -> None:
    a = make_entry("Bài A", datetime(2026, 1, 6, 1, 0, tzinfo=UTC))
    b = make_entry("Bài B", datetime(2026, 1, 7, 1, 0, tzinfo=UTC))
    with store.entries.transaction() as tx:
        tx.upsert_entries([a, b], [])
        tx.save_source(
            state("x/a.txt", "1" * 64, size=10, mtime=111, items=1),
            [(Location("x/a.txt", 1), a.id)],
            [Problem("x/a.txt", 5, "bad date")],
        )
        tx.save_source(
            state("b.txt", "2" * 64, size=20, mtime=222, items=1),
            [(Location("b.txt", 1), b.id)],
            [Problem("b.txt", 8, "no title")],
        )
    assert store.entries.source_states() == {
        "x/a.txt": SourceState("x/a.txt", "1" * 64, 10, 111, 1),
        "b.txt": SourceState("b.txt", "2" * 64, 20, 222, 1),
    }
    assert store.entries.source_states(["b.txt", "unknown.txt"]) == {
        "b.txt": SourceState("b.txt", "2" * 64, 20, 222, 1)
    }

    with store.entries.transaction() as tx:  # same content, new stat
        tx.touch_source(state("x/a.txt", "1" * 64, size=11, mtime=333, items=1))
    assert store.entries.source_states(["x/a.txt"])["x/a.txt"] == SourceState(
        "x/a.txt", "1" * 64, 11, 333, 1
    )

    with store.entries.transaction() as tx:  # moved: records follow the file
        tx.rename_source("x/a.txt", state("y/a.txt", "1" * 64, size=11, mtime=444, items=1))
    assert set(store.entries.source_states()) == {"y/a.txt", "b.txt"}
    assert store.entries.source_states(["y/a.txt"])["y/a.txt"].mtime_ns == 444
    assert store.entries.entries([a.id])[0].sources == (Location("y/a.txt", 1),)
    assert Problem("y/a.txt", 5, "bad date") in store.entries.problems()
    assert all(p.file != "x/a.txt" for p in store.entries.problems())

    with store.entries.transaction() as tx:  # gone: its records go, its entries stay
        tx.forget_source("b.txt")
    assert set(store.entries.source_states()) == {"y/a.txt"}
    assert store.entries.problems() == [Problem("y/a.txt", 5, "bad date")]
    assert store.entries.count_entries() == 2
    assert store.entries.entries([b.id])[0].sources == ()


def test_save_source_replaces_what_the_file_said_before(store: Store) -> None:
    a = make_entry("Bài A", datetime(2026, 1, 6, 1, 0, tzinfo=UTC))
    b = make_entry("Bài B", datetime(2026, 1, 7, 1, 0, tzinfo=UTC))
    with store.entries.transaction() as tx:
        tx.upsert_entries([a, b], [])
        tx.save_source(
            state("a.txt", "1" * 64),
            [(Location("a.txt", 1), a.id), (Location("a.txt", 9), b.id)],
            [Problem("a.txt", 2, "old problem")],
        )
    with store.entries.transaction() as tx:
        tx.save_source(
            state("a.txt", "3" * 64, items=1),
            [(Location("a.txt", 4), b.id)],
            [Problem("a.txt", 6, "new problem")],
        )
    assert store.entries.source_states()["a.txt"].sha256 == "3" * 64
    assert store.entries.problems() == [Problem("a.txt", 6, "new problem")]
    by_id = {e.id: e.sources for e in store.entries.entries()}
    assert by_id == {a.id: (), b.id: (Location("a.txt", 4),)}


def test_problems_are_listed_in_order_counted_and_not_repeated(store: Store) -> None:
    found = [
        Problem("b.txt", 3, "teaser differs"),
        Problem("a.txt", 10, "no date"),
        Problem("a.txt", 2, "no title"),
        Problem("a.txt", 2, "no title"),  # the same problem reported twice
        Problem("a.txt", 2, "cut line"),
    ]
    with store.entries.transaction() as tx:
        tx.add_problems(found)
    with store.entries.transaction() as tx:  # reported again by a later merge
        tx.add_problems([Problem("b.txt", 3, "teaser differs")])
    expected = sorted(set(found), key=lambda p: (p.file, p.line))
    listed = store.entries.problems()
    assert sorted(listed) == sorted(set(found))
    assert [(p.file, p.line) for p in listed] == [(p.file, p.line) for p in expected]
    assert store.entries.count_problems() == 4


def test_heads_are_the_entries_published_in_the_window_edges_included(store: Store) -> None:
    since = datetime(2026, 1, 10, 0, 0, tzinfo=UTC)
    until = datetime(2026, 1, 12, 0, 0, tzinfo=UTC)
    before = make_entry("Trước cửa sổ", since - MINUTE)
    first = make_entry("Đúng lúc mở", since)
    middle = make_entry("Giữa cửa sổ", since + timedelta(days=1))
    last = make_entry("Đúng lúc đóng", until)
    after = make_entry("Sau cửa sổ", until + MINUTE)
    # A later change shows as `updated`; seen_at plays no part in this window.
    middle = replace(
        middle, changed_at=until + timedelta(days=3), seen_at=since - timedelta(days=9)
    )
    write(store, [after, last, before, middle, first])
    heads = store.entries.heads(since, until)
    assert [h.id for h in heads] == [last.id, middle.id, first.id]
    by_id = {h.id: h for h in heads}
    assert by_id[middle.id].updated == until + timedelta(days=3)
    assert by_id[first.id].updated == since
    assert by_id[last.id].title == "Đúng lúc đóng"
    assert by_id[last.id].summary == "Tóm tắt: Đúng lúc đóng"


def test_heads_new_are_the_entries_first_seen_or_changed_in_the_window(store: Store) -> None:
    after = datetime(2026, 1, 10, 0, 0, tzinfo=UTC)
    until = datetime(2026, 1, 11, 0, 0, tzinfo=UTC)
    old = datetime(2025, 6, 1, 0, 0, tzinfo=UTC)
    at_after = make_entry("Thấy đúng lúc mở", old, seen_at=after)
    just_in = make_entry("Thấy ngay sau", old + MINUTE, seen_at=after + timedelta(seconds=1))
    at_until = make_entry("Thấy đúng lúc đóng", old + 2 * MINUTE, seen_at=until)
    too_late = make_entry("Thấy quá muộn", old + 3 * MINUTE, seen_at=until + timedelta(seconds=1))
    changed = replace(
        make_entry("Đổi trong cửa sổ", old + 4 * MINUTE, seen_at=old),
        changed_at=after + timedelta(hours=5),
    )
    stale = make_entry("Cũ, không đổi", old + 5 * MINUTE, seen_at=old)
    recent = make_entry("Đăng gần đây", after - timedelta(hours=1), seen_at=old)
    write(store, [at_after, just_in, at_until, too_late, changed, stale, recent])
    got = {h.id for h in store.entries.heads_new(after, until)}
    assert got == {just_in.id, at_until.id, changed.id}
    widened = {
        h.id
        for h in store.entries.heads_new(after, until, published_after=after - timedelta(days=1))
    }
    assert widened == {just_in.id, at_until.id, changed.id, recent.id}


def test_head_pages_cover_the_ids_asked_in_id_order(store: Store) -> None:
    written = [make_entry(f"Bài số {n}", datetime(2026, 1, 1, 0, n, tzinfo=UTC)) for n in range(7)]
    write(store, written)
    chosen = sorted(e.id for e in written[:4])
    subset = list(store.entries.head_pages(2, list(reversed(chosen))))
    # Pages follow id order; within a page the order is not promised.
    assert [sorted(h.id for h in p) for p in subset] == [chosen[:2], chosen[2:]]


def test_discovered_leaders_need_enough_evidence(store: Store) -> None:
    entries = [make_entry(f"Bài {n}", datetime(2026, 1, 1, n, 0, tzinfo=UTC)) for n in range(3)]
    a = ("le-van-a", "Lê Văn A", "Thứ trưởng")
    b = ("tran-thi-b", "Trần Thị B", "Thứ trưởng")
    with store.entries.transaction() as tx:
        tx.upsert_entries(entries, [])
        tx.add_discovered([(*a, e.id) for e in entries] + [(*b, entries[0].id)])
        tx.add_discovered([(*a, entries[0].id)])  # the same evidence again counts once
        assert tx.active_discovered(2) == {a[0]: a[1:]}  # this transaction's view
    assert store.entries.discovered() == {a[0]: a[1:], b[0]: b[1:]}
    assert store.entries.active_discovered(3) == {a[0]: a[1:]}
    assert store.entries.active_discovered(4) == {}
    assert store.entries.active_discovered(1) == {a[0]: a[1:], b[0]: b[1:]}

    with store.entries.transaction() as tx:  # two entries are about to be tagged again
        tx.forget_discovered_in([entries[1].id, entries[2].id])
    assert store.entries.active_discovered(2) == {}
    assert store.entries.active_discovered(1) == {a[0]: a[1:], b[0]: b[1:]}

    with store.entries.transaction() as tx:
        tx.forget_discovered_in(None)
    assert store.entries.active_discovered(1) == {}
    assert store.entries.discovered() == {a[0]: a[1:], b[0]: b[1:]}  # names stay known


def test_meta_is_overwritten_and_entry_pages_see_the_transaction(store: Store) -> None:
    written = [make_entry(f"Bài {n}", datetime(2026, 1, 2, n, 0, tzinfo=UTC)) for n in range(5)]
    with store.entries.transaction() as tx:
        tx.set_meta("classifier", "one")
        tx.set_meta("classifier", "two")
        tx.upsert_entries(written, [])
        pages = list(tx.entry_pages(2))
    assert [len(p) for p in pages] == [2, 2, 1]
    assert sorted(e.id for p in pages for e in p) == sorted(e.id for e in written)
    assert store.entries.meta("classifier") == "two"
    assert store.entries.meta("nothing") is None


@pytest.mark.sqlite_only  # reads the file with sqlite3
def test_entries_are_stored_as_plain_rows(store: Store, path: Path) -> None:
    entry = make_entry("Bộ trưởng làm việc", datetime(2026, 1, 8, 2, 0, tzinfo=UTC))
    write(store, [entry])
    with contextlib.closing(sqlite3.connect(path)) as db:
        row = db.execute("select id, title, published, seen_at from entries").fetchone()
    assert row == (
        entry.id,
        "Bộ trưởng làm việc",
        int(datetime(2026, 1, 8, 2, 0, tzinfo=UTC).timestamp()),
        int(NOW.timestamp()),
    )


@pytest.mark.parametrize("content", [None, ('Đoạn một có "ngoặc kép" và \\', "Đoạn hai")])
def test_rows_through_the_driver_are_stored_and_read_as_sqlalchemy_does(
    store: Store, content: tuple[str, ...] | None
) -> None:
    """insert_rows and rows_with skip SQLAlchemy: lists, None and booleans must still reach
    the database exactly as SQLAlchemy's own insert puts them there, and come back as its
    select reads them, on both engines."""
    row = {
        "title": "Bộ trưởng Đào Hồng Lan làm việc",
        "title_from_article": True,
        "published": 1_767_225_600,
        "summary": "",
        "summary_truncated": False,
        "content": content,
        "related": ["Tin liên quan"],
        "officials": ["dao-hong-lan"],
        "topics": [],
        "seen_at": 1_767_225_660,
        "changed_at": None,
        "rev": "0123456789abcdef",
    }
    engine: sa.Engine = store.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(entries.insert(), [{"id": "by-sqlalchemy", **row}])
        insert_rows(conn, entries, [{"id": "by-driver", **row}])
    raw = [sa.cast(c, sa.Text) for c in entries.c if c.name != "id"]
    with engine.connect() as conn:
        stored = {
            r[0]: r[1:] for r in conn.execute(sa.select(entries.c.id, *raw).order_by(entries.c.id))
        }
        read = {r.id: r[1:] for r in conn.execute(sa.select(entries))}
    assert stored["by-driver"] == stored["by-sqlalchemy"]
    assert read["by-driver"] == read["by-sqlalchemy"]
    assert read["by-driver"][5] == (list(content) if content else content)
    with engine.connect() as conn:  # and read back through the driver as SQLAlchemy reads
        by_driver = {r[0]: r[1:] for r in rows_with(conn, entries.c.id, ["by-driver", "none"])}
    assert by_driver == {"by-driver": read["by-driver"]}
    assert [type(v) for v in by_driver["by-driver"]] == [type(v) for v in read["by-driver"]]
