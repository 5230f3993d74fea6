"""Decoded capture lines -> items (listing teasers and full articles) and problems.

The shapes and time-zone rules are those of docs/seed-format.md: listing times are UTC,
article header times are Vietnam time. Text outside a known block is reported and skipped,
never guessed at.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from .model import VIETNAM, WEEKDAYS, Item, Location, Problem
from .text import clean, fold

_MARKERS = {
    fold("HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ"): "listing",
    fold("Asset Publisher"): "listing",
    fold("Xuất bản thông tin"): "article",
    fold("Tin liên quan"): "related",
    fold("Related news"): "related",
}

_VI_WEEKDAY = r"(?:Thứ\s+(?:Hai|Ba|Tư|Năm|Sáu|Bẩy|Bảy)|Chủ\s+Nhật)"
_EN_WEEKDAY = r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
# Monday first, as datetime.weekday() counts; the site spells Saturday "Thứ Bẩy".
_WEEKDAY_NUMBER = {
    fold(name): number
    for number, names in enumerate(
        (
            ("Thứ Hai", "Monday"),
            ("Thứ Ba", "Tuesday"),
            ("Thứ Tư", "Wednesday"),
            ("Thứ Năm", "Thursday"),
            ("Thứ Sáu", "Friday"),
            ("Thứ Bẩy", "Thứ Bảy", "Saturday"),
            ("Chủ Nhật", "Sunday"),
        )
    )
    for name in names
}
# The teaser is glued to HH:MM, and may itself start with digits: minutes are exactly two.
_VI_DATE = re.compile(
    "(" + _VI_WEEKDAY + r"),\s*ngày\s+(\d{1,2})/(\d{1,2})/(\d{4})\s+(\d{1,2}):(\d{2})(.*)\Z",
    re.IGNORECASE | re.DOTALL,
)
_EN_DATE = re.compile(
    "(" + _EN_WEEKDAY + r"),?\s+(\d{4})-(\d{1,2})-(\d{1,2})\s+(\d{1,2}):(\d{2})(.*)\Z",
    re.IGNORECASE | re.DOTALL,
)
_VI_DATE_LIKE = re.compile(_VI_WEEKDAY + r",\s*ngày\b", re.IGNORECASE)
_EN_DATE_LIKE = re.compile(_EN_WEEKDAY + r",?\s+\d", re.IGNORECASE)
# The hour is already 24-hour ("21:33 PM"); the AM/PM suffix is redundant and ignored.
_ARTICLE_DATE = re.compile(
    r"(\d{1,2})/(\d{1,2})/(\d{4})\s*\|\s*(\d{1,2}):(\d{2})(?:\s*[AP]M)?\Z", re.IGNORECASE
)
_ELLIPSIS = ("...", "…")
# The site shows at most about 200 characters of a teaser; a listing line carrying far more
# is damaged (junk appended, lines joined) and is cut back rather than trusted.
MAX_TEASER = 300
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # older dates are damage, not news
_AHEAD = timedelta(days=3653)  # nor are dates more than ten years after the build
_JUNK_RELATED = re.compile(r"\.(?:png|jpe?g|gif|webp|pdf|docx?|xlsx?)\Z", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ParseResult:
    items: tuple[Item, ...]
    problems: tuple[Problem, ...]


class _DateError(ValueError):
    pass


def _instant(
    y: str, mo: str, d: str, h: str, mi: str, *, vietnam_time: bool, latest: datetime
) -> datetime:
    try:
        local = datetime(int(y), int(mo), int(d), int(h), int(mi))
    except ValueError:
        raise _DateError(f"impossible date or time {d}/{mo}/{y} {h}:{mi}") from None
    # The calendar year first: converting a date at the calendar's edge (year 1 or 9999)
    # to another zone overflows.
    if EARLIEST.year <= local.year <= latest.year:
        zone = VIETNAM if vietnam_time else UTC
        moment = local.replace(tzinfo=zone).astimezone(UTC)
        if EARLIEST <= moment <= latest:
            return moment
    raise _DateError(
        f"date {d}/{mo}/{y} {h}:{mi} is before {EARLIEST.year} or more than ten years ahead: "
        "damage, not news"
    )


def _listing_date(line: str, latest: datetime) -> tuple[datetime, str, str | None] | None:
    """(instant, teaser, weekday warning) for a full listing date line; None if it is not one.

    Raises _DateError for a line that is clearly a date line but cut, impossible or out of
    range. The weekday printed is Vietnam's (the time is UTC); one that contradicts the date
    is reported and the item kept: the date and time are what identify it.
    """
    if m := _VI_DATE.match(line):
        weekday, d, mo, y, h, mi, rest = m.groups()
    elif m := _EN_DATE.match(line):
        weekday, y, mo, d, h, mi, rest = m.groups()
    elif _VI_DATE_LIKE.match(line) or _EN_DATE_LIKE.match(line):
        raise _DateError(f"date line cut or malformed: {line[:60]!r}")
    else:
        return None
    moment = _instant(y, mo, d, h, mi, vietnam_time=False, latest=latest)
    shown = moment.astimezone(VIETNAM).weekday()
    warning = None
    if _WEEKDAY_NUMBER.get(fold(weekday)) != shown:
        warning = (
            f"weekday {weekday!r} does not match {d}/{mo}/{y} {h}:{mi} UTC "
            f"({WEEKDAYS[shown]} in Vietnam); kept with the date and time as written"
        )
    return moment, rest, warning


def _strip_ellipsis(text: str) -> tuple[str, bool]:
    for mark in _ELLIPSIS:
        if text.endswith(mark):
            return text[: -len(mark)].rstrip(), True
    return text, False


def _teaser(title: str, text: str, *, cut: bool) -> tuple[str, bool, str | None]:
    """(teaser, cut, problem) of a listing item's text after its time."""
    # Some teasers repeat the title before the text proper. Only a repeat followed by a new
    # sentence is dropped: "<title> tại Việt Nam Chiều ..." is a photo caption, not a repeat.
    rest = text[len(title) :]
    if rest[:1] == " " and rest[1:2].isupper() and fold(text[: len(title)]) == fold(title):
        text = rest.lstrip()
    text, truncated = _strip_ellipsis(text)
    if len(text) <= MAX_TEASER:
        return text, truncated or cut, None
    # Longer than the site ever shows: junk after the site's own cut, or lines run together.
    # Keep what comes before the last cut marker within reach, else cut at a word.
    head = text[: MAX_TEASER + 3]
    marker = max(head.rfind(mark) for mark in _ELLIPSIS)
    kept = head[:marker] if marker > 0 else head[:MAX_TEASER].rsplit(" ", 1)[0]
    problem = (
        f"teaser of {len(text)} characters is longer than the site shows (about 200); "
        f"cut to {len(kept.rstrip())}"
    )
    return kept.rstrip(), True, problem


