"""The outbox store on a real SQLite file: the secret, periods, claims and outcomes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from raw import rows

from digest.model import Choices
from digest.store import OUTBOX_STATES, NoticeRow, Store, SubscriberRecord, open_store

pytestmark = pytest.mark.both_engines  # every test on SQLite and PostgreSQL

NOW = datetime(2026, 1, 20, 1, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY1 = datetime(2026, 1, 19, 0, 0, tzinfo=UTC)
DAY2 = datetime(2026, 1, 20, 0, 0, tzinfo=UTC)
WEEK = datetime(2026, 1, 12, 0, 0, tzinfo=UTC)


def stored_secret(path: Path | str) -> list[tuple[str]]:
    return rows(path, "select value from meta where key = 'unsubscribe_secret'")


def secs(moment: datetime) -> int:
    return int(moment.timestamp())


def counts(**states: int) -> dict[str, int]:
    return {state: states.get(state, 0) for state in OUTBOX_STATES}


def test_the_secret_is_made_on_first_use_and_kept(store: Store, path: Path | str) -> None:
    assert stored_secret(path) == []  # opening the store made none
    secret = store.outbox.secret()
    assert len(secret) == 64 and int(secret, 16) >= 0
    assert stored_secret(path) == [(secret,)]
    assert store.outbox.secret() == secret
    store.close()
    again = open_store(path)
    try:
        assert again.outbox.secret() == secret
        assert stored_secret(path) == [(secret,)]
    finally:
        again.close()


def test_two_stores_get_different_secrets(tmp_path: Path) -> None:
    one, two = open_store(tmp_path / "one.sqlite"), open_store(tmp_path / "two.sqlite")
    try:
        assert one.outbox.secret() != two.outbox.secret()
    finally:
        one.close()
        two.close()


def test_periods_are_recorded_once_and_due_oldest_slot_first(store: Store) -> None:
    rows = [
        ("b@example.org", "daily:2026-01-20", DAY2),
        ("a@example.org", "daily:2026-01-20", DAY2),
        ("a@example.org", "weekly:2026-01-12", WEEK),
        ("a@example.org", "daily:2026-01-19", DAY1),
    ]
    store.outbox.add_periods(rows, NOW)
    # Recording a period again, even with another slot, leaves it as it is.
    store.outbox.add_periods([("a@example.org", "daily:2026-01-19", DAY2)], NOW + HOUR)
    due = store.outbox.due(NOW)
    assert [(r.subscriber, r.period, r.slot) for r in due] == [
        ("a@example.org", "weekly:2026-01-12", WEEK),
        ("a@example.org", "daily:2026-01-19", DAY1),
        ("a@example.org", "daily:2026-01-20", DAY2),
        ("b@example.org", "daily:2026-01-20", DAY2),
    ]
    assert {(r.state, r.attempts, r.updated, r.message_id) for r in due} == {
        ("pending", 0, NOW, None)
    }
    assert store.outbox.outbox_counts() == counts(pending=4)
    assert store.outbox.last_slots() == {"a@example.org": DAY2, "b@example.org": DAY2}


def test_a_period_is_claimed_by_one_claimer_only(store: Store, path: Path | str) -> None:
    store.outbox.add_periods([("a@example.org", "daily:2026-01-20", DAY2)], NOW)
    other = open_store(path)  # another process on the same file
    try:
        assert (
            store.outbox.claim("a@example.org", "daily:2026-01-20", NOW, owner=1, items=3) is True
        )
        assert other.outbox.claim("a@example.org", "daily:2026-01-20", NOW, owner=1) is False
        assert store.outbox.claim("a@example.org", "daily:2026-01-20", NOW, owner=1) is False
    finally:
        other.close()
    assert store.outbox.claim("nobody@example.org", "daily:2026-01-20", NOW, owner=1) is False
    # Committed before any mail goes out:
    [row] = rows(path, "select state, attempts, items from outbox")
    assert row == ("sending", 1, 3)
    assert store.outbox.due(NOW) == []
    assert store.outbox.outbox_counts() == counts(sending=1)


def test_data_begins_records_the_message_id_of_a_row_being_sent(store: Store) -> None:
    store.outbox.add_periods(
        [("a@example.org", "daily:2026-01-20", DAY2), ("b@example.org", "daily:2026-01-20", DAY2)],
        NOW,
    )
    assert store.outbox.claim("a@example.org", "daily:2026-01-20", NOW, owner=1)
    store.outbox.data_begins(
        "a@example.org", "daily:2026-01-20", "<1@digest.example.org>", owner=1, items=1
    )
    store.outbox.data_begins(
        "b@example.org", "daily:2026-01-20", "<2@digest.example.org>", owner=1, items=1
    )
    ids = {r.subscriber: r.message_id for r in store.outbox.outbox_rows()}
    assert ids == {"a@example.org": "<1@digest.example.org>", "b@example.org": None}


def test_rows_left_sending_are_interrupted(store: Store, path: Path | str) -> None:
    store.outbox.add_periods(
        [
            ("a@example.org", "daily:2026-01-20", DAY2),
            ("b@example.org", "daily:2026-01-20", DAY2),
            ("c@example.org", "daily:2026-01-20", DAY2),
        ],
        NOW,
    )
    assert store.outbox.claim("a@example.org", "daily:2026-01-20", NOW, owner=1, items=2)
    store.outbox.data_begins("a@example.org", "daily:2026-01-20", "<a@x>", owner=1, items=2)
    assert store.outbox.claim("b@example.org", "daily:2026-01-20", NOW, owner=1, items=5)
    store.close()  # the process died while sending
    again = open_store(path)
    try:
        found = {(r.subscriber, r.state, r.items, r.message_id) for r in again.outbox.interrupted()}
        assert found == {
            ("a@example.org", "sending", 2, "<a@x>"),
            ("b@example.org", "sending", 5, None),
        }
        again.outbox.finish("a@example.org", "daily:2026-01-20", "unknown", NOW, items=2)
        assert [r.subscriber for r in again.outbox.interrupted()] == ["b@example.org"]
    finally:
        again.close()


def test_finish_records_the_outcome(store: Store) -> None:
    periods = [(f"{n}@example.org", "daily:2026-01-20", DAY2) for n in "abcde"]
    store.outbox.add_periods(periods, NOW)
    for subscriber, period, _ in periods:
        assert store.outbox.claim(subscriber, period, NOW, owner=1)
    later = NOW + HOUR
    store.outbox.finish(
        "a@example.org", "daily:2026-01-20", "sent", later, items=4, message_id="<a>"
    )
    store.outbox.finish("b@example.org", "daily:2026-01-20", "empty", later, items=0)
    store.outbox.finish(
        "c@example.org", "daily:2026-01-20", "dead", later, error="550 no such user"
    )
    store.outbox.finish(
        "d@example.org",
        "daily:2026-01-20",
        "failed",
        later,
        error="421 busy",
        next_attempt=later + HOUR,
    )
    assert store.outbox.outbox_counts() == counts(sent=1, empty=1, dead=1, failed=1, sending=1)
    rows = {r.subscriber: r for r in store.outbox.outbox_rows()}
    assert (rows["a@example.org"].state, rows["a@example.org"].items) == ("sent", 4)
    assert rows["a@example.org"].message_id == "<a>"
    assert rows["a@example.org"].updated == later
    assert rows["c@example.org"].error == "550 no such user"
    assert rows["d@example.org"].next_attempt == later + HOUR
    assert rows["e@example.org"].updated == NOW
    # Most recently updated first: the one still sending (updated at NOW) comes last.
    assert store.outbox.outbox_rows()[-1].subscriber == "e@example.org"
    recent = store.outbox.outbox_rows(limit=4)
    assert len(recent) == 4 and "e@example.org" not in {r.subscriber for r in recent}


def test_a_failed_period_is_retried_when_its_time_comes(store: Store) -> None:
    assert store.outbox.next_retry() is None
    store.outbox.add_periods(
        [("a@example.org", "daily:2026-01-20", DAY2), ("b@example.org", "daily:2026-01-20", DAY2)],
        NOW,
    )
    retry_a, retry_b = NOW + 2 * HOUR, NOW + 3 * HOUR
    for subscriber, retry in (("a@example.org", retry_a), ("b@example.org", retry_b)):
        assert store.outbox.claim(subscriber, "daily:2026-01-20", NOW, owner=1)
        store.outbox.data_begins(
            subscriber, "daily:2026-01-20", f"<{subscriber}>", owner=1, items=1
        )
        store.outbox.finish(
            subscriber,
            "daily:2026-01-20",
            "failed",
            NOW,
            message_id=f"<{subscriber}>",  # refused during DATA
            error="421",
            next_attempt=retry,
        )
    assert store.outbox.next_retry() == retry_a
    assert store.outbox.due(retry_a - timedelta(seconds=1)) == []
    assert [r.subscriber for r in store.outbox.due(retry_a)] == ["a@example.org"]
    assert store.outbox.claim("a@example.org", "daily:2026-01-20", retry_a - HOUR, owner=1) is False
    assert store.outbox.claim("a@example.org", "daily:2026-01-20", retry_a, owner=1) is True
    [row] = store.outbox.interrupted()
    # The new attempt sends a new message: the old Message-ID is forgotten.
    assert (row.attempts, row.message_id, row.updated) == (2, None, retry_a)
    assert store.outbox.next_retry() == retry_b


# -- notices --------------------------------------------------------------------------------


def queue_notice(store: Store, path: Path | str, email: str, kind: str = "confirm") -> int:
    """A subscriber stored with a notice queued, as the forms do it; the notice's id."""

    def decide(old: SubscriberRecord | None) -> tuple[SubscriberRecord | None, str | None]:
        assert old is None
        new = SubscriberRecord(
            email=email,
            key=f"key-{email}",
            name="",
            choices=Choices("daily"),
            state="pending",
            source="web",
            created=NOW,
            since=None,
            noticed=NOW,
        )
        return new, kind

    store.subscribers.change(email, decide, NOW)
    [(notice,)] = rows(path, "select id from notices where email = :email", email=email)
    return int(notice)


