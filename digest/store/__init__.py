"""The store: entries, the publish index, and the outbox, over one database.

`open_store` is the one way in. Each domain sits behind its own Protocol (types.py): ingest
uses `store.entries`, publishing `store.index` (and entries to render), the forms and the
command line `store.subscribers`, mail `store.outbox` (with subscribers and entry heads). A
database error surfaces as StoreError, its cause kept.
"""

from __future__ import annotations

from pathlib import Path

from .entries import SqlEntries
from .index import SqlIndex
from .outbox import SqlOutbox
from .schema import new_key, open_engine
from .subscribers import SqlSubscribers
from .types import (
    OUTBOX_STATES,
    SOURCES,
    SUBSCRIBER_STATES,
    Decide,
    EntryStore,
    IngestTransaction,
    NoticeRow,
    OutboxRow,
    OutboxStore,
    PublishIndex,
    SourceState,
    Store,
    SubscriberRecord,
    SubscriberStore,
)


class SqlStore:
    """The four domains over one SQLAlchemy engine."""

    def __init__(self, path: Path) -> None:
        self.engine = open_engine(path)
        self._entries = SqlEntries(self.engine)
        self._index = SqlIndex(self.engine)
        self._subscribers = SqlSubscribers(self.engine)
        self._outbox = SqlOutbox(self.engine)

    @property
    def entries(self) -> EntryStore:
        return self._entries

    @property
    def index(self) -> PublishIndex:
        return self._index

    @property
    def subscribers(self) -> SubscriberStore:
        return self._subscribers

    @property
    def outbox(self) -> OutboxStore:
        return self._outbox

    def close(self) -> None:
        self.engine.dispose()


def open_store(path: Path) -> Store:
    """The store at `path`, created or upgraded as needed."""
    return SqlStore(path)


__all__ = [
    "OUTBOX_STATES",
    "SOURCES",
    "SUBSCRIBER_STATES",
    "Decide",
    "EntryStore",
    "IngestTransaction",
    "NoticeRow",
    "OutboxRow",
    "OutboxStore",
    "PublishIndex",
    "SourceState",
    "SqlStore",
    "Store",
    "SubscriberRecord",
    "SubscriberStore",
    "new_key",
    "open_store",
]
