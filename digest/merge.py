"""Identity and merging: which items are the same article, and what the merged entry shows.

Identity is (title folded for spelling variants, published instant). The captures carry no
ids or URLs, and the same article keeps both its title and its minute-precision instant in
every shape (a listing's UTC time equals the article header's Vietnam time). The id is a
UUIDv5 of that key, so it does not depend on file names, order, lines or build time.

Merging never degrades an entry, and damage cannot win:

- the article body is the authority: the longest body wins, and with a body the summary is
  its first paragraph;
- without one, a stored teaser is replaced only by a longer one that *extends* it (the stored
  text, folded, is a prefix of the new one) without the site's cut marker (`...`) in the part
  it adds, and a complete stored teaser only by one the site cut. So junk after the site's
  `...`, or one extra character, never replaces a teaser; a teaser that conflicts with the
  stored one never replaces it and is reported; a teaser that is a prefix of a longer known
  text is cut, marker or not (a scraper that stopped mid-word);
- among new teasers of one build the same rules choose, in a fixed order, so the result does
  not depend on the order files arrive in.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from .model import Entry, Item, Location, Problem, rfc3339
from .text import fold

# Fixed forever: changing it changes every entry id and so every feed reader's state.
_NAMESPACE = uuid.UUID("6f1c7a52-2b8e-5d8e-9a51-6c0f3e1d9b47")
_CUT_MARKS = ("...", "…")


def entry_key(title: str, published: datetime) -> str:
    return f"{fold(title)}|{rfc3339(published)}"


def entry_id(title: str, published: datetime) -> str:
    return str(uuid.uuid5(_NAMESPACE, entry_key(title, published)))


def _visible(entry: Entry) -> tuple[object, ...]:
    """What a reader sees; `updated` moves only when this changes."""
    return entry.title, entry.summary, entry.summary_truncated, entry.content or ()


@dataclass(frozen=True, slots=True)
class Merged:
    entry: Entry
    problems: tuple[Problem, ...] = ()  # teasers that were not used, and why
    visible_change: bool = False  # the stored entry's title, summary or content changed


@dataclass(frozen=True, slots=True)
class _Teaser:
    text: str
    truncated: bool
    source: Location | None  # None: the stored one
    key: str  # folded, for prefix comparisons

    @classmethod
    def of(cls, text: str, truncated: bool, source: Location | None) -> _Teaser:
        return cls(text, truncated, source, fold(text))

    def extends(self, other: _Teaser) -> bool:
        """A longer text that starts with `other`."""
        return len(self.key) > len(other.key) and self.key.startswith(other.key)

    def grows(self, other: _Teaser) -> bool:
        """Extends `other` with no cut marker in what it adds: text the site could show."""
        added = self.key[len(other.key) :]
        return self.extends(other) and not any(mark in added for mark in _CUT_MARKS)

    def may_replace(self, other: _Teaser) -> bool:
        """Grows `other` the way captures of the site can: a complete teaser (the site showed
        all of it) only into one the site cut."""
        return self.grows(other) and (other.truncated or self.truncated)

    def rank(self) -> tuple[bool, int, str]:
        return (not self.truncated, len(self.key), self.text)


def _best_summary(
    stored: _Teaser | None, new: Sequence[_Teaser]
) -> tuple[_Teaser | None, list[Problem]]:
    """The teaser to show and the problems of the new ones not used."""
    if stored is not None:
        grown = [t for t in new if t.may_replace(stored)]
        chosen = max(grown, key=lambda t: (len(t.key), t.text), default=stored)
    elif new:
        # A teaser that extends another badly (junk after its cut marker) is damaged; of
        # the rest, those no other one may replace, in a fixed order.
        damaged = {t for t in new if any(t.extends(o) and not t.may_replace(o) for o in new)}
        sound = [t for t in new if t not in damaged] or list(new)
        tops = [t for t in sound if not any(o.may_replace(t) for o in sound)]
        chosen = max(tops or sound, key=_Teaser.rank)
    else:
        return None, []
    problems = []
    for t in new:
        if t.key == chosen.key or chosen.extends(t) or t.source is None:
            continue  # the same text, or a shorter cut of it
        why = (
            "teaser adds text after the site's cut marker '...', or to a complete teaser; not used"
            if t.extends(chosen)
            else "teaser differs from the one kept for this article; not used"
        )
        problems.append(Problem(t.source.file, t.source.line, why))
    known = [*new, *([stored] if stored else [])]
    if not chosen.truncated and any(t.grows(chosen) for t in known):
        chosen = replace(chosen, truncated=True)  # a longer text starts with it: it was cut
    return chosen, problems


def _best_title(candidates: Iterable[tuple[bool, str]]) -> tuple[bool, str]:
    return max(candidates)  # an article's own title first, then a fixed order of spellings


def _related(candidates: Iterable[str]) -> tuple[str, ...]:
    by_key: dict[str, str] = {}
    for title in candidates:
        key = fold(title)
        by_key[key] = min(by_key.get(key, title), title)
    return tuple(by_key[key] for key in sorted(by_key))


def merge(eid: str, existing: Entry | None, items: Sequence[Item], *, now: datetime) -> Merged:
    """The entry `eid` that `items` (all with that id: see entry_id) and the stored `existing`
    make together, and the problems of what was not used."""
    if not items:
        if existing is None:
            raise ValueError("merge needs an existing entry or at least one item")
        return Merged(existing)
    first = items[0]
    titles = [(item.kind == "article", item.title) for item in items]
    related = [title for item in items for title in item.related]
    # The longest body wins, the stored one included; with a body, its first paragraph is the
    # summary (an article's own lead, complete unless its file was cut there).
    articles = [
        (item.content, item.summary, item.summary_truncated) for item in items if item.content
    ]
    if existing is not None:
        titles.append((existing.title_from_article, existing.title))
        related.extend(existing.related)
        if existing.content:
            articles.append((existing.content, existing.summary, existing.summary_truncated))
    problems: list[Problem] = []
    if articles:
        content, summary, truncated = max(
            articles, key=lambda a: (sum(map(len, a[0])), len(a[0]), a[0], not a[2])
        )
    else:
        content = None
        stored = None
        if existing is not None and existing.summary:
            stored = _Teaser.of(existing.summary, existing.summary_truncated, None)
        new = [_Teaser.of(i.summary, i.summary_truncated, i.source) for i in items if i.summary]
        chosen, problems = _best_summary(stored, new)
        summary, truncated = (chosen.text, chosen.truncated) if chosen else ("", False)
    from_article, title = _best_title(titles)
    merged = Entry(
        id=eid,
        title=title,
        title_from_article=from_article,
        published=first.published,
        summary=summary,
        summary_truncated=truncated,
        content=content,
        related=_related(related),
        officials=existing.officials if existing else (),
        topics=existing.topics if existing else (),
        seen_at=existing.seen_at if existing else now,
        changed_at=existing.changed_at if existing else None,
    )
    changed = existing is not None and _visible(merged) != _visible(existing)
    if changed:
        merged = replace(merged, changed_at=now)
    return Merged(merged, tuple(sorted(problems)), changed)
