"""The subscriber store on real SQLite files: decisions, writes, expiry and the forms' limit."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from raw import rows, sql

from digest.errors import StoreError
from digest.model import Choices
from digest.store import SqlStore, Store, SubscriberRecord, open_store
from digest.subscribe import rules

pytestmark = pytest.mark.both_engines  # every test on SQLite and PostgreSQL

NOW = datetime(2026, 1, 20, 8, 10, tzinfo=UTC)
HOUR = timedelta(hours=1)
LAPSE = timedelta(hours=48)
WANTED = Choices("weekly", ("nguyen-van-a",), ("tiem-chung", "dich-benh"))

Decision = tuple[SubscriberRecord | None, str | None]


def secs(moment: datetime) -> int:
    return int(moment.timestamp())


def stored_json(value: object) -> object:
    """A JSON column as read raw: text on SQLite, already decoded on PostgreSQL."""
    return json.loads(value) if isinstance(value, str) else value


def notices(path: Path | str) -> list[tuple[object, ...]]:
    return rows(path, "select email, kind, created, state, attempts from notices order by id")


def revs(path: Path | str) -> dict[str, int]:
    return {str(e): int(str(r)) for e, r in rows(path, "select email, rev from subscribers")}


def record(email: str, state: str = "active", **changes: object) -> SubscriberRecord:
    made = SubscriberRecord(
        email=email,
        key=f"key-{email.split('@')[0]}",
        name=f"Reader {email}",
        choices=Choices("daily"),
        state=state,
        source="web",
        created=NOW - 30 * 24 * HOUR,
        since=NOW - 29 * 24 * HOUR if state != "pending" else None,
    )
    return replace(made, **changes)  # type: ignore[arg-type]


def sign_up(
    email: str, now: datetime = NOW, outcome: rules.Outcome | None = None
) -> Callable[[SubscriberRecord | None], Decision]:
    """The web form's decision, as digest.subscribe.web makes it."""
    said = outcome if outcome is not None else rules.Outcome()

    def decide(old: SubscriberRecord | None) -> Decision:
        return rules.sign_up(
            old, email=email, choices=WANTED, now=now, lapse=LAPSE, may_mail=True, outcome=said
        )

    return decide


def queue(store: Store, email: str, kind: str, now: datetime) -> None:
    """A notice for a stored subscriber, queued the way the forms queue one."""

    def decide(old: SubscriberRecord | None) -> Decision:
        assert old is not None
        return replace(old, noticed=now), kind

    store.subscribers.change(email, decide, now)


# -- change ---------------------------------------------------------------------------------


def test_change_stores_a_new_subscriber_and_its_notice_and_returns_the_record(
    store: Store, path: Path
) -> None:
    decided: list[SubscriberRecord] = []
    seen: list[SubscriberRecord | None] = []
    outcome = rules.Outcome()

    def decide(old: SubscriberRecord | None) -> Decision:
        seen.append(old)
        new, notice = sign_up("reader@example.org", outcome=outcome)(old)
        assert new is not None
        decided.append(new)
        return new, notice

    stored = store.subscribers.change("Reader@Example.org", decide, NOW)
    assert seen == [None] and outcome.said == "mailed"
    [new] = decided
    assert stored == replace(new, rev=1)
    assert (new.state, new.requested, new.expires) == ("pending", WANTED, NOW + LAPSE)
    assert store.subscribers.find(email="reader@example.org") == stored
    assert rows(path, "select email, state, rev from subscribers") == [
        ("reader@example.org", "pending", 1)
    ]
    assert notices(path) == [("reader@example.org", "confirm", secs(NOW), "pending", 0)]


def test_a_notice_that_cannot_be_queued_leaves_no_subscriber(
    store: Store, path: Path | str
) -> None:
    sql(path, "drop table notices")  # the subscriber's row goes in, then its notice fails
    with pytest.raises(StoreError, match=r'no such table: notices|relation "notices" does not'):
        store.subscribers.change("reader@example.org", sign_up("reader@example.org"), NOW)
    assert rows(path, "select count(*) from subscribers") == [(0,)]


