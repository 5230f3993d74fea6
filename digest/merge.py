"""Identity and merging: which items are the same article, and what the merged entry shows.

Identity is (title folded for spelling variants, published instant). The captures carry no
ids or URLs, and the same article keeps both its title and its minute-precision instant in
every shape (a listing's UTC time equals the article header's Vietnam time). The id is a
UUIDv5 of that key, so it does not depend on file names, order, lines or build time.

Merging is a maximum over candidates under a fixed order, so it is order-independent and
never degrades: a complete teaser beats a cut one, a longer one beats a shorter one, the
longest full body wins, and the stored entry is itself a candidate.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime

from .model import Entry, Item, rfc3339
from .text import fold

# Fixed forever: changing it changes every entry id and so every feed reader's state.
_NAMESPACE = uuid.UUID("6f1c7a52-2b8e-5d8e-9a51-6c0f3e1d9b47")


def entry_key(title: str, published: datetime) -> str:
    return f"{fold(title)}|{rfc3339(published)}"


def entry_id(title: str, published: datetime) -> str:
    return str(uuid.uuid5(_NAMESPACE, entry_key(title, published)))


def visible_hash(entry: Entry) -> str:
    """What a reader sees; `updated` moves only when this changes."""
    parts = [entry.title, entry.summary, "…" if entry.summary_truncated else ""]
    parts.extend(entry.content or ())
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _best_title(candidates: Iterable[tuple[bool, str]]) -> tuple[bool, str]:
    return max(candidates)  # an article's own title first, then a fixed order of spellings


def _best_summary(candidates: Iterable[tuple[str, bool]]) -> tuple[str, bool]:
    return max(candidates, key=lambda c: (not c[1], len(c[0]), c[0]))


def _best_content(candidates: Iterable[tuple[str, ...]]) -> tuple[str, ...] | None:
    found = list(candidates)
    if not found:
        return None
    return max(found, key=lambda body: (sum(map(len, body)), len(body), body))


def _related(candidates: Iterable[str]) -> tuple[str, ...]:
    by_key: dict[str, str] = {}
    for title in candidates:
        key = fold(title)
        by_key[key] = min(by_key.get(key, title), title)
    return tuple(by_key[key] for key in sorted(by_key))


def merge(existing: Entry | None, items: Sequence[Item], *, now: datetime) -> Entry:
    """The entry that `items` (all with the same id) and the stored `existing` make together."""
    if not items:
        if existing is None:
            raise ValueError("merge needs an existing entry or at least one item")
        return existing
    first = items[0]
    titles = [(item.kind == "article", item.title) for item in items]
    summaries = [(item.summary, item.summary_truncated) for item in items if item.summary]
    bodies = [item.content for item in items if item.content]
    related = [title for item in items for title in item.related]
    if existing is not None:
        titles.append((existing.title_from_article, existing.title))
        if existing.summary:
            summaries.append((existing.summary, existing.summary_truncated))
        if existing.content:
            bodies.append(existing.content)
        related.extend(existing.related)
    from_article, title = _best_title(titles)
    summary, truncated = _best_summary(summaries) if summaries else ("", False)
    merged = Entry(
        id=existing.id if existing else entry_id(first.title, first.published),
        title=title,
        title_from_article=from_article,
        published=first.published,
        summary=summary,
        summary_truncated=truncated,
        content=_best_content(bodies),
        related=_related(related),
        officials=existing.officials if existing else (),
        topics=existing.topics if existing else (),
        seen_at=existing.seen_at if existing else now,
        changed_at=existing.changed_at if existing else None,
    )
    if existing is not None and visible_hash(merged) != visible_hash(existing):
        return replace(merged, changed_at=now)
    return merged
