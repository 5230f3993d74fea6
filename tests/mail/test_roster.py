"""config.toml's [[subscribers]] applied to the stored roster: added, changed, removed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from digest.mail.roster import reconcile
from digest.model import Choices, Subscriber
from digest.store import SubscriberRecord

NOW = datetime(2026, 1, 20, 1, 0, tzinfo=UTC)
BEFORE = datetime(2025, 11, 3, 8, 30, tzinfo=UTC)
WEB_CONSENT = {"at": "2025-11-03T08:30:00+00:00", "via": "web", "text": "Tôi đồng ý"}


def record(email: str, source: str, state: str = "active", **changes: object) -> SubscriberRecord:
    r = SubscriberRecord(
        email=email,
        key=f"key-of-{email}",
        name="",
        choices=Choices("daily"),
        state=state,
        source=source,
        created=BEFORE,
        since=BEFORE if state == "active" else None,
        unsubscribed=BEFORE + timedelta(days=1) if state == "unsubscribed" else None,
        consent=WEB_CONSENT,
        rev=2,
    )
    return replace(r, **changes)  # type: ignore[arg-type]


def listed(
    email: str,
    name: str = "",
    schedule: str = "daily",
    officials: tuple[str, ...] = (),
    topics: tuple[str, ...] = (),
) -> Subscriber:
    return Subscriber(email, name, schedule, officials, topics)


def emails(records: Sequence[SubscriberRecord]) -> list[str]:
    return [r.email for r in records]


def test_a_new_config_subscriber_is_active_from_now() -> None:
    roster = reconcile(
        [], [listed("Lan@Example.ORG", "Đào Lan", "weekly", ("dao-hong-lan",), ("y-te",))], NOW
    )
    assert len(roster.records) == 1
    new = roster.records[0]
    assert new.email == "lan@example.org"
    assert new.name == "Đào Lan"
    assert new.choices == Choices("weekly", ("dao-hong-lan",), ("y-te",))
    assert (new.state, new.source) == ("active", "config")
    assert new.since == new.created == NOW
    assert new.key
    assert new.consent is not None and new.consent["via"] == "config"
    assert roster.save == [new]
    assert roster.delete == []
    assert roster.active == [new]


def test_config_changes_the_name_and_choices_of_its_subscriber() -> None:
    old = record("lan@example.org", "config", name="Lan", version=3)
    roster = reconcile(
        [old], [listed("LAN@example.org", "Đào Hồng Lan", "weekly", (), ("quoc-hoi",))], NOW
    )
    changed = replace(
        old, name="Đào Hồng Lan", choices=Choices("weekly", (), ("quoc-hoi",))
    )  # the key, links, dates and consent are kept
    assert roster.records == [changed]
    assert roster.save == [changed]
    assert roster.delete == []


def test_an_unsubscribed_config_subscriber_stays_unsubscribed() -> None:
    old = record("lan@example.org", "config", "unsubscribed")
    roster = reconcile([old], [listed("lan@example.org", "Lan", "weekly")], NOW)
    assert [(r.email, r.state) for r in roster.records] == [("lan@example.org", "unsubscribed")]
    assert roster.records[0].unsubscribed == old.unsubscribed
    assert roster.active == []
    assert roster.delete == []


def test_an_opt_out_outlives_removing_and_adding_the_block_again() -> None:
    config = [listed("lan@example.org", "Lan"), listed("hoa@example.org", "Hoa")]
    first = reconcile([], config, NOW)
    assert emails(first.active) == ["hoa@example.org", "lan@example.org"]
    lan = next(r for r in first.records if r.email == "lan@example.org")
    out = replace(lan, state="unsubscribed", unsubscribed=NOW + timedelta(hours=1))
    others = [r for r in first.records if r.email != "lan@example.org"]
    later = NOW + timedelta(days=1)
    removed = reconcile([*others, out], [listed("hoa@example.org", "Hoa")], later)
    assert removed.delete == []  # the opt-out is kept, so it is remembered
    assert out in removed.records
    # `records` is what the store holds once `save` and `delete` are applied.
    back = reconcile(removed.records, config, later + timedelta(days=1))
    assert emails(back.active) == ["hoa@example.org"]
    lan_again = next(r for r in back.records if r.email == "lan@example.org")
    assert lan_again.state == "unsubscribed"
    assert lan_again.unsubscribed == NOW + timedelta(hours=1)


def test_a_removed_block_deletes_its_subscriber_but_not_the_sites() -> None:
    gone = record("lan@example.org", "config")
    stays = [
        record("hoa@example.org", "web"),
        record("minh@example.org", "cli"),
        record("an@example.org", "import"),
        record("thu@example.org", "web", "pending"),
        record("nam@example.org", "web", "unsubscribed"),
    ]
    roster = reconcile([gone, *stays], [], NOW)
    assert roster.delete == ["lan@example.org"]
    assert roster.save == []
    assert emails(roster.records) == sorted(emails(stays))
    assert roster.records == sorted(stays, key=lambda r: r.email)
    assert emails(roster.active) == ["an@example.org", "hoa@example.org", "minh@example.org"]


def test_a_web_subscriber_listed_in_config_becomes_the_operators() -> None:
    old = record("hoa@example.org", "web", choices=Choices("daily", ("dao-hong-lan",)))
    roster = reconcile([old], [listed("hoa@example.org", "Hoa", "weekly")], NOW)
    became = replace(old, name="Hoa", choices=Choices("weekly"), source="config")
    assert roster.records == [became]
    assert roster.save == [became]
    assert became.since == BEFORE  # their digests go on from where they were
    # Removed from config later: the operator's now, so removed with the block.
    assert reconcile(roster.records, [], NOW + timedelta(days=1)).delete == ["hoa@example.org"]


def test_a_pending_sign_up_listed_in_config_is_active_from_now() -> None:
    old = record(
        "hoa@example.org",
        "web",
        "pending",
        consent=None,
        requested=Choices("weekly"),
        expires=NOW + timedelta(hours=5),
    )
    roster = reconcile([old], [listed("hoa@example.org")], NOW)
    [new] = roster.records
    assert (new.state, new.source, new.since) == ("active", "config", NOW)
    assert new.requested is None and new.expires is None
    assert roster.save == [new]


def test_an_unsubscribed_web_reader_listed_in_config_stays_unsubscribed() -> None:
    old = record("hoa@example.org", "web", "unsubscribed")
    roster = reconcile([old], [listed("hoa@example.org", "Hoa")], NOW)
    [new] = roster.records
    assert new.state == "unsubscribed"
    assert roster.active == []


def test_nothing_changes_when_nothing_differs() -> None:
    config = [
        listed("lan@example.org", "Lan", "weekly", ("dao-hong-lan",)),
        listed("Hoa@Example.org", "Hoa"),
    ]
    first = reconcile([record("minh@example.org", "web")], config, NOW)
    assert sorted(emails(first.save)) == ["hoa@example.org", "lan@example.org"]
    again = reconcile(first.records, config, NOW + timedelta(days=1))
    assert again.save == []
    assert again.delete == []
    assert again.records == first.records


def test_a_stored_config_subscriber_as_listed_is_not_saved_again() -> None:
    old = record(
        "lan@example.org", "config", name="Lan", choices=Choices("weekly", (), ("quoc-hoi",))
    )
    roster = reconcile([old], [listed("lan@example.org", "Lan", "weekly", (), ("quoc-hoi",))], NOW)
    assert roster.save == [] and roster.delete == []
    assert roster.records == [old]