def test_change_of_a_stored_subscriber_raises_its_rev(store: Store, path: Path | str) -> None:
    store.subscribers.save([record("a@example.org")])
    before = store.subscribers.find(email="a@example.org")
    assert before is not None and before.rev == 1

    def weekly(old: SubscriberRecord | None) -> Decision:
        assert old == before
        return replace(old, choices=WANTED), None

    stored = store.subscribers.change("a@example.org", weekly, NOW)
    assert stored == replace(before, choices=WANTED, rev=2)
    assert revs(path) == {"a@example.org": 2}
    assert notices(path) == []  # none was asked for


def test_keeping_what_is_stored_writes_nothing(store: Store, path: Path | str) -> None:
    store.subscribers.change("a@example.org", sign_up("a@example.org"), NOW)
    before = rows(path, "select * from subscribers")
    queued = notices(path)
    seen: list[SubscriberRecord | None] = []

    def keep(old: SubscriberRecord | None) -> Decision:
        seen.append(old)
        return old, None

    stored = store.subscribers.change("a@example.org", keep, NOW + HOUR)
    assert seen == [stored] and stored is not None
    assert stored.rev == 1
    assert rows(path, "select * from subscribers") == before
    assert notices(path) == queued


def test_a_sign_up_again_within_the_quiet_time_writes_nothing(
    store: Store, path: Path | str
) -> None:
    store.subscribers.change("a@example.org", sign_up("a@example.org"), NOW)
    before = rows(path, "select * from subscribers")
    outcome = rules.Outcome()
    store.subscribers.change("a@example.org", sign_up("a@example.org", NOW + HOUR, outcome), NOW)
    assert outcome.said == "quiet"
    assert rows(path, "select * from subscribers") == before
    assert len(notices(path)) == 1


def test_deciding_none_deletes_the_subscriber_and_what_is_kept_about_them(
    store: Store, path: Path
) -> None:
    for email in ("a@example.org", "b@example.org"):
        store.subscribers.change(email, sign_up(email), NOW)
        store.outbox.add_periods([(email, "daily:2026-01-20", NOW)], NOW)
    others = [
        rows(path, f"select * from {table} where email = 'b@example.org'")
        for table in ("subscribers", "notices")
    ]

    def drop(old: SubscriberRecord | None) -> Decision:
        assert old is not None and old.email == "a@example.org"
        return None, None

    assert store.subscribers.change("A@example.org", drop, NOW) is None
    assert store.subscribers.find(email="a@example.org") is None
    for table in ("subscribers", "notices"):
        assert rows(path, f"select count(*) from {table} where email = 'a@example.org'") == [(0,)]
    assert rows(path, "select subscriber from outbox") == [("b@example.org",)]
    assert [
        rows(path, f"select * from {table} where email = 'b@example.org'")
        for table in ("subscribers", "notices")
    ] == others


def test_deciding_none_for_nobody_writes_nothing(store: Store, path: Path | str) -> None:
    seen: list[SubscriberRecord | None] = []

    def nothing(old: SubscriberRecord | None) -> Decision:
        seen.append(old)
        return None, "confirm"

    assert store.subscribers.change("a@example.org", nothing, NOW) is None
    assert seen == [None]
    assert rows(path, "select count(*) from subscribers") == [(0,)]
    assert notices(path) == []


@pytest.mark.parametrize("stored", [False, True], ids=["new", "stored"])
def test_a_decision_that_fails_leaves_nothing_written(
    store: Store, path: Path | str, stored: bool
) -> None:
    if stored:
        store.subscribers.change("a@example.org", sign_up("a@example.org"), NOW)
    before = rows(path, "select * from subscribers"), notices(path)

    def broken(old: SubscriberRecord | None) -> Decision:
        raise ValueError("the rules could not decide")

    with pytest.raises(ValueError, match="could not decide"):
        store.subscribers.change("a@example.org", broken, NOW + 30 * HOUR)
    assert (rows(path, "select * from subscribers"), notices(path)) == before
    assert len(before[0]) == int(stored)


