"""Periods: when digests are due, and what each one covers. Vietnam time throughout."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ..config import Digests
from ..model import VIETNAM


@dataclass(frozen=True, slots=True)
class Period:
    schedule: str  # "daily" | "weekly"
    slot: datetime  # the send time (UTC) that closes the period

    @property
    def length(self) -> timedelta:
        return timedelta(days=1 if self.schedule == "daily" else 7)

    @property
    def key(self) -> str:
        return f"{self.schedule}:{self.slot.astimezone(VIETNAM):%Y-%m-%d}"

    def label(self) -> str:
        end = self.slot.astimezone(VIETNAM)
        if self.schedule == "daily":
            return f"Ngày {end:%d/%m/%Y}"
        start = end - timedelta(days=6)
        return f"Tuần {start:%d/%m}–{end:%d/%m/%Y}"


def slots(schedule: str, digests: Digests, after: datetime, until: datetime) -> list[datetime]:
    """Send times of `schedule` in (after, until], as UTC instants."""
    at = digests.daily_at if schedule == "daily" else digests.weekly_at
    day = after.astimezone(VIETNAM).date()
    found: list[datetime] = []
    while True:
        local = datetime.combine(day, at, tzinfo=VIETNAM)
        if local > until:
            return found
        if local > after and (schedule == "daily" or local.weekday() == digests.weekly_day):
            found.append(local)
        day += timedelta(days=1)


def next_period(schedule: str, now: datetime, digests: Digests) -> Period:
    """The next period of `schedule` after `now` (what the next digest will be)."""
    upcoming = slots(schedule, digests, now, now + timedelta(days=8))
    return Period(schedule, upcoming[0])


def window(subscriber_first_seen: datetime, period: Period) -> tuple[datetime, datetime | None]:
    """(new after, published after) for a period: a subscriber's first digest holds what
    became new since they subscribed and what was published in the last period, never the
    whole history; later ones what became new since the previous period."""
    start = period.slot - period.length
    if subscriber_first_seen <= start:
        return start, None
    return subscriber_first_seen, start
