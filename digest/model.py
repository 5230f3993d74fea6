"""The data passed between stages. All frozen; instants are aware and in UTC."""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo

from .text import printable

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")


_T = TypeVar("_T")


def pickled_as_fields(cls: type[_T]) -> type[_T]:
    """Pickle instances of the slots dataclass `cls` as its class and its field values. A
    build passes hundreds of thousands of them between processes, and the dataclass's own
    pickling of slots looks its fields up again for each object: 200,000 items took 2.65 s
    to pickle and 2.22 s to unpickle, 1.17 and 1.57 s this way."""
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    if len(names) < 2:
        raise TypeError(
            f"{cls.__name__}: needs two fields or more (attrgetter gives one value alone)"
        )
    values = operator.attrgetter(*names)

    def __reduce__(self: _T) -> tuple[type[_T], tuple[Any, ...]]:
        return cls, values(self)

    cls.__reduce__ = __reduce__  # type: ignore[assignment,method-assign]
    return cls


@pickled_as_fields
@dataclass(frozen=True, slots=True, order=True)
class Location:
    file: str
    line: int


@pickled_as_fields
@dataclass(frozen=True, slots=True, order=True)
class Problem:
    """Something wrong with the input, reported as `path:line: message` and never fatal."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{printable(self.file)}:{self.line}: {printable(self.message)}"


@pickled_as_fields
@dataclass(frozen=True, slots=True)
class Item:
    """One occurrence of an article in one capture: a listing item or a full article."""

    kind: Literal["listing", "article"]
    title: str
    published: datetime
    summary: str
    summary_truncated: bool
    content: tuple[str, ...] | None
    related: tuple[str, ...]
    source: Location


@dataclass(frozen=True, slots=True)
class Entry:
    """One article as readers see it, merged from every item that shows it."""

    id: str
    title: str
    title_from_article: bool
    published: datetime
    summary: str
    summary_truncated: bool
    content: tuple[str, ...] | None
    related: tuple[str, ...]
    officials: tuple[str, ...]
    topics: tuple[str, ...]
    seen_at: datetime  # when this service first stored it
    changed_at: datetime | None  # last time its visible text changed after first being stored
    sources: tuple[Location, ...] = ()

    @property
    def updated(self) -> datetime:
        if self.changed_at is None:
            return self.published
        return max(self.published, self.changed_at)


@dataclass(frozen=True, slots=True)
class Choices:
    """What a subscriber gets: a schedule and filters (empty: everything)."""

    schedule: str  # "daily" | "weekly"
    officials: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Subscriber:
    """Who a digest goes to and what it holds."""

    email: str
    name: str
    schedule: str  # "daily" | "weekly"
    officials: tuple[str, ...]  # empty: every official
    topics: tuple[str, ...]  # empty: every topic
    key: str = ""  # opaque, in the reader's links instead of the address ("" until stored)
    version: int = 0  # raised to revoke the reader's manage and feed links

    @property
    def choices(self) -> Choices:
        return Choices(self.schedule, self.officials, self.topics)


@dataclass(frozen=True, slots=True)
class EntryHead:
    """An entry without its body: enough to decide what to publish and to list it."""

    id: str
    title: str
    published: datetime
    updated: datetime
    summary: str
    summary_truncated: bool
    related: tuple[str, ...]
    officials: tuple[str, ...]
    topics: tuple[str, ...]
    rev: str  # changes whenever anything a page or feed shows of the entry changes


@dataclass(frozen=True, slots=True)
class Listed:
    """An entry's place in one channel: what planning a feed or page needs, no text."""

    id: str
    published: datetime
    updated: datetime
    rev: str


@dataclass(frozen=True, slots=True)
class Mark:
    """What changed in one month of one channel since the last publish: entries published
    from `first` to `last`, and whether entries came or went (moving the later ones)."""

    first: datetime
    last: datetime
    shifted: bool


# (stage, done, total, entries so far): called as a long build or publish goes on.
Progress = Callable[[str, int, int, int], None]


def no_progress(_stage: str, _done: int, _total: int, _entries: int) -> None:
    return None


WEEKDAYS = ("Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ Nhật")


@dataclass(frozen=True, slots=True)
class Phrase:
    """Words that must follow one another (one word is a phrase of one), as search folds
    them (`text.search_words`); the last may match as a prefix, and an excluded phrase must
    not occur."""

    words: tuple[str, ...]
    prefix: bool = False
    exclude: bool = False


@dataclass(frozen=True, slots=True)
class Search:
    """A search, or a combination without words: every phrase (none: every entry), any of
    the officials and any of the topics when given, published in [since, until)."""

    phrases: tuple[Phrase, ...] = ()
    officials: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    newest_first: bool = False  # else by relevance, newest first among equals


@dataclass(frozen=True, slots=True)
class Found:
    """One page of a search's results, and how many there are in all (when `more`, at
    least that many: counting stops there)."""

    ids: tuple[str, ...]
    total: int
    more: bool = False


# A publish shows each instant on many pages and feeds (its entry's page, each archive and
# channel page that lists it, related lists): the text of recent instants is kept.
@functools.lru_cache(maxsize=16384)
def vietnam_time(moment: datetime) -> str:
    local = moment.astimezone(VIETNAM)
    return f"{WEEKDAYS[local.weekday()]}, {local:%d/%m/%Y %H:%M}"


def month_of(moment: datetime) -> str:
    """The Vietnam calendar month of an instant, `YYYY-MM`: what monthly archives group by."""
    local = moment.astimezone(VIETNAM)
    return f"{local.year:04d}-{local.month:02d}"


def month_span(month: str) -> tuple[datetime, datetime]:
    """The instants of a `month_of` month: from its first (included) to the next month's."""
    year, number = int(month[:4]), int(month[5:7])
    after = (year + number // 12, number % 12 + 1)
    return datetime(year, number, 1, tzinfo=VIETNAM), datetime(*after, 1, tzinfo=VIETNAM)


def channels_of(officials: Sequence[str], topics: Sequence[str]) -> list[str]:
    """Keys of the channels an entry is listed in: `all`, then each official and topic."""
    return ["all", *(f"officials/{s}" for s in officials), *(f"topics/{s}" for s in topics)]


def utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: every instant must carry its time zone")
    return moment.astimezone(UTC)


@functools.lru_cache(maxsize=16384)
def rfc3339(moment: datetime) -> str:
    return utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")
