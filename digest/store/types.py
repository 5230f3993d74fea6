"""What each stage needs from storage: one Protocol per domain, and the rows they pass.

- EntryStore (ingest, and everyone who reads entries): sources, entries, problems, discovered
  leaders, and the build's transaction;
- PublishIndex (publish): each channel's listing, month counts, related titles, the change
  log each daemon publishes from, and the signatures of the files each published;
- SubscriberStore (the forms, the command line, mail): subscribers, their consent and links,
  and the forms' rate limit;
- OutboxStore (mail): periods and the exactly-once outbox, and the notices (confirmations);
- Nodes (the daemon): which of the daemons sharing the store ingests (the lease).

One implementation serves SQLite and PostgreSQL (store/schema.py); nothing above the store
knows which it runs on, beyond `Store.shared`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ..model import (
    Choices,
    Entry,
    EntryHead,
    Found,
    Listed,
    Location,
    Mark,
    Problem,
    Search,
    Subscriber,
)

OUTBOX_STATES = ("pending", "sending", "sent", "empty", "failed", "dead", "unknown")
SUBSCRIBER_STATES = ("pending", "active", "unsubscribed")
SOURCES = ("config", "web", "cli", "import")


@dataclass(frozen=True, slots=True)
class SourceState:
    """What the store knows of one capture: how it looked when last read."""

    name: str
    sha256: str
    size: int
    mtime_ns: int
    items: int


@dataclass(frozen=True, slots=True)
class Changes:
    """What a node has not published yet: channel -> month -> mark, the entries whose pages
    change, and the log's head they reach. Not `complete` when the log was pruned past this
    node's position (or it never published): it publishes everything."""

    months: dict[str, dict[str, Mark]]
    entries: list[str]
    since: int  # this node's position
    upto: int
    complete: bool = True


@dataclass(frozen=True, slots=True)
class NodeState:
    """One daemon's publish: its position in the change log and the log's head."""

    name: str
    seq: int
    head: int
    published: datetime  # when it last finished a publish
    oldest_unpublished: datetime | None  # when the first change it has not published was made


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One digest: a subscriber's period and where it stands."""

    subscriber: str
    period: str
    slot: datetime
    state: str
    attempts: int
    next_attempt: datetime | None
    items: int | None
    message_id: str | None
    error: str | None
    updated: datetime
    owner: int | None = None  # the process that claimed it, while `sending`


@dataclass(frozen=True, slots=True)
class SubscriberRecord:
    """A subscriber as stored: who, what they get, where they stand, and their consent."""

    email: str  # lower-cased
    key: str  # opaque, in their links
    name: str
    choices: Choices
    state: str  # pending (never confirmed) | active | unsubscribed
    source: str  # config | web | cli | import
    created: datetime
    since: datetime | None  # active since: their first digest covers what came after
    unsubscribed: datetime | None = None
    consent: Mapping[str, str] | None = None  # when, how, and the words they agreed to
    version: int = 0  # raised to revoke the manage and feed links
    requested: Choices | None = None  # a sign-up waiting for its confirmation
    expires: datetime | None = None  # when that sign-up lapses
    noticed: datetime | None = None  # when the last confirmation mail was queued
    rev: int = 0  # the store's, for writes that must not lose another's

    @property
    def subscriber(self) -> Subscriber:
        c = self.choices
        return Subscriber(
            self.email, self.name, c.schedule, c.officials, c.topics, self.key, self.version
        )


# A decision on one subscriber taken inside the store's transaction: given what is stored
# (None: nobody), what to store (None: nothing, or delete) and which notice to queue.
Decide = Callable[[SubscriberRecord | None], tuple[SubscriberRecord | None, str | None]]


@dataclass(frozen=True, slots=True)
class NoticeRow:
    """A mail that is not a digest: `kind` "confirm" or "already", to `email`."""

    id: int
    email: str
    kind: str
    created: datetime
    state: str  # pending | sending | sent | failed | dead | unknown | dropped
    attempts: int
    next_attempt: datetime | None
    message_id: str | None
    error: str | None


class IngestTransaction(Protocol):
    """One build's writes, committed together or not at all."""

    def __enter__(self) -> IngestTransaction: ...
    def __exit__(self, exc_type: object, exc: object, tb: object) -> None: ...
    def entries(self, ids: Sequence[str]) -> list[Entry]: ...
    def entry_pages(self, size: int) -> Iterator[list[Entry]]: ...
    def upsert_entries(self, new: Sequence[Entry], changed: Sequence[Entry]) -> None: ...
    def set_tags(self, tags: Sequence[Entry]) -> None: ...
    def save_source(
        self,
        state: SourceState,
        found: Iterable[tuple[Location, str]],
        bad: Sequence[Problem],
        *,
        known: bool = True,
    ) -> None: ...
    def touch_source(self, state: SourceState) -> None: ...
    def rename_source(self, old: str, state: SourceState) -> None: ...
    def forget_source(self, name: str) -> None: ...
    def add_problems(self, found: Iterable[Problem]) -> None: ...
    def set_meta(self, key: str, value: str) -> None: ...
    def add_discovered(self, found: Iterable[tuple[str, str, str, str]]) -> None: ...
    def forget_discovered_in(self, ids: Iterable[str] | None) -> None: ...
    def active_discovered(self, evidence: int) -> dict[str, tuple[str, str]]: ...


