"""The publish index on a real SQLite file: listings, months, titles, change marks, signatures."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from support import base_config, copy_seeds, stored_entry

from digest.app import make_digest
from digest.config import load
from digest.model import Entry, Mark
from digest.store import Store, open_store
from digest.store.schema import SCHEMA_VERSION
from digest.text import fold

pytestmark = pytest.mark.both_engines  # every test on SQLite and PostgreSQL

NOW = datetime(2026, 2, 10, 8, 0, tzinfo=UTC)
HANOI = ZoneInfo("Asia/Ho_Chi_Minh")


make_entry = functools.partial(stored_entry, seen_at=NOW)


# Written entries with the Vietnam month each belongs to, worked out by hand (UTC+7).
E1 = make_entry(
    "Cuối năm", datetime(2025, 12, 31, 16, 59, tzinfo=UTC), officials=("a",), topics=("t1",)
)
E2 = make_entry("Đầu năm", datetime(2025, 12, 31, 17, 0, tzinfo=UTC), officials=("a", "b"))
E3 = make_entry("Giữa tháng", datetime(2026, 1, 15, 3, 0, tzinfo=UTC), topics=("t1",))
E4 = make_entry(
    "Tháng hai", datetime(2026, 2, 1, 2, 0, tzinfo=UTC), officials=("b",), topics=("t1", "t2")
)
E5 = make_entry("Cùng giờ", datetime(2026, 1, 15, 3, 0, tzinfo=UTC), officials=("a",))
WRITTEN = [(E1, "2025-12"), (E2, "2026-01"), (E3, "2026-01"), (E4, "2026-02"), (E5, "2026-01")]


def channels(entry: Entry) -> list[str]:
    return [
        "all",
        *(f"officials/{o}" for o in entry.officials),
        *(f"topics/{t}" for t in entry.topics),
    ]


def by_channel(written: Sequence[tuple[Entry, str]]) -> dict[str, list[tuple[Entry, str]]]:
    found: dict[str, list[tuple[Entry, str]]] = {}
    for entry, month in written:
        for channel in channels(entry):
            found.setdefault(channel, []).append((entry, month))
    return found


def newest_first(entries: Sequence[Entry]) -> list[str]:
    return [e.id for e in sorted(entries, key=lambda e: (e.published, e.id), reverse=True)]


def check_index(store: Store, written: Sequence[tuple[Entry, str]]) -> None:
    """Every reading of the index agrees with `written`."""
    expected = by_channel(written)
    index = store.index
    assert index.channel_stats() == {
        channel: (len(rows), max(e.published for e, _ in rows))
        for channel, rows in expected.items()
    }
    for channel, rows in expected.items():
        counted = Counter(month for _, month in rows)
        assert index.channel_months(channel) == sorted(counted.items(), reverse=True)
        listed = index.listed(channel)
        assert [x.id for x in listed] == newest_first([e for e, _ in rows])
        shown = {e.id: e for e, _ in rows}
        assert all(x.published == shown[x.id].published for x in listed)
        assert all(x.updated == shown[x.id].updated for x in listed)
        for month in counted:
            in_month = [e for e, m in rows if m == month]
            assert [x.id for x in index.listed(channel, month=month)] == newest_first(in_month)


def write(store: Store, new: Sequence[Entry], changed: Sequence[Entry] = ()) -> None:
    with store.entries.transaction() as tx:
        tx.upsert_entries(new, changed)


def test_the_index_agrees_with_the_entries_written(store: Store) -> None:
    write(store, [e for e, _ in WRITTEN])
    check_index(store, WRITTEN)
    assert store.index.channel_months("topics/none") == []
    assert store.index.listed("topics/none") == []


def test_listings_page_with_offset_and_limit(store: Store) -> None:
    write(store, [e for e, _ in WRITTEN])
    everything = newest_first([e for e, _ in WRITTEN])
    assert [x.id for x in store.index.listed("all", limit=2)] == everything[:2]
    assert [x.id for x in store.index.listed("all", offset=1, limit=2)] == everything[1:3]
    assert [x.id for x in store.index.listed("all", offset=3)] == everything[3:]
    january = newest_first([E2, E3, E5])
    assert [x.id for x in store.index.listed("all", month="2026-01", offset=1)] == january[1:]


def test_count_before_counts_strictly_earlier_entries_of_the_month(store: Store) -> None:
    write(store, [e for e, _ in WRITTEN])
    mid = E3.published  # E3 and E5 share this instant
    assert store.index.count_before("all", "2026-01", mid) == 1  # E2
    assert store.index.count_before("all", "2026-01", mid + timedelta(minutes=1)) == 3
    assert store.index.count_before("officials/a", "2026-01", mid + timedelta(minutes=1)) == 2
    assert store.index.count_before("topics/t1", "2026-01", mid) == 0
    assert store.index.count_before("all", "2025-12", mid) == 1  # E1, of its own month only


@pytest.mark.parametrize("version", ["7", "8"])
def test_an_older_store_drops_the_listings_other_indexes_and_reads_alike(
    path: Path | str, version: str
) -> None:
    """Schema 8 reads a month as a range of the listing's key, schema 9 finds an entry's rows
    from the channels and instant in its stored row: an upgraded store lists and counts
    every channel's months as before, without the index by month or by entry, and an entry
    that changes channels leaves them all."""
    store = open_store(path)
    write(store, [e for e, _ in WRITTEN])
    store.close()
    engine = sa.create_engine(path if isinstance(path, str) else f"sqlite:///{path}")
    with engine.begin() as conn:  # as schema 7 or 8 was
        if version == "7":
            conn.exec_driver_sql(
                "CREATE INDEX listing_month ON listing (channel, month, published, id)"
            )
        conn.exec_driver_sql("CREATE INDEX listing_entry ON listing (id)")
        conn.exec_driver_sql(f"UPDATE meta SET value = '{version}' WHERE key = 'schema'")
    upgraded = open_store(path)
    try:
        with engine.connect() as conn:
            assert sa.inspect(conn).get_indexes("listing") == []
        assert upgraded.entries.meta("schema") == SCHEMA_VERSION == "9"
        check_index(upgraded, WRITTEN)
        assert upgraded.index.count_before("all", "2026-01", E3.published) == 1
        moved = replace(E2, officials=("c",), topics=("t2",))
        with upgraded.entries.transaction() as tx:
            tx.upsert_entries([], [moved])
        check_index(upgraded, [(moved if e.id == E2.id else e, m) for e, m in WRITTEN])
        assert "officials/c" in upgraded.index.channel_stats()
    finally:
        upgraded.close()
        engine.dispose()


def test_retagging_moves_entries_between_channels(store: Store) -> None:
    write(store, [e for e, _ in WRITTEN])
    moved = replace(E4, officials=(), topics=("t3",))  # t2 had only E4: it empties
    with store.entries.transaction() as tx:
        tx.set_tags([moved])
    after = [(moved if e.id == E4.id else e, m) for e, m in WRITTEN]
    check_index(store, after)
    stats = store.index.channel_stats()
    assert "topics/t2" not in stats
    assert stats["topics/t3"] == (1, E4.published)
    assert stats["officials/b"] == (1, E2.published)


def test_the_index_of_a_real_build_agrees_with_its_entries(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(base_config(), encoding="utf-8")
    copy_seeds(tmp_path / "seeds")
    app = make_digest(load(tmp_path / "config.toml"))
    try:
        report = app.build()
        entries = app.store.entries.entries()
        assert report.entries_new == len(entries) > 0
        written = [(e, f"{e.published.astimezone(HANOI):%Y-%m}") for e in entries]
        assert len(by_channel(written)) > 3  # tagged: more channels than `all`
        check_index(app.store, written)
    finally:
        app.close()


def pending(store: Store) -> tuple[dict[str, dict[str, Mark]], list[str]]:
    """What the change log holds that this node has not published."""
    changes = store.index.changes()
    return changes.months, changes.entries


def finish(store: Store, state: str) -> None:
    store.index.finish_publish(state, store.index.changes().upto)


def test_a_change_marks_what_the_next_publish_must_redo(store: Store) -> None:
    first = store.index.changes()
    assert (first.complete, first.upto, first.months, first.entries) == (False, 0, {}, [])
    assert store.index.published_state() is None
    finish(store, "state-0")  # an empty site, published
    assert store.index.changes().complete
    write(store, [e for e, _ in WRITTEN])
    marks, ids = pending(store)
    assert sorted(ids) == sorted(e.id for e, _ in WRITTEN)
    expected: dict[str, dict[str, Mark]] = {}
    for channel, rows in by_channel(WRITTEN).items():
        for month in {m for _, m in rows}:
            times = [e.published for e, m in rows if m == month]
            expected.setdefault(channel, {})[month] = Mark(min(times), max(times), True)
    assert marks == expected

    finish(store, "state-1")
    assert pending(store) == ({}, [])
    assert store.index.published_state() == "state-1"

    # A visible change in place: its channels' month is marked, nothing came or went.
    edited = replace(E3, summary="Tóm tắt mới", changed_at=NOW + timedelta(days=1))
    write(store, [], [edited])
    marks, ids = pending(store)
    assert ids == [E3.id]
    at = Mark(E3.published, E3.published, False)
    assert marks == {"all": {"2026-01": at}, "topics/t1": {"2026-01": at}}
    [listed] = [x for x in store.index.listed("all") if x.id == E3.id]
    assert listed.updated == NOW + timedelta(days=1)

    finish(store, "state-2")
    with store.entries.transaction() as tx:
        tx.set_tags([replace(E4, topics=("t1", "t3"))])  # leaves t2, joins t3
    marks, ids = pending(store)
    assert ids == [E4.id]
    same, moved = Mark(E4.published, E4.published, False), Mark(E4.published, E4.published, True)
    assert marks == {
        "all": {"2026-02": same},
        "officials/b": {"2026-02": same},
        "topics/t1": {"2026-02": same},
        "topics/t2": {"2026-02": moved},
        "topics/t3": {"2026-02": moved},
    }
    assert store.index.published_state() == "state-2"


def test_marks_widen_until_a_publish_clears_them(store: Store) -> None:
    finish(store, "s")
    write(store, [E3])
    finish(store, "s")
    write(store, [E5])  # same month and instant
    later = make_entry("Cuối tháng", datetime(2026, 1, 30, 9, 0, tzinfo=UTC))
    write(store, [later])
    marks, ids = pending(store)
    assert sorted(ids) == sorted([E5.id, later.id])
    assert marks["all"] == {"2026-01": Mark(E5.published, later.published, True)}


def test_a_new_entry_marks_the_pages_that_name_it_as_related(store: Store) -> None:
    title = "Bộ trưởng khai trương bệnh viện"
    linking = make_entry("Tin liên quan", datetime(2026, 1, 5, 1, 0, tzinfo=UTC), related=(title,))
    bystander = make_entry("Không liên quan", datetime(2026, 1, 6, 1, 0, tzinfo=UTC))
    finish(store, "s")
    write(store, [linking, bystander])
    finish(store, "s")
    target = make_entry(title, datetime(2026, 1, 7, 1, 0, tzinfo=UTC))
    write(store, [target])
    _, ids = pending(store)
    assert sorted(ids) == sorted([linking.id, target.id])


def test_an_updated_entry_leaves_nothing_of_its_old_title_and_related_titles(
    store: Store,
) -> None:
    before = make_entry(
        "Tin cũ", datetime(2026, 1, 5, 1, 0, tzinfo=UTC), related=("Khánh thành bệnh viện",)
    )
    write(store, [before])
    after = replace(before, title="Tin mới", related=("Hội nghị y tế",))
    write(store, [], [after])
    index = store.index
    assert index.entries_titled([fold("Tin cũ"), fold("Tin mới")]) == {fold("Tin mới"): after.id}
    finish(store, "s")
    # Only the related title it names now marks it when an entry of that title comes.
    write(store, [make_entry("Khánh thành bệnh viện", datetime(2026, 1, 8, tzinfo=UTC))])
    assert after.id not in pending(store)[1]
    finish(store, "s")
    write(store, [make_entry("Hội nghị y tế", datetime(2026, 1, 9, tzinfo=UTC))])
    assert after.id in pending(store)[1]


def test_entries_titled_finds_the_newest_entry_of_each_title(store: Store) -> None:
    title = "Giao ban công tác y tế"
    old = make_entry(title, datetime(2025, 11, 3, 2, 0, tzinfo=UTC))
    new = make_entry(title, datetime(2026, 1, 12, 2, 0, tzinfo=UTC))
    other = make_entry("Một tin khác", datetime(2026, 1, 1, 2, 0, tzinfo=UTC))
    write(store, [new, other])
    write(store, [old])  # the older one, stored later
    found = store.index.entries_titled([fold(title), fold("Một tin khác"), fold("Không có")])
    assert found == {fold(title): new.id, fold("Một tin khác"): other.id}


def test_entries_titled_finds_the_newest_of_two_same_titled_entries_written_together(
    store: Store,
) -> None:
    title = "Giao ban công tác y tế"
    old = make_entry(title, datetime(2025, 11, 3, 2, 0, tzinfo=UTC))
    new = make_entry(title, datetime(2026, 1, 12, 2, 0, tzinfo=UTC))
    write(store, [new, old])
    assert store.index.entries_titled([fold(title)]) == {fold(title): new.id}


def test_published_signatures_round_trip(store: Store, path: Path | str) -> None:
    assert store.index.published_paths() == []
    first = {
        "index.html": "s-index",
        "archive/x/2026-01.html": "s-x1",
        "archive/x/2026-02.html": "s-x2",
        "archive/xy/2026-01.html": "s-xy",
        "feeds/all.xml": "s-feed",
    }
    store.index.save_published(first, [])
    wanted = ["index.html", "archive/x/2026-01.html", "missing.html"]
    assert store.index.signatures(wanted) == {
        "index.html": "s-index",
        "archive/x/2026-01.html": "s-x1",
    }
    assert store.index.published_paths() == sorted(first)
    assert store.index.published_paths("archive/x/") == [
        "archive/x/2026-01.html",
        "archive/x/2026-02.html",
    ]

    store.index.save_published({"index.html": "s-index-2"}, ["archive/x/2026-02.html", "gone"])
    store.close()
    again = open_store(path)
    try:
        assert again.index.published_paths("archive/") == [
            "archive/x/2026-01.html",
            "archive/xy/2026-01.html",
        ]
        assert again.index.signatures(["index.html", "archive/x/2026-02.html"]) == {
            "index.html": "s-index-2"
        }
        again.index.save_published({}, list(first))
        assert again.index.published_paths() == []
    finally:
        again.close()


def test_each_node_has_its_own_files_and_follows_the_log_from_its_own_place(
    path: Path | str,
) -> None:
    one, two = open_store(path, node="one"), open_store(path, node="two")
    try:
        for s in (one, two):
            finish(s, "state")  # both published the empty site
        write(one, [E3])
        one.index.save_published({"index.html": "a"}, ())
        finish(one, "state")
        # Node one is done; node two still has the change to publish, and no files yet.
        assert pending(one) == ({}, [])
        assert pending(two)[1] == [E3.id]
        assert two.index.published_paths() == [] and one.index.published_paths() == ["index.html"]
        [n1, n2] = one.index.nodes()
        assert (n1.name, n1.head - n1.seq, n1.oldest_unpublished) == ("one", 0, None)
        assert (n2.name, n2.head - n2.seq) == ("two", 1) and n2.oldest_unpublished is not None
        finish(two, "state")
        assert pending(two) == ({}, [])
        # Every node is past the change: the log is pruned, and a node that never published
        # (or fell behind the pruning) publishes everything.
        three = open_store(path, node="three")
        try:
            assert not three.index.changes().complete
        finally:
            three.close()
    finally:
        one.close()
        two.close()


def test_the_head_stays_where_it_was_when_the_log_is_pruned_empty(store: Store) -> None:
    finish(store, "s")
    write(store, [E3])
    write(store, [E5])
    finish(store, "s")  # the only node is past both changes: the log is pruned empty
    assert store.index.head() == 2
    changes = store.index.changes()
    # Nothing to publish, and no reason to plan everything again.
    assert (changes.complete, changes.since, changes.upto) == (True, 2, 2)
    assert pending(store) == ({}, [])
    write(store, [E4])
    assert store.index.head() == 3 and pending(store)[1] == [E4.id]