_MARKER_MAX = max(map(len, _MARKERS)) + 8


def _marker_of(line: str) -> str | None:
    return _MARKERS.get(fold(line)) if len(line) <= _MARKER_MAX else None


@dataclass
class _Parser:
    name: str
    lines: Sequence[str]  # cleaned: NFC, no control characters, white space folded
    last_line_cut: bool
    latest: datetime  # dates after this are damage
    markers: list[str | None] = field(init=False)
    items: list[Item] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    pos: int = 0

    def __post_init__(self) -> None:
        self.markers = [_marker_of(line) for line in self.lines]

    def problem(self, index: int, message: str) -> None:
        self.problems.append(Problem(self.name, index + 1, message))

    def line(self, index: int) -> str:
        return self.lines[index]

    def next_nonblank(self, index: int) -> int:
        while index < len(self.lines) and not self.lines[index]:
            index += 1
        return index

    def marker(self, index: int) -> str | None:
        return self.markers[index]

    def is_cut(self, index: int) -> bool:
        return self.last_line_cut and index == len(self.lines) - 1

    def run(self) -> ParseResult:
        first = self.next_nonblank(0)
        mode: str | None = None
        if first < len(self.lines) and self.marker(first) is None and self._starts_article(first):
            mode = "article"
        self.pos = first
        while self.pos < len(self.lines):
            self.pos = self.next_nonblank(self.pos)
            if self.pos >= len(self.lines):
                break
            found = self.marker(self.pos)
            if found is not None:
                mode = found
                self.pos += 1
                if mode == "related":
                    self._related()
                    mode = None
                continue
            if mode == "listing":
                self._listing_item()
            elif mode == "article":
                self._article()
                mode = None
            else:
                self._unknown()
        return ParseResult(tuple(self.items), tuple(self.problems))

    def _starts_article(self, index: int) -> bool:
        following = self.next_nonblank(index + 1)
        return following < len(self.lines) and bool(_ARTICLE_DATE.match(self.line(following)))

    def _unknown(self) -> None:
        start = self.pos
        self._skip_to_marker()
        self.problem(start, f"text outside any known block ({self.pos - start} lines); skipped")

    def _listing_item(self) -> None:
        index = self.pos
        title = self.line(index)
        try:
            if _listing_date(title, self.latest) is not None:
                self.problem(index, "date line with no title before it; skipped")
                self.pos = index + 1
                return
        except _DateError as exc:
            self.problem(index, f"{exc}; skipped")
            self.pos = index + 1
            return
        date_index = self.next_nonblank(index + 1)
        if date_index >= len(self.lines) or self.marker(date_index) is not None:
            self.problem(index, f"title with no date line: {title[:60]!r}; skipped")
            self.pos = date_index
            return
        try:
            parsed = _listing_date(self.line(date_index), self.latest)
        except _DateError as exc:
            self.problem(date_index, f"{exc}; item {title[:60]!r} skipped")
            self.pos = date_index + 1
            return
        if parsed is None:
            self.problem(index, f"title with no date line: {title[:60]!r}; skipped")
            self.pos = date_index
            return
        published, raw_teaser, weekday = parsed
        if weekday is not None:
            self.problem(date_index, weekday)
        summary, truncated, damaged = _teaser(title, raw_teaser, cut=self.is_cut(date_index))
        if damaged is not None:
            self.problem(date_index, damaged)
        self.items.append(
            Item(
                kind="listing",
                title=title,
                published=published,
                summary=summary,
                summary_truncated=truncated,
                content=None,
                related=(),
                source=Location(self.name, index + 1),
            )
        )
        self.pos = date_index + 1

    def _article(self) -> None:
        index = self.pos
        title = self.line(index)
        date_index = self.next_nonblank(index + 1)
        m = _ARTICLE_DATE.match(self.line(date_index)) if date_index < len(self.lines) else None
        if m is None:
            self.problem(index, f"article title with no date line: {title[:60]!r}; skipped")
            self.pos = index + 1
            self._skip_to_marker()
            return
        d, mo, y, h, mi = m.groups()
        try:
            published = _instant(y, mo, d, h, mi, vietnam_time=True, latest=self.latest)
        except _DateError as exc:
            self.problem(date_index, f"{exc}; article {title[:60]!r} skipped")
            self.pos = date_index + 1
            self._skip_to_marker()
            return
        self.pos = date_index + 1
        body: list[str] = []
        first_index = -1
        title_key = fold(title)
        while self.pos < len(self.lines) and (
            not self.line(self.pos) or self.marker(self.pos) is None
        ):
            text = self.line(self.pos)
            if text and (body or fold(text) != title_key):  # some captures repeat the title
                if not body:
                    first_index = self.pos
                body.append(text)
            self.pos += 1
        self.items.append(
            Item(
                kind="article",
                title=title,
                published=published,
                # The first paragraph is the article's own teaser, complete unless the file was cut.
                summary=body[0] if body else "",
                summary_truncated=self.is_cut(first_index),
                content=tuple(body) if body else None,
                related=self._related_after(),
                source=Location(self.name, index + 1),
            )
        )

    def _related_after(self) -> tuple[str, ...]:
        """The related list right after an article belongs to it."""
        if self.pos < len(self.lines) and self.marker(self.pos) == "related":
            self.pos += 1
            return self._related_titles()
        return ()

    def _related(self) -> None:
        start = self.pos - 1
        titles = self._related_titles()
        if titles:
            self.problem(start, "related list with no article before it; skipped")

    def _related_titles(self) -> tuple[str, ...]:
        titles: list[str] = []
        while self.pos < len(self.lines):
            text = self.line(self.pos)
            if not text:
                self.pos += 1
                continue
            if not text.startswith("-"):
                break
            title = text[1:].strip()
            if title and not _JUNK_RELATED.search(title) and not self.is_cut(self.pos):
                titles.append(title)
            self.pos += 1
        return tuple(titles)

    def _skip_to_marker(self) -> None:
        while self.pos < len(self.lines) and (
            not self.line(self.pos) or self.marker(self.pos) is None
        ):
            self.pos += 1


def parse_lines(
    name: str,
    lines: Sequence[str],
    *,
    last_line_cut: bool = False,
    now: datetime | None = None,
) -> ParseResult:
    """Items and problems of one decoded capture. Never raises on any text. Dates before
    2000 or more than ten years after `now` (the build's time) are problems, not instants."""
    latest = (now or datetime.now(UTC)) + _AHEAD
    return _Parser(name, [clean(line) for line in lines], last_line_cut, latest).run()


def parse_text(name: str, text: str, *, now: datetime | None = None) -> ParseResult:
    lines = text.split("\n")
    ends = text.endswith("\n")
    if ends:
        lines.pop()
    return parse_lines(name, lines, last_line_cut=not ends and bool(text), now=now)
