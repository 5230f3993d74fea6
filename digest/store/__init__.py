"""The store: entries, the publish index, and the outbox, over one database.

`open_store` is the one way in. Each domain sits behind its own Protocol (types.py): ingest
uses `store.entries`, publishing `store.index` (and entries to render), mail `store.outbox`
(and entry heads to compose). A database error surfaces as StoreError, its cause kept.
"""

from __future__ import annotations

from pathlib import Path

from .entries import SqlEntries
from .index import SqlIndex
from .outbox import SqlOutbox
from .schema import open_engine
from .types import (
    OUTBOX_STATES,
    EntryStore,
    IngestTransaction,
    OutboxRow,
    OutboxStore,
    PublishIndex,
    SourceState,
    Store,
)


class SqlStore:
    """The three domains over one SQLAlchemy engine."""

    def __init__(self, path: Path) -> None:
        self.engine = open_engine(path)
        self._entries = SqlEntries(self.engine)
        self._index = SqlIndex(self.engine)
        self._outbox = SqlOutbox(self.engine)

    @property
    def entries(self) -> EntryStore:
        return self._entries

    @property
    def index(self) -> PublishIndex:
        return self._index

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
    "EntryStore",
    "IngestTransaction",
    "OutboxRow",
    "OutboxStore",
    "PublishIndex",
    "SourceState",
    "SqlStore",
    "Store",
    "open_store",
]