def notice_rows(path: Path | str) -> list[tuple[object, ...]]:
    query = "select id, state, attempts, next_attempt, message_id, error, updated from notices"
    return rows(path, query + " order by id")


def test_notices_due_are_pending_and_failed_ones_whose_retry_has_come_by_id(
    store: Store, path: Path
) -> None:
    # Queued in this order; neither the addresses nor the retry times are in it.
    names = ["zoe", "minh", "anh", "lan", "binh", "hoa", "an"]
    ids = {n: queue_notice(store, path, f"{n}@example.org") for n in names}
    assert sorted(ids.values()) == [ids[n] for n in names]
    for n in ("minh", "anh", "lan", "hoa", "an"):
        assert store.outbox.claim_notice(ids[n], NOW)
    store.outbox.finish_notice(ids["minh"], "failed", NOW, error="421", next_attempt=NOW + 3 * HOUR)
    store.outbox.finish_notice(ids["anh"], "sent", NOW, message_id="<anh>")
    store.outbox.finish_notice(ids["lan"], "failed", NOW, error="451", next_attempt=NOW + HOUR)
    store.outbox.finish_notice(ids["hoa"], "dead", NOW, error="550")
    # "an" stays sending: it is no longer due either.

    def due(at: datetime) -> list[str]:
        return [r.email.split("@")[0] for r in store.outbox.notices_due(at)]

    assert due(NOW) == ["zoe", "binh"]
    assert due(NOW + HOUR - timedelta(seconds=1)) == ["zoe", "binh"]
    assert due(NOW + HOUR) == ["zoe", "lan", "binh"]
    assert due(NOW + 3 * HOUR) == ["zoe", "minh", "lan", "binh"]
    first, second = store.outbox.notices_due(NOW + 3 * HOUR)[:2]
    assert first == NoticeRow(
        ids["zoe"], "zoe@example.org", "confirm", NOW, "pending", 0, None, None, None
    )
    assert second == NoticeRow(
        ids["minh"], "minh@example.org", "confirm", NOW, "failed", 1, NOW + 3 * HOUR, None, "421"
    )


