"""What a sign-up, a confirmation, a change or an opt-out does to a subscriber.

Pure decisions on one stored record (or None), run inside the store's transaction
(SubscriberStore.change). The rules that keep the forms from being used against strangers:

- a sign-up never activates anyone: only the link mailed to the address does;
- one confirmation (or "you are already subscribed") mail per address per 24 hours, whatever
  is submitted, so a flood of sign-ups of one address sends it one mail;
- the answer to the form is the same for a new, pending, active or unsubscribed address.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from ..config import address_problem
from ..model import Choices
from ..store import SubscriberRecord, new_key

QUIET = timedelta(hours=24)  # at most one confirmation mail per address in this long
# The words a reader agrees to, kept with their consent (Decree 13/2023/ND-CP, article 11).
CONSENT = (
    "Tôi đồng ý nhận bản tin hoạt động của lãnh đạo Bộ Y tế qua e-mail tại địa chỉ này. "
    "Tôi có thể đổi nội dung nhận, hủy đăng ký hoặc xóa dữ liệu của mình bất cứ lúc nào "
    "bằng đường dẫn trong mỗi thư."
)


def normal_address(value: str) -> tuple[str, str | None]:
    """The address as stored (trimmed, NFC, lower-case), and why it is not one, if not."""
    address = unicodedata.normalize("NFC", value.strip()).lower()
    return address, address_problem(address)


def consent(via: str, now: datetime, **more: str) -> Mapping[str, str]:
    """The record of consent: when, how (web, cli, import, manage), to which words."""
    return {**more, "at": now.isoformat(timespec="seconds"), "via": via, "text": CONSENT}


@dataclass
class Outcome:
    """What a decision came to, for the page that answers it."""

    said: str = ""


def sign_up(
    old: SubscriberRecord | None,
    *,
    email: str,
    choices: Choices,
    now: datetime,
    lapse: timedelta,
    may_mail: bool,
    outcome: Outcome,
) -> tuple[SubscriberRecord | None, str | None]:
    """A sign-up on the site: pending until the mailed link is followed."""
    if old is None:
        if not may_mail:
            outcome.said = "paused"
            return None, None
        outcome.said = "mailed"
        new = SubscriberRecord(
            email=email,
            key=new_key(),
            name="",
            choices=choices,
            state="pending",
            source="web",
            created=now,
            since=None,
            requested=choices,
            expires=now + lapse,
            noticed=now,
        )
        return new, "confirm"
    if (old.noticed is not None and now - old.noticed < QUIET) or not may_mail:
        outcome.said = "quiet"
        return old, None
    outcome.said = "mailed"
    if old.state == "active":  # tell the address, not the visitor: with its manage link
        return replace(old, noticed=now), "already"
    return replace(old, requested=choices, expires=now + lapse, noticed=now), "confirm"


def confirm(
    old: SubscriberRecord | None, *, now: datetime, via: Mapping[str, str], outcome: Outcome
) -> tuple[SubscriberRecord | None, str | None]:
    """The mailed link's button: the request becomes what the subscriber gets."""
    if old is None or old.requested is None or old.expires is None or old.expires < now:
        outcome.said = "active" if old is not None and old.state == "active" else "lapsed"
        return old, None
    outcome.said = "confirmed"
    return (
        replace(
            old,
            state="active",
            choices=old.requested,
            since=old.since if old.state == "active" else now,
            unsubscribed=None,
            consent=via,
            requested=None,
            expires=None,
        ),
        None,
    )


def choose(
    old: SubscriberRecord | None, *, choices: Choices, outcome: Outcome
) -> tuple[SubscriberRecord | None, str | None]:
    """The manage page's choices."""
    if old is None or old.state != "active":
        outcome.said = "inactive"
        return old, None
    if old.source == "config":  # the operator's: changed in config.toml
        outcome.said = "managed"
        return old, None
    outcome.said = "saved"
    return replace(old, choices=choices), None


def unsubscribe(
    old: SubscriberRecord | None, *, email: str, now: datetime, outcome: Outcome
) -> tuple[SubscriberRecord | None, str | None]:
    """An opt-out, from the manage page or a digest's one-click link. Remembered even for
    an address never stored: a config subscriber not yet seen stays out."""
    outcome.said = "unsubscribed"
    if old is None:
        return (
            SubscriberRecord(
                email=email,
                key=new_key(),
                name="",
                choices=Choices("daily"),
                state="unsubscribed",
                source="web",
                created=now,
                since=None,
                unsubscribed=now,
            ),
            None,
        )
    if old.state == "unsubscribed":
        return old, None
    return replace(old, state="unsubscribed", unsubscribed=now, requested=None, expires=None), None


def resubscribe(
    old: SubscriberRecord | None, *, now: datetime, via: Mapping[str, str], outcome: Outcome
) -> tuple[SubscriberRecord | None, str | None]:
    """Back in from the manage page: the link was mailed to the address, so it confirms."""
    if old is None or old.state == "active":
        outcome.said = "active" if old is not None else "gone"
        return old, None
    outcome.said = "confirmed"
    return replace(
        old,
        state="active",
        since=now,
        unsubscribed=None,
        consent=via,
        requested=None,
        expires=None,
    ), None


def rotate(
    old: SubscriberRecord | None, *, outcome: Outcome
) -> tuple[SubscriberRecord | None, str | None]:
    """New manage and feed links; the old ones stop working."""
    if old is None:
        outcome.said = "gone"
        return old, None
    outcome.said = "rotated"
    return replace(old, version=old.version + 1), None