def _meanwhile(path: Path | str, write: Callable[[Store], object]) -> threading.Thread:
    """Another process's write, started now from a store of its own."""

    def run() -> None:
        other = open_store(path)
        try:
            write(other)
        finally:
            other.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_write_by_another_process_waits_for_the_change_and_loses_nothing(
    store: Store, path: Path
) -> None:
    """SQLite: a change holds the write lock from its first read (BEGIN IMMEDIATE), so a
    write started while it decides comes after it, and both stay."""
    store.subscribers.save([record("a@example.org")])
    seen: list[SubscriberRecord | None] = []
    others: list[threading.Thread] = []

    def weekly(old: SubscriberRecord | None) -> Decision:
        seen.append(old)
        assert old is not None
        others.append(
            _meanwhile(
                path,
                lambda o: o.subscribers.change(
                    "a@example.org", lambda r: (r and replace(r, name="Renamed"), None), NOW
                ),
            )
        )
        return replace(old, choices=WANTED), "confirm"

    stored = store.subscribers.change("a@example.org", weekly, NOW)
    assert stored is not None and (stored.name, stored.choices, stored.rev) == (
        "Reader a@example.org",
        WANTED,
        2,
    )
    others[0].join(timeout=20)
    assert len(seen) == 1  # decided once: nobody wrote in between
    after = store.subscribers.find(email="a@example.org")
    assert after is not None and (after.name, after.choices, after.rev) == ("Renamed", WANTED, 3)
    assert notices(path) == [("a@example.org", "confirm", secs(NOW), "pending", 0)]


def test_a_change_returns_what_it_stored_though_another_write_follows_at_once(
    store: Store, path: Path | str
) -> None:
    """The record a change returns is read in its own transaction: another process that
    writes the address the moment it commits (before anything else is read) is not taken
    for what this change stored."""
    assert isinstance(store, SqlStore)
    theirs = record("a@example.org", name="Theirs")
    armed: list[bool] = []

    def on_checkin(*_: object) -> None:  # the change's connection, back after its commit
        if armed:
            armed.clear()
            _meanwhile(path, lambda o: o.subscribers.save([theirs])).join(timeout=20)

    def mine(old: SubscriberRecord | None) -> Decision:
        armed.append(True)
        return record("a@example.org", key="mine", name="Mine"), "confirm"

    sa.event.listen(store.engine.pool, "checkin", on_checkin)
    try:
        stored = store.subscribers.change("a@example.org", mine, NOW)
    finally:
        sa.event.remove(store.engine.pool, "checkin", on_checkin)
    assert stored is not None and (stored.key, stored.name, stored.rev) == ("mine", "Mine", 1)
    assert store.subscribers.find(email="a@example.org") == replace(theirs, rev=2)


def test_an_insert_by_another_process_waits_for_the_change(store: Store, path: Path | str) -> None:
    seen: list[SubscriberRecord | None] = []
    others: list[threading.Thread] = []
    theirs = record("a@example.org", name="Theirs")

    def mine(old: SubscriberRecord | None) -> Decision:
        seen.append(old)
        others.append(_meanwhile(path, lambda o: o.subscribers.save([theirs])))
        return record("a@example.org", key="mine", name="Mine"), "confirm"

    stored = store.subscribers.change("a@example.org", mine, NOW)
    assert seen == [None] and stored is not None and (stored.key, stored.rev) == ("mine", 1)
    others[0].join(timeout=20)
    after = store.subscribers.find(email="a@example.org")
    assert after == replace(theirs, rev=2)  # a save replaces the record: the later one stays
    assert notices(path) == [("a@example.org", "confirm", secs(NOW), "pending", 0)]


