"""Who gets digests: the subscribers in the store, with config.toml's [[subscribers]] applied.

config.toml's subscribers are the operator's: their name, schedule and filters come from the
file at every run, a new block is a subscriber from then on, a removed block removes them.
An opt-out is the reader's: a config subscriber who unsubscribed stays unsubscribed, even if
their block is removed and added again. Readers who signed up on the site, and those added
with `digest subscribers`, are the store's alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from ..model import Subscriber
from ..store import SubscriberRecord, new_key

CONFIG_CONSENT = "Người quản trị thêm vào config.toml"  # what stands for consent: the operator's


@dataclass(frozen=True, slots=True)
class Roster:
    records: list[SubscriberRecord]  # everyone, config applied
    save: list[SubscriberRecord]  # what applying config changed
    delete: list[str]  # config subscribers whose block is gone

    @property
    def active(self) -> list[SubscriberRecord]:
        return [r for r in self.records if r.state == "active"]


def reconcile(
    stored: Sequence[SubscriberRecord], configured: Sequence[Subscriber], now: datetime
) -> Roster:
    by_email = {r.email: r for r in stored}
    listed = {s.email.lower() for s in configured}
    save: list[SubscriberRecord] = []
    for s in configured:
        email = s.email.lower()
        old = by_email.get(email)
        if old is None:
            new = SubscriberRecord(
                email=email,
                key=new_key(),
                name=s.name,
                choices=s.choices,
                state="active",
                source="config",
                created=now,
                since=now,
                consent={
                    "at": now.isoformat(timespec="seconds"),
                    "via": "config",
                    "text": CONFIG_CONSENT,
                },
            )
        else:
            # Listed in config: the operator's from now on; an opt-out stays one.
            state = "unsubscribed" if old.state == "unsubscribed" else "active"
            new = replace(
                old,
                name=s.name,
                choices=s.choices,
                source="config",
                state=state,
                since=old.since or now,
                requested=None,
                expires=None,
            )
        if new != old:
            save.append(new)
            by_email[email] = new
    delete = [
        r.email
        for r in by_email.values()
        if r.source == "config" and r.email not in listed and r.state != "unsubscribed"
    ]
    gone = set(delete)  # a set: removing a block of thousands must not take n² steps
    records = [r for e, r in sorted(by_email.items()) if e not in gone]
    return Roster(records, save, delete)
