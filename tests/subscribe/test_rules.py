"""The subscription rules on one record: sign-up, confirmation, choices, opt-out, links."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from digest.model import Choices
from digest.store import SubscriberRecord
from digest.subscribe import rules
from digest.subscribe.rules import Outcome

NOW = datetime(2026, 1, 20, 1, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
DAY = timedelta(hours=24)  # the quiet period: one confirmation mail per address in this long
LAPSE = timedelta(hours=48)
EMAIL = "lan@example.org"
OLD = Choices("daily")
NEW = Choices("weekly", ("dao-hong-lan",), ("chuyen-doi-so",))
CREATED = datetime(2025, 12, 1, 8, 0, tzinfo=UTC)
VIA: Mapping[str, str] = {"at": "2026-01-20T01:00:00+00:00", "via": "web", "text": "…"}
OLD_CONSENT: Mapping[str, str] = {"at": "2025-12-01T08:00:00+00:00", "via": "web", "text": "…"}


def stored(state: str, **changes: object) -> SubscriberRecord:
    """A stored subscriber in `state`, as each state looks when nothing unusual happened."""
    record = SubscriberRecord(
        email=EMAIL,
        key="k3y-of-lan",
        name="",
        choices=OLD,
        state=state,
        source="web",
        created=CREATED,
        since=CREATED if state != "pending" else None,
        consent=OLD_CONSENT if state != "pending" else None,
        rev=3,
    )
    if state == "pending":
        record = replace(record, requested=OLD, expires=CREATED + LAPSE, noticed=CREATED)
    if state == "unsubscribed":
        record = replace(record, unsubscribed=CREATED + DAY)
    return replace(record, **changes)  # type: ignore[arg-type]


def sign_up(
    old: SubscriberRecord | None, now: datetime = NOW, *, may_mail: bool = True
) -> tuple[SubscriberRecord | None, str | None, str]:
    outcome = Outcome()
    new, notice = rules.sign_up(
        old, email=EMAIL, choices=NEW, now=now, lapse=LAPSE, may_mail=may_mail, outcome=outcome
    )
    return new, notice, outcome.said


def confirm(
    old: SubscriberRecord | None, now: datetime = NOW
) -> tuple[SubscriberRecord | None, str | None, str]:
    outcome = Outcome()
    new, notice = rules.confirm(old, now=now, via=VIA, outcome=outcome)
    return new, notice, outcome.said


def unsubscribe(
    old: SubscriberRecord | None, now: datetime = NOW
) -> tuple[SubscriberRecord | None, str | None, str]:
    outcome = Outcome()
    new, notice = rules.unsubscribe(old, email=EMAIL, now=now, outcome=outcome)
    return new, notice, outcome.said


# -- sign-up ---------------------------------------------------------------------------------


def test_a_new_sign_up_is_pending_with_the_requested_choices_and_asks_for_confirmation() -> None:
    new, notice, said = sign_up(None)
    assert (notice, said) == ("confirm", "mailed")
    assert new is not None
    assert new.email == EMAIL
    assert new.state == "pending" and new.source == "web"
    assert new.requested == NEW
    assert new.expires == NOW + LAPSE
    assert new.noticed == new.created == NOW
    assert new.since is None and new.unsubscribed is None and new.consent is None
    assert new.key and new.version == 0
    again, _, _ = sign_up(None)
    assert again is not None and again.key != new.key  # a random key each


@pytest.mark.parametrize("source", ["web", "cli", "import", "config"])
@pytest.mark.parametrize("noticed", [None, NOW - DAY - SECOND])
def test_an_active_address_signed_up_again_is_told_so_not_changed(
    source: str, noticed: datetime | None
) -> None:
    old = stored("active", source=source, noticed=noticed)
    new, notice, said = sign_up(old)
    assert (notice, said) == ("already", "mailed")
    # Only the time of the notice changes: not the choices, no request to confirm.
    assert new == replace(old, noticed=NOW)


@pytest.mark.parametrize("state", ["pending", "active", "unsubscribed"])
@pytest.mark.parametrize("ago", [SECOND, DAY / 2, DAY - SECOND])
def test_within_24_hours_of_the_last_notice_a_sign_up_sends_and_changes_nothing(
    state: str, ago: timedelta
) -> None:
    old = stored(state, noticed=NOW - ago)
    new, notice, said = sign_up(old)
    assert new is old
    assert (notice, said) == (None, "quiet")


@pytest.mark.parametrize("state", ["pending", "unsubscribed"])
@pytest.mark.parametrize("noticed", [None, NOW - DAY - SECOND, NOW - 30 * DAY])
def test_after_24_hours_a_pending_or_unsubscribed_address_is_asked_again(
    state: str, noticed: datetime | None
) -> None:
    old = stored(state, noticed=noticed)
    new, notice, said = sign_up(old)
    assert (notice, said) == ("confirm", "mailed")
    # A new request, confirmed by the mailed link alone: nobody is activated by the form.
    assert new == replace(old, requested=NEW, expires=NOW + LAPSE, noticed=NOW)
    assert new.state == state and new.choices == OLD


def test_a_flood_of_sign_ups_of_one_address_sends_one_mail_a_day() -> None:
    record: SubscriberRecord | None = None
    notices: list[tuple[datetime, str]] = []
    minute = timedelta(minutes=1)
    for i in range(3 * 24 * 60):  # one a minute for three days
        now = NOW + i * minute
        record, notice, _ = sign_up(record, now)
        if notice is not None:
            notices.append((now, notice))
    assert notices == [(NOW, "confirm"), (NOW + DAY, "confirm"), (NOW + 2 * DAY, "confirm")]


def test_an_active_address_is_told_at_most_once_a_day() -> None:
    record: SubscriberRecord | None = stored("active")
    said: list[tuple[timedelta, str | None]] = []
    for after in (timedelta(0), DAY - SECOND, DAY, DAY + DAY / 2, 2 * DAY - SECOND, 2 * DAY):
        record, notice, _ = sign_up(record, NOW + after)
        said.append((after, notice))
    assert said == [
        (timedelta(0), "already"),
        (DAY - SECOND, None),
        (DAY, "already"),
        (DAY + DAY / 2, None),
        (2 * DAY - SECOND, None),
        (2 * DAY, "already"),
    ]


def test_with_mail_paused_a_new_address_is_not_stored() -> None:
    assert sign_up(None, may_mail=False) == (None, None, "paused")


@pytest.mark.parametrize("state", ["pending", "active", "unsubscribed"])
def test_with_mail_paused_a_known_address_is_left_as_it_is(state: str) -> None:
    old = stored(state, noticed=NOW - 3 * DAY)  # a mail would be due
    new, notice, said = sign_up(old, may_mail=False)
    assert new is old
    assert notice is None
    assert said == "quiet"


# -- confirmation ----------------------------------------------------------------------------


def test_confirming_activates_the_requested_choices_with_the_consent() -> None:
    old = stored("pending", requested=NEW, expires=NOW + SECOND)
    new, notice, said = confirm(old)
    assert (notice, said) == (None, "confirmed")
    assert new is not None
    assert new.state == "active"
    assert new.choices == NEW
    assert new.since == NOW
    assert new.requested is None and new.expires is None
    assert new.consent == VIA
    assert (new.email, new.key, new.created, new.source) == (EMAIL, old.key, CREATED, "web")


@pytest.mark.parametrize("early", [SECOND, LAPSE - SECOND])
def test_a_request_can_be_confirmed_until_it_expires(early: timedelta) -> None:
    expires = NOW + LAPSE
    old = stored("pending", requested=NEW, expires=expires)
    new, _, said = confirm(old, expires - early)
    assert said == "confirmed"
    assert new is not None and new.state == "active" and new.since == expires - early


@pytest.mark.parametrize("late", [SECOND, DAY])
def test_a_lapsed_request_is_refused(late: timedelta) -> None:
    expires = NOW - late
    old = stored("pending", requested=NEW, expires=expires)
    new, notice, said = confirm(old)
    assert new is old
    assert (notice, said) == (None, "lapsed")


@pytest.mark.parametrize(
    "old",
    [
        None,
        stored("pending", requested=None, expires=None),
        stored("pending", requested=NEW, expires=None),
        stored("pending", requested=None, expires=NOW + DAY),
        stored("unsubscribed"),
    ],
    ids=["nobody", "no-request", "no-expiry", "expiry-only", "unsubscribed"],
)
def test_without_a_request_there_is_nothing_to_confirm(old: SubscriberRecord | None) -> None:
    new, notice, said = confirm(old)
    assert new is old
    assert (notice, said) == (None, "lapsed")


def test_a_replayed_confirmation_changes_nothing() -> None:
    old = stored("pending", requested=NEW, expires=NOW + DAY)
    first, _, _ = confirm(old)
    assert first is not None and first.state == "active"
    later = NOW + timedelta(hours=2)  # the link's expiry is still ahead
    again, notice, said = confirm(first, later)
    assert again is first
    assert (notice, said) == (None, "active")


def test_confirming_while_active_keeps_the_date_since_active() -> None:
    old = stored("active", requested=NEW, expires=NOW + DAY)
    new, _, said = confirm(old)
    assert said == "confirmed"
    assert new is not None
    assert new.since == CREATED
    assert new.choices == NEW and new.requested is None and new.consent == VIA


def test_an_unsubscribed_reader_who_signs_up_again_is_back_from_the_confirmation_on() -> None:
    old = stored("unsubscribed", noticed=None)
    asked, notice, _ = sign_up(old)
    assert notice == "confirm"
    assert asked is not None and asked.state == "unsubscribed"
    back, _, said = confirm(asked, NOW + timedelta(hours=1))
    assert said == "confirmed"
    assert back is not None
    assert back.state == "active"
    assert back.since == NOW + timedelta(hours=1)  # not the first subscription's date
    assert back.unsubscribed is None
    assert back.choices == NEW


def test_after_unsubscribing_an_old_confirmation_link_cannot_reactivate() -> None:
    pending, _, _ = sign_up(None)
    active, _, _ = confirm(pending, NOW + timedelta(minutes=5))
    gone, _, _ = unsubscribe(active, NOW + timedelta(minutes=10))
    assert gone is not None and gone.state == "unsubscribed"
    assert gone.requested is None and gone.expires is None
    replayed, notice, said = confirm(gone, NOW + timedelta(minutes=15))  # before the expiry
    assert replayed is gone
    assert (notice, said) == (None, "lapsed")


def test_unsubscribing_while_pending_withdraws_the_request() -> None:
    pending, _, _ = sign_up(None)
    gone, _, _ = unsubscribe(pending, NOW + SECOND)
    assert gone is not None and gone.state == "unsubscribed"
    replayed, _, said = confirm(gone, NOW + 2 * SECOND)
    assert replayed is gone and said == "lapsed"


# -- choices -----------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["web", "cli", "import"])
def test_an_active_reader_changes_their_choices(source: str) -> None:
    old = stored("active", source=source)
    outcome = Outcome()
    new, notice = rules.choose(old, choices=NEW, outcome=outcome)
    assert new == replace(old, choices=NEW)
    assert notice is None
    assert outcome.said == "saved"


def test_a_config_subscribers_choices_are_the_files() -> None:
    old = stored("active", source="config")
    outcome = Outcome()
    new, notice = rules.choose(old, choices=NEW, outcome=outcome)
    assert new is old and notice is None
    assert outcome.said == "managed"


@pytest.mark.parametrize(
    "old",
    [None, stored("pending"), stored("unsubscribed"), stored("unsubscribed", source="config")],
    ids=["nobody", "pending", "unsubscribed", "config-unsubscribed"],
)
def test_only_an_active_subscriber_has_choices_to_change(old: SubscriberRecord | None) -> None:
    outcome = Outcome()
    new, notice = rules.choose(old, choices=NEW, outcome=outcome)
    assert new is old and notice is None
    assert outcome.said == "inactive"


# -- opting out ----------------------------------------------------------------------------------


def test_an_unknown_address_that_unsubscribes_is_remembered_as_opted_out() -> None:
    new, notice, said = unsubscribe(None)
    assert (notice, said) == (None, "unsubscribed")
    assert new is not None
    assert new.email == EMAIL
    assert new.state == "unsubscribed"
    assert new.unsubscribed == NOW
    assert new.created == NOW
    assert new.since is None and new.requested is None and new.consent is None
    assert new.key


@pytest.mark.parametrize("source", ["web", "config"])
def test_an_active_subscriber_unsubscribes(source: str) -> None:
    old = stored("active", source=source)
    new, notice, said = unsubscribe(old)
    assert (notice, said) == (None, "unsubscribed")
    assert new == replace(old, state="unsubscribed", unsubscribed=NOW)


def test_unsubscribing_twice_keeps_the_first_date() -> None:
    old = stored("unsubscribed")
    assert old.unsubscribed == CREATED + DAY
    new, notice, said = unsubscribe(old)
    assert new is old
    assert (notice, said) == (None, "unsubscribed")


def test_subscribing_again_from_the_managed_page() -> None:
    old = stored("unsubscribed", choices=NEW)
    outcome = Outcome()
    new, notice = rules.resubscribe(old, now=NOW, via=VIA, outcome=outcome)
    assert notice is None and outcome.said == "confirmed"
    assert new is not None
    assert new.state == "active"
    assert new.since == NOW
    assert new.unsubscribed is None
    assert new.consent == VIA
    assert new.choices == NEW  # what they had before leaving


@pytest.mark.parametrize(
    ("old", "said"), [(None, "gone"), (stored("active"), "active")], ids=["nobody", "active"]
)
def test_subscribing_again_needs_someone_not_active(
    old: SubscriberRecord | None, said: str
) -> None:
    outcome = Outcome()
    new, notice = rules.resubscribe(old, now=NOW, via=VIA, outcome=outcome)
    assert new is old and notice is None
    assert outcome.said == said


def test_new_links_raise_the_version_and_keep_the_key() -> None:
    old = stored("active", version=4)
    outcome = Outcome()
    new, notice = rules.rotate(old, outcome=outcome)
    assert new == replace(old, version=5)
    assert notice is None and outcome.said == "rotated"
    again, _ = rules.rotate(new, outcome=outcome)
    assert again is not None and again.version == 6


def test_new_links_for_nobody() -> None:
    outcome = Outcome()
    assert rules.rotate(None, outcome=outcome) == (None, None)
    assert outcome.said == "gone"


# -- addresses and consent -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "address"),
    [
        ("lan@example.org", "lan@example.org"),
        ("  Lan@Example.ORG \t", "lan@example.org"),
        ("lan@example.org\r\n", "lan@example.org"),  # a trailing line break is trimmed
        ("\u212a@example.org", "k@example.org"),  # KELVIN SIGN: NFC makes it K
        ("a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 57 + ".org", None),  # 254
    ],
)
def test_an_address_is_stored_trimmed_nfc_and_lower_case(value: str, address: str | None) -> None:
    expected = address if address is not None else value
    assert len(expected) <= 254
    assert rules.normal_address(value) == (expected, None)


def test_normalising_comes_before_lower_casing() -> None:
    # E + COMBINING ACUTE is É under NFC, then é: one character, refused as not ASCII.
    address, problem = rules.normal_address("E\u0301@example.org")
    assert address == "\u00e9@example.org"
    assert problem is not None


@pytest.mark.parametrize(
    "value",
    [
        "lan @example.org",
        "lan@exam ple.org",
        "lan@example.org\r\nBcc: all@example.org",
        "lan\n@example.org",
        "lan@example.org\rx",
        "lan\t@example.org",
        "lan\u00a0@example.org",  # a no-break space
        "lan@@example.org",
        "lan@x@example.org",
        "lan.example.org",
        "",
        "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 58 + ".org",  # 255
        "a" * 64 + "@" + ("b" * 60 + ".") * 5 + "org",  # 373
    ],
)
def test_what_is_not_an_address_is_refused(value: str) -> None:
    _, problem = rules.normal_address(value)
    assert problem


def test_too_long_says_so() -> None:
    value = "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 58 + ".org"
    assert len(value) == 255
    _, problem = rules.normal_address(value)
    assert problem is not None and "254" in problem


def test_consent_records_when_how_and_the_words() -> None:
    record = rules.consent("web", NOW, form="xac-nhan")
    assert record == {
        "at": "2026-01-20T01:00:00+00:00",
        "via": "web",
        "text": rules.CONSENT,
        "form": "xac-nhan",
    }
    assert "đồng ý" in rules.CONSENT and "hủy đăng ký" in rules.CONSENT
    later = rules.consent("cli", NOW + timedelta(microseconds=500))
    assert later["at"] == "2026-01-20T01:00:00+00:00"  # to the second
    assert later["via"] == "cli"