def test_two_processes_signing_up_one_address_at_once_store_and_mail_it_once(
    path: Path | str,
) -> None:
    stores = [open_store(path), open_store(path)]
    start = threading.Barrier(2, timeout=20)

    def race(store: Store) -> tuple[list[SubscriberRecord | None], str]:
        seen: list[SubscriberRecord | None] = []
        outcome = rules.Outcome()
        decide = sign_up("a@example.org", outcome=outcome)

        def watched(old: SubscriberRecord | None) -> Decision:
            seen.append(old)
            return decide(old)

        start.wait()  # both begin together
        store.subscribers.change("a@example.org", watched, NOW)
        return seen, outcome.said

    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            results = [f.result(timeout=60) for f in [pool.submit(race, s) for s in stores]]
    finally:
        for s in stores:
            s.close()
    [(won, mailed), (lost, quiet)] = sorted(results, key=lambda r: r[1] == "quiet")
    assert (won, mailed) == ([None], "mailed")
    # SQLite makes the second wait its turn; PostgreSQL lets it decide on what it read, fail
    # to insert, and decide again: either way it ends deciding on the stored sign-up.
    assert quiet == "quiet" and lost[-1] is not None
    assert rows(path, "select email, state, rev from subscribers") == [
        ("a@example.org", "pending", 1)
    ]
    assert notices(path) == [("a@example.org", "confirm", secs(NOW), "pending", 0)]


def test_a_sign_up_confirmed_becomes_active(store: Store) -> None:
    store.subscribers.change("a@example.org", sign_up("a@example.org"), NOW)
    via = rules.consent("web", NOW + HOUR)
    outcome = rules.Outcome()
    stored = store.subscribers.change(
        "a@example.org",
        lambda old: rules.confirm(old, now=NOW + HOUR, via=via, outcome=outcome),
        NOW + HOUR,
    )
    assert outcome.said == "confirmed" and stored is not None
    assert (stored.state, stored.choices, stored.since, stored.consent) == (
        "active",
        WANTED,
        NOW + HOUR,
        via,
    )
    assert (stored.requested, stored.expires, stored.rev) == (None, None, 2)
    assert store.subscribers.active() == [stored]


# -- save, delete, find, active ---------------------------------------------------------------


def test_save_inserts_and_replaces_by_address(store: Store, path: Path | str) -> None:
    a, b = record("a@example.org"), record("b@example.org", state="unsubscribed")
    store.subscribers.save([a, b])
    assert store.subscribers.all() == [replace(a, rev=1), replace(b, rev=1)]
    changed = replace(a, email="A@Example.ORG", key="new-key", name="Changed", choices=WANTED)
    store.subscribers.save([changed])
    assert store.subscribers.all() == [
        replace(changed, email="a@example.org", rev=2),
        replace(b, rev=1),
    ]
    assert store.subscribers.find(key="key-a") is None
    assert rows(path, "select count(*) from subscribers") == [(2,)]


def test_delete_removes_the_subscriber_their_digests_and_notices_only(
    store: Store, path: Path
) -> None:
    store.subscribers.save([record(f"{n}@example.org") for n in "abc"])
    for n in "abc":
        email = f"{n}@example.org"
        store.outbox.add_periods(
            [(email, "daily:2026-01-19", NOW - 24 * HOUR), (email, "daily:2026-01-20", NOW)], NOW
        )
        queue(store, email, "already", NOW)
    kept = {
        table: rows(path, f"select * from {table} where {column} = 'c@example.org'")
        for table, column in (
            ("subscribers", "email"),
            ("outbox", "subscriber"),
            ("notices", "email"),
        )
    }
    assert store.subscribers.delete(["A@EXAMPLE.org", "b@example.org", "x@example.org"]) == 2
    assert [r.email for r in store.subscribers.all()] == ["c@example.org"]
    for table, column in (("subscribers", "email"), ("outbox", "subscriber"), ("notices", "email")):
        assert rows(path, f"select * from {table}") == kept[table]
        assert len(kept[table]) == (2 if table == "outbox" else 1)
        assert rows(path, f"select count(*) from {table} where {column} != 'c@example.org'") == [
            (0,)
        ]
    assert store.subscribers.delete(["a@example.org"]) == 0


