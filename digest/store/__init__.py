"""The store: entries, the publish index, and the outbox, over one database.

`open_store` is the one way in. Each domain sits behind its own Protocol (types.py): ingest
uses `store.entries`, publishing `store.index` (and entries to render), the search pages
`store.search`, the forms and the command line `store.subscribers`, mail `store.outbox` (with
subscribers and entry heads). A database error surfaces as StoreError, its cause kept.
"""

from __future__ import annotations

from pathlib import Path

from .entries import SqlEntries
from .index import SqlIndex
from .nodes import SqlNodes
from .outbox import SqlOutbox
from .schema import new_key, open_engine
from .search import WINDOW as SEARCH_WINDOW
from .search import SqlSearch
from .subscribers import SqlSubscribers
from .types import (
    OUTBOX_STATES,
    SOURCES,
    SUBSCRIBER_STATES,
    Changes,
    Decide,
    EntryStore,
    IngestTransaction,
    Nodes,
    NodeState,
    NoticeRow,
    OutboxRow,
    OutboxStore,
    PublishIndex,
    SearchIndex,
    SourceState,
    Store,
    SubscriberRecord,
    SubscriberStore,
)


class SqlStore:
    """The domains over one SQLAlchemy engine, as daemon `node` sees them."""

    def __init__(self, url: str, *, node: str = "local", password: str | None = None) -> None:
        self.engine = open_engine(url, password=password, node=node)
        self.shared = self.engine.dialect.name == "postgresql"
        self._entries = SqlEntries(self.engine)
        self._index = SqlIndex(self.engine, node)
        self._search = SqlSearch(self.engine)
        self._subscribers = SqlSubscribers(self.engine)
        self._outbox = SqlOutbox(self.engine)
        self._nodes = SqlNodes(self.engine, node)

    @property
    def entries(self) -> EntryStore:
        return self._entries

    @property
    def index(self) -> PublishIndex:
        return self._index

    @property
    def search(self) -> SearchIndex:
        return self._search

    @property
    def subscribers(self) -> SubscriberStore:
        return self._subscribers

    @property
    def outbox(self) -> OutboxStore:
        return self._outbox

    @property
    def nodes(self) -> Nodes:
        return self._nodes

    def close(self) -> None:
        self._nodes.release_lease()
        self.engine.dispose()


def open_store(where: Path | str, *, node: str = "local", password: str | None = None) -> Store:
    """The store at `where` — a SQLite file's path, or a database URL (sqlite:///… or
    postgresql+psycopg://…) — created or upgraded as needed, for daemon `node`."""
    url = f"sqlite:///{where}" if isinstance(where, Path) else where
    return SqlStore(url, node=node, password=password)


__all__ = [
    "OUTBOX_STATES",
    "SEARCH_WINDOW",
    "SOURCES",
    "SUBSCRIBER_STATES",
    "Changes",
    "Decide",
    "EntryStore",
    "IngestTransaction",
    "NodeState",
    "Nodes",
    "NoticeRow",
    "OutboxRow",
    "OutboxStore",
    "PublishIndex",
    "SearchIndex",
    "SourceState",
    "SqlStore",
    "Store",
    "SubscriberRecord",
    "SubscriberStore",
    "new_key",
    "open_store",
]