def test_a_notice_is_claimed_once(store: Store, path: Path | str) -> None:
    notice = queue_notice(store, path, "a@example.org", "already")
    other = open_store(path)  # another process on the same file
    try:
        assert store.outbox.claim_notice(notice, NOW) is True
        assert other.outbox.claim_notice(notice, NOW) is False
        assert store.outbox.claim_notice(notice, NOW) is False
    finally:
        other.close()
    assert store.outbox.claim_notice(notice + 1, NOW) is False  # no such notice
    # Committed before the mail leaves: another connection sees it.
    assert notice_rows(path) == [(notice, "sending", 1, None, None, None, secs(NOW))]
    assert store.outbox.notices_due(NOW) == []


def test_a_failed_notice_is_claimed_again_when_its_retry_comes(
    store: Store, path: Path | str
) -> None:
    notice = queue_notice(store, path, "a@example.org")
    retry = NOW + 2 * HOUR
    assert store.outbox.claim_notice(notice, NOW)
    store.outbox.finish_notice(notice, "failed", NOW, error="421 busy", next_attempt=retry)
    assert store.outbox.claim_notice(notice, retry - timedelta(seconds=1)) is False
    assert store.outbox.claim_notice(notice, retry) is True
    assert store.outbox.claim_notice(notice, retry) is False
    [(_, state, attempts, *_)] = notice_rows(path)
    assert (state, attempts) == ("sending", 2)