def test_find_by_address_in_any_case_or_by_key(store: Store) -> None:
    a, b = record("a@example.org"), record("b@example.org")
    store.subscribers.save([a, b])
    assert store.subscribers.find(email="A@EXAMPLE.ORG") == replace(a, rev=1)
    assert store.subscribers.find(email="b@example.org") == replace(b, rev=1)
    assert store.subscribers.find(key="key-b") == replace(b, rev=1)
    assert store.subscribers.find(key="KEY-B") is None  # a key is exact
    assert store.subscribers.find(email="c@example.org") is None
    assert store.subscribers.find(key="key-c") is None
    with pytest.raises(TypeError):
        store.subscribers.find()


def test_active_lists_only_active_subscribers_by_address(store: Store) -> None:
    made = [
        record("zoe@example.org"),
        record("pending@example.org", state="pending"),
        record("anh@example.org"),
        record("gone@example.org", state="unsubscribed", unsubscribed=NOW),
        record("minh@example.org"),
    ]
    store.subscribers.save(made)
    assert [r.email for r in store.subscribers.active()] == [
        "anh@example.org",
        "minh@example.org",
        "zoe@example.org",
    ]
    assert store.subscribers.active()[0] == replace(made[2], rev=1)
    assert [r.email for r in store.subscribers.all()] == sorted(r.email for r in made)


def test_every_field_comes_back_as_it_was_stored(store: Store, path: Path | str) -> None:
    full = SubscriberRecord(
        email="an@example.org",
        key="k" * 22,
        name="Nguyễn Thị An",
        choices=Choices("weekly", ("tran-van-b", "le-thi-c"), ("y-te-co-so",)),
        state="active",
        source="import",
        created=NOW - 48 * HOUR,
        since=NOW - 47 * HOUR,
        unsubscribed=None,
        consent=rules.consent("import", NOW - 47 * HOUR, list="bản tin cũ"),
        version=3,
        requested=WANTED,
        expires=NOW + LAPSE,
        noticed=NOW,
    )
    store.subscribers.save([full])
    other = open_store(path)
    try:
        assert other.subscribers.find(key="k" * 22) == replace(full, rev=1)
    finally:
        other.close()
    [(consent, requested, officials, topics)] = rows(
        path, "select consent, requested, officials, topics from subscribers"
    )
    assert stored_json(consent) == dict(full.consent or {})
    assert stored_json(requested) == {
        "schedule": "weekly",
        "officials": ["nguyen-van-a"],
        "topics": ["tiem-chung", "dich-benh"],
    }
    assert (stored_json(officials), stored_json(topics)) == (
        ["tran-van-b", "le-thi-c"],
        ["y-te-co-so"],
    )
    assert full.subscriber == store.subscribers.active()[0].subscriber


# -- expire ---------------------------------------------------------------------------------


