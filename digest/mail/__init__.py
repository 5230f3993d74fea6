"""The mail stage: digests planned by period, composed per subscriber, delivered exactly once.

periods.py (when, and what each digest covers) -> compose.py (the message) -> outbox.py (the
exactly-once outbox service, and the daemon's mail service) -> transport.py (SMTP or Maildir);
shards.py lets several processes deliver one run; schedule.py is the timer. The daemon runs
`Sender.service` beside its watcher: nothing above this package knows how mail works.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from ..config import Config
from ..store import Store
from .outbox import Outcome, Sender, Upcoming


def make_sender(config: Config, store: Store, now: Callable[[], datetime]) -> Sender:
    """The mail stage over `store`."""
    return Sender(config, store.outbox, store.subscribers, store.entries, now)


__all__ = ["Outcome", "Sender", "Upcoming", "make_sender"]
