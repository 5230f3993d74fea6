"""A reader's digests as an Atom feed: one item per period, holding what their e-mail holds.

For readers who would rather follow their own selection in a feed reader than get mail. The
feed is made when asked for (a few periods, from the store's entry heads), behind a link
signed with the reader's link version: "new links" on the manage page revokes it.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta

from ..feeds import FeedDoc, FeedItem, render_atom
from ..mail import Sender
from ..mail.compose import bodies
from ..mail.periods import Period, slots
from ..model import Entry
from ..store import SubscriberRecord

ITEMS = 20  # periods in the feed
_NAMESPACE = uuid.UUID("5d8d3a52-6c4e-5b7f-9a51-0f2c8e7d4b13")  # fixed forever
_BODY = re.compile(r"<body[^>]*>(.*)</body>", re.DOTALL | re.IGNORECASE)


def digest_feed(
    sender: Sender, record: SubscriberRecord, now: datetime, *, url: str, home: str
) -> bytes:
    subscriber = record.subscriber
    schedule = subscriber.schedule
    since = record.since or now
    length = timedelta(days=1 if schedule == "daily" else 7)
    start = max(since, now - length * (ITEMS + 1))
    items = []
    for slot in reversed(slots(schedule, sender.config.digests, start, now)[-ITEMS:]):
        period = Period(schedule, slot)
        letter = sender.letter(subscriber, period, since, now)
        message = letter.message
        if message is None:
            continue  # nothing matched that period: no mail, no item
        html = bodies(message)[1]
        found = _BODY.search(html)
        subject = str(message["Subject"])
        entry = Entry(
            id=str(uuid.uuid5(_NAMESPACE, f"{record.key}|{period.key}")),
            title=subject,
            title_from_article=False,
            published=slot,
            summary=f"{len(letter.entries)} tin",
            summary_truncated=False,
            content=None,
            related=(),
            officials=(),
            topics=(),
            seen_at=slot,
            changed_at=None,
        )
        items.append(FeedItem(entry, home, (), (), html=found.group(1) if found else html))
    site = sender.config.site
    doc = FeedDoc(
        key=f"digest/{record.key}",
        title=f"Bản tin của bạn — {site.title}",
        subtitle="Các bản tin e-mail của bạn, mỗi kỳ một mục",
        site_name=site.title,
        html_url=home,
        urls={"atom": url},
        updated=max((i.entry.published for i in items), default=since),
        items=items,
    )
    return render_atom(doc)