def test_expire_drops_lapsed_sign_ups_and_requests_and_old_hit_counts(
    store: Store, path: Path
) -> None:
    minute = timedelta(minutes=1)
    lapsed, waiting = NOW - minute, NOW + minute
    made = [
        record("lapsed@example.org", "pending", requested=WANTED, expires=lapsed),
        record("waiting@example.org", "pending", requested=WANTED, expires=waiting),
        record("due@example.org", "pending", requested=WANTED, expires=NOW),  # not yet past
        record("back@example.org", "unsubscribed", requested=WANTED, expires=lapsed),
        record("more@example.org", "active", requested=WANTED, expires=lapsed),
        record("still@example.org", "active", requested=WANTED, expires=waiting),
        record("plain@example.org", "active"),
    ]
    store.subscribers.save(made)
    for r in made:
        queue(store, r.email, "confirm", NOW - 47 * HOUR)
    for hours in (4, 3, 1, 0):
        assert store.subscribers.hit("198.51.100.7", NOW - hours * HOUR, 5)
    untouched = [
        "due@example.org",
        "plain@example.org",
        "still@example.org",
        "waiting@example.org",
    ]
    before = {r.email: r for r in store.subscribers.all()}

    assert store.subscribers.expire(NOW) == 3

    after = {r.email: r for r in store.subscribers.all()}
    assert sorted(after) == sorted(r.email for r in made if r.email != "lapsed@example.org")
    for email in untouched:
        assert after[email] == before[email]
    for email, state in (("back@example.org", "unsubscribed"), ("more@example.org", "active")):
        old = before[email]
        assert after[email] == replace(old, requested=None, expires=None, rev=old.rev + 1)
        assert after[email].state == state
    assert sorted(str(e) for (e,) in rows(path, "select email from notices")) == sorted(after)
    hour_of = {secs(NOW - h * HOUR) // 3600 * 3600 for h in (1, 0)}
    assert {int(str(w)) for (w,) in rows(path, 'select "window" from form_hits')} == hour_of
    assert store.subscribers.expire(NOW) == 0
    assert {r.email: r for r in store.subscribers.all()} == after


# -- the forms' rate limit ------------------------------------------------------------------


def test_hit_allows_the_limit_per_client_in_each_utc_hour(store: Store) -> None:
    start = datetime(2026, 1, 20, 8, 0, tzinfo=UTC)
    client, other = "203.0.113.9", "2001:db8::1"
    assert [store.subscribers.hit(client, start + timedelta(minutes=m), 3) for m in range(5)] == [
        True,
        True,
        True,
        False,
        False,
    ]
    assert store.subscribers.hit(other, start + timedelta(minutes=5), 3)  # its own count
    # 08:59:59 UTC is still the same hour, written in any zone (14:29:59 in UTC+05:30, whose
    # local hour has already turned).
    india = timezone(timedelta(hours=5, minutes=30))
    assert not store.subscribers.hit(
        client, (start + HOUR - timedelta(seconds=1)).astimezone(india), 3
    )
    assert [
        store.subscribers.hit(client, start + HOUR + timedelta(minutes=m), 3) for m in range(4)
    ] == [
        True,
        True,
        True,
        False,
    ]
    assert store.subscribers.hit(other, start + HOUR, 3)


def test_hit_counts_one_limit_across_processes(path: Path | str) -> None:
    stores = [open_store(path), open_store(path)]
    start = threading.Barrier(2, timeout=20)

    def hits(store: Store) -> list[bool]:
        start.wait()
        return [store.subscribers.hit("203.0.113.9", NOW, 150) for _ in range(100)]

    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            got = [f.result(timeout=60) for f in [pool.submit(hits, s) for s in stores]]
    finally:
        for s in stores:
            s.close()
    # 200 sign-ups at once, from two processes: 150 counted and allowed, none lost, none more.
    assert sum(sum(g) for g in got) == 150
    assert rows(path, "select client, count from form_hits") == [("203.0.113.9", 150)]


def test_notices_since_counts_those_queued_from_then_on(store: Store) -> None:
    store.subscribers.save([record(f"{n}@example.org") for n in "abcd"])
    for n, when in zip("abcd", (NOW - 2 * HOUR, NOW - HOUR, NOW - HOUR, NOW), strict=True):
        queue(store, f"{n}@example.org", "already", when)
    second = timedelta(seconds=1)
    assert store.subscribers.notices_since(NOW - 3 * HOUR) == 4
    assert store.subscribers.notices_since(NOW - HOUR) == 3
    assert store.subscribers.notices_since(NOW - HOUR + second) == 1
    assert store.subscribers.notices_since(NOW) == 1
    assert store.subscribers.notices_since(NOW + second) == 0