class EntryStore(Protocol):
    def source_states(self, names: Iterable[str] | None = None) -> dict[str, SourceState]: ...
    def entries(
        self, ids: Sequence[str] | None = None, *, with_sources: bool = True
    ) -> list[Entry]: ...
    def count_entries(self) -> int: ...
    def heads(self, since: datetime, until: datetime) -> list[EntryHead]: ...
    def heads_new(
        self, after: datetime, until: datetime, *, published_after: datetime | None = None
    ) -> list[EntryHead]: ...
    def head_pages(self, size: int, ids: Sequence[str]) -> Iterator[list[EntryHead]]: ...
    def problems(self) -> list[Problem]: ...
    def count_problems(self) -> int: ...
    def meta(self, key: str) -> str | None: ...
    def discovered(self) -> dict[str, tuple[str, str]]: ...
    def active_discovered(self, evidence: int) -> dict[str, tuple[str, str]]: ...
    def transaction(self) -> IngestTransaction: ...


class PublishIndex(Protocol):
    def channel_stats(self) -> dict[str, tuple[int, datetime]]: ...
    def channel_months(self, channel: str) -> list[tuple[str, int]]: ...
    def listed(
        self,
        channel: str,
        *,
        month: str | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> list[Listed]: ...
    def entries_titled(self, keys: Iterable[str]) -> dict[str, str]: ...
    def head(self) -> int: ...
    def changes(self) -> Changes: ...
    def nodes(self) -> list[NodeState]: ...
    def count_before(self, channel: str, month: str, moment: datetime) -> int: ...
    def published_state(self) -> str | None: ...
    def finish_publish(self, state: str, upto: int) -> None: ...
    def signatures(self, paths: Sequence[str]) -> dict[str, str]: ...
    def published_paths(self, prefix: str = "", *, limit: int | None = None) -> list[str]: ...
    def save_published(self, changed: Mapping[str, str], removed: Iterable[str]) -> None: ...


class SearchIndex(Protocol):
    def find(self, search: Search, *, offset: int = 0, limit: int = 20) -> Found: ...


class SubscriberStore(Protocol):
    def all(self) -> list[SubscriberRecord]: ...
    def active(self) -> list[SubscriberRecord]: ...
    def find(
        self, *, email: str | None = None, key: str | None = None
    ) -> SubscriberRecord | None: ...
    def change(self, email: str, decide: Decide, now: datetime) -> SubscriberRecord | None: ...
    def save(self, records: Sequence[SubscriberRecord]) -> None: ...
    def delete(self, emails: Iterable[str]) -> int: ...
    def expire(self, now: datetime) -> int: ...
    def hit(self, client: str, now: datetime, limit: int) -> bool: ...
    def notices_since(self, since: datetime) -> int: ...


class OutboxStore(Protocol):
    def secret(self) -> str: ...
    def last_slots(self) -> dict[str, datetime]: ...
    def add_periods(self, rows: Sequence[tuple[str, str, datetime]], now: datetime) -> None: ...
    def due(self, now: datetime) -> list[OutboxRow]: ...
    def next_retry(self) -> datetime | None: ...

    shared: bool  # PostgreSQL: several daemons deliver at once, claiming with SKIP LOCKED

    def presence(self, owner: int) -> AbstractContextManager[None]: ...
    def claim_due(
        self, now: datetime, *, owner: int, limit: int, schedule: str | None = None
    ) -> list[OutboxRow]: ...
    def release(self, owner: int, rows: Sequence[OutboxRow]) -> None: ...
    def claim(
        self,
        subscriber: str,
        period: str,
        now: datetime,
        *,
        owner: int,
        items: int | None = None,
    ) -> bool: ...
    def data_begins(
        self, subscriber: str, period: str, message_id: str, *, owner: int, items: int
    ) -> bool: ...
    def finish(
        self,
        subscriber: str,
        period: str,
        state: str,
        now: datetime,
        *,
        items: int | None = None,
        message_id: str | None = None,
        error: str | None = None,
        next_attempt: datetime | None = None,
        owner: int | None = None,
    ) -> bool: ...
    def interrupted(self) -> list[OutboxRow]: ...
    def outbox_rows(self, limit: int = 50) -> list[OutboxRow]: ...
    def outbox_counts(self) -> dict[str, int]: ...
    def notices_due(self, now: datetime) -> list[NoticeRow]: ...
    def claim_notice(self, notice: int, now: datetime) -> bool: ...
    def finish_notice(
        self,
        notice: int,
        state: str,
        now: datetime,
        *,
        message_id: str | None = None,
        error: str | None = None,
        next_attempt: datetime | None = None,
    ) -> None: ...
    def interrupted_notices(self) -> list[NoticeRow]: ...


class Nodes(Protocol):
    shared: bool
    node: str

    def take_lease(self) -> bool: ...
    def release_lease(self) -> None: ...
    def lease_holder(self) -> str | None: ...


class Store(Protocol):
    """The domains over one database."""

    shared: bool  # on PostgreSQL: several daemons may use it at once

    @property
    def entries(self) -> EntryStore: ...
    @property
    def index(self) -> PublishIndex: ...
    @property
    def search(self) -> SearchIndex: ...
    @property
    def subscribers(self) -> SubscriberStore: ...
    @property
    def outbox(self) -> OutboxStore: ...
    @property
    def nodes(self) -> Nodes: ...
    def close(self) -> None: ...