def test_finish_notice_records_the_outcome(store: Store, path: Path | str) -> None:
    sent, failed, dead = (queue_notice(store, path, f"{n}@example.org") for n in "abc")
    for notice in (sent, failed, dead):
        assert store.outbox.claim_notice(notice, NOW)
    later = NOW + HOUR
    store.outbox.finish_notice(sent, "sent", later, message_id="<a@digest.example.org>")
    store.outbox.finish_notice(
        failed, "failed", later, error="421 try later", next_attempt=later + HOUR
    )
    store.outbox.finish_notice(dead, "dead", later + HOUR, error="550 no such user")
    assert notice_rows(path) == [
        (sent, "sent", 1, None, "<a@digest.example.org>", None, secs(later)),
        (failed, "failed", 1, secs(later + HOUR), None, "421 try later", secs(later)),
        (dead, "dead", 1, None, None, "550 no such user", secs(later + HOUR)),
    ]


def test_notices_left_sending_are_interrupted(store: Store, path: Path | str) -> None:
    a, b, c = (queue_notice(store, path, f"{n}@example.org", "confirm") for n in "abc")
    assert store.outbox.claim_notice(a, NOW)
    assert store.outbox.claim_notice(c, NOW + HOUR)
    assert store.outbox.interrupted_notices() != []
    store.close()  # the process died while sending
    again = open_store(path)
    try:
        found = sorted(again.outbox.interrupted_notices(), key=lambda r: r.id)
        assert [(r.id, r.email, r.state, r.attempts) for r in found] == [
            (a, "a@example.org", "sending", 1),
            (c, "c@example.org", "sending", 1),
        ]
        again.outbox.finish_notice(a, "unknown", NOW + 2 * HOUR)
        assert [r.id for r in again.outbox.interrupted_notices()] == [c]
        assert [r.id for r in again.outbox.notices_due(NOW + 2 * HOUR)] == [b]
    finally:
        again.close()
