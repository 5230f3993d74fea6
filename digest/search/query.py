"""What a reader asked for: the search box's words and the filters, read into a `Search`.

The language (docs/search.md): words must all occur, in any order; "quoted words" must occur
together, in that order; `-word` or `-"words"` must not occur; `word*` matches words that begin
so. Case, tone marks (either convention), đ/d and NFC/NFD do not matter. Anything else is a
word: AND, OR, NOT and NEAR in capitals, the database's operators, are dropped, and every
other character only separates words, so no input reaches the database as syntax.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from urllib.parse import urlencode

from ..model import VIETNAM, Phrase, Search
from ..text import clean, search_words

MAX_LENGTH = 500  # characters of the search box
MAX_WORDS = 32
MAX_FILTERS = 20  # officials, and topics, in one search
MAX_PAGE = 50
_OPERATORS = frozenset({"AND", "OR", "NOT", "NEAR"})
_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "«": '"', "»": '"'})
_PARTS = re.compile(r'(-?)"([^"]*)("?)(\*?)|(\S+)')
_DAY = re.compile(r"(\d{4})-(\d{2})-(\d{2})|(\d{1,2})/(\d{1,2})/(\d{4})")


class QueryError(ValueError):
    """A search that cannot be run; the message is for the reader, in Vietnamese."""


@dataclass(frozen=True, slots=True)
class Query:
    """A search as the reader wrote it, and as the store runs it."""

    text: str  # the search box, cleaned
    search: Search
    since_day: date | None = None  # the date filters, Vietnam dates, both included
    until_day: date | None = None
    page: int = 1
    note: str = ""  # what was read differently from what was typed

    @property
    def empty(self) -> bool:
        s = self.search
        return not (s.phrases or s.officials or s.topics or s.since or s.until)

    def params(self, *, page: int | None = None, order: bool = True) -> str:
        """The query string that asks this again: one order of keys, so one search is one
        URL (a feed reader's subscription, a cache key)."""
        pairs: list[tuple[str, str]] = []
        if self.text:
            pairs.append(("q", self.text))
        pairs += [("official", s) for s in self.search.officials]
        pairs += [("topic", s) for s in self.search.topics]
        if self.since_day:
            pairs.append(("from", self.since_day.isoformat()))
        if self.until_day:
            pairs.append(("to", self.until_day.isoformat()))
        if order and self.search.newest_first and self.search.phrases:
            pairs.append(("sort", "date"))
        if page is not None and page > 1:
            pairs.append(("page", str(page)))
        return urlencode(pairs)

    def sorted_by(self, *, newest: bool) -> Query:
        """This search from its first page, newest first or by relevance."""
        return replace(self, search=replace(self.search, newest_first=newest), page=1)


def read_query(
    params: Mapping[str, Sequence[str]],
    *,
    officials: Collection[str],
    topics: Collection[str],
) -> Query:
    """The query string's search (`q`, `official`, `topic`, `from`, `to`, `sort`, `page`);
    QueryError says, in Vietnamese, what is wrong with it."""
    text = clean(_first(params, "q"))
    if len(text) > MAX_LENGTH:
        raise QueryError(
            f"Câu tìm dài quá ({len(text)} ký tự): tối đa {MAX_LENGTH} ký tự. "
            "Hãy giữ lại vài từ chính rồi tìm lại."
        )
    phrases, note = _phrases(text)
    if text and not any(not p.exclude for p in phrases):
        raise QueryError(
            "Không có từ nào để tìm: câu tìm chỉ có dấu, toán tử hoặc từ bị loại trừ (-từ). "
            "Hãy gõ ít nhất một từ, ví dụ: bảo hiểm y tế."
        )
    if sum(len(p.words) for p in phrases) > MAX_WORDS:
        raise QueryError(f"Câu tìm có nhiều từ quá: tối đa {MAX_WORDS} từ.")
    chosen_officials = _chosen(params, "official", officials, "lãnh đạo")
    chosen_topics = _chosen(params, "topic", topics, "chủ đề")
    since_day = _day(_first(params, "from"), "Từ ngày")
    until_day = _day(_first(params, "to"), "Đến ngày")
    if since_day and until_day and since_day > until_day:
        raise QueryError("Ngày bắt đầu đang sau ngày kết thúc: hãy đổi lại hai ngày.")
    search = Search(
        phrases=tuple(phrases),
        officials=chosen_officials,
        topics=chosen_topics,
        since=_start(since_day),
        until=_start(until_day + timedelta(days=1)) if until_day else None,
        newest_first=_first(params, "sort") == "date",
    )
    page = _first(params, "page")
    number = int(page) if page.isdigit() and len(page) < 4 else 1
    return Query(text, search, since_day, until_day, min(max(number, 1), MAX_PAGE), note)


def _first(params: Mapping[str, Sequence[str]], key: str) -> str:
    values = params.get(key) or [""]
    return values[0].strip()


def _phrases(text: str) -> tuple[list[Phrase], str]:
    phrases: list[Phrase] = []
    note = ""
    for m in _PARTS.finditer(text.translate(_QUOTES)):
        minus, quoted, closed, star, bare = m.groups()
        if bare is not None:
            if bare in _OPERATORS:
                continue
            minus, star = ("-" if bare.startswith("-") else ""), ("*" if bare.endswith("*") else "")
            quoted = bare
        elif not closed:
            note = "Thiếu dấu ngoặc kép đóng: đã tìm như có dấu đóng ở cuối câu."
        words = tuple(search_words(quoted))
        if words:
            # A prefix of one letter would match half the words there are.
            prefix = bool(star) and len(words[-1]) > 1
            phrases.append(Phrase(words, prefix=prefix, exclude=bool(minus)))
    return phrases, note


def _chosen(
    params: Mapping[str, Sequence[str]], key: str, known: Collection[str], what: str
) -> tuple[str, ...]:
    chosen = sorted({v.strip() for v in params.get(key, ()) if v.strip()})
    if len(chosen) > MAX_FILTERS:
        raise QueryError(f"Chọn nhiều {what} quá: tối đa {MAX_FILTERS}.")
    for slug in chosen:
        if slug not in known:
            shown = slug if len(slug) <= 60 else slug[:60] + "…"
            raise QueryError(f"Không có {what} nào mang mã «{shown}». Hãy chọn trong danh sách.")
    return tuple(chosen)


def _day(value: str, label: str) -> date | None:
    if not value:
        return None
    m = _DAY.fullmatch(value)
    try:
        if m is None:
            raise ValueError(value)
        if m.group(1):
            day = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        else:
            day = date(int(m.group(6)), int(m.group(5)), int(m.group(4)))
        if not 1900 <= day.year <= 2999:
            raise ValueError(value)
        return day
    except ValueError:
        shown = value if len(value) <= 30 else value[:30] + "…"
        raise QueryError(
            f"{label} «{shown}» không phải một ngày: hãy viết ngày/tháng/năm, ví dụ 01/03/2026."
        ) from None


def _start(day: date | None) -> datetime | None:
    """The instant a Vietnam day begins."""
    return None if day is None else datetime.combine(day, time(), VIETNAM)
