"""Showing why an entry was found: the matched words marked in its own spelling, and a short
passage of the article around the first match.

Each searched word becomes an expression for all its marked forms (`text.any_marks`), run on
the text as written, so a match found without tone marks marks the text as written (`bao
hiem` marks «bảo hiểm») without folding whole articles for every page of results. Everything
else is escaped: the result is HTML that Jinja2 inserts as is.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from markupsafe import Markup, escape

from ..model import Phrase
from ..text import any_marks

_AROUND = 160  # characters of article shown on each side of the first match
_BETWEEN = r"[\W_]+"  # what separates the words of a phrase: anything but letters and digits
_WORD_REST = r"[^\W_]*"  # the rest of a word whose beginning was typed


@functools.lru_cache(maxsize=256)
def _pattern(phrases: tuple[Phrase, ...]) -> re.Pattern[str] | None:
    """The wanted phrases as one expression over the text as written: each word in any of
    its marked forms, whole words only (as search matches them), longest phrase first."""
    wanted = sorted((p for p in phrases if not p.exclude), key=lambda p: -len(p.words))
    alternatives = [
        _BETWEEN.join(map(any_marks, p.words)) + (_WORD_REST if p.prefix else "") for p in wanted
    ]
    if not alternatives:
        return None
    return re.compile(rf"(?<![^\W_])(?:{'|'.join(alternatives)})(?![^\W_])", re.IGNORECASE)


def _spans(text: str, phrases: Sequence[Phrase]) -> list[tuple[int, int]]:
    pattern = _pattern(tuple(phrases))
    return [] if pattern is None else [m.span() for m in pattern.finditer(text)]


def marked(text: str, phrases: Sequence[Phrase]) -> Markup:
    """`text` escaped, with each match in <mark>."""
    out: list[str] = []
    last = 0
    for start, end in _spans(text, phrases):
        out += [escape(text[last:start]), "<mark>", escape(text[start:end]), "</mark>"]
        last = end
    out.append(escape(text[last:]))
    return Markup("".join(out))  # noqa: S704 - every piece of the text is escaped above


def passage(paragraphs: Sequence[str], phrases: Sequence[Phrase]) -> Markup | None:
    """Around the first match in the article, cut at spaces, matches marked; None if the
    article has none."""
    for paragraph in paragraphs:
        spans = _spans(paragraph, phrases)
        if not spans:
            continue
        first, last = spans[0]
        start = max(0, first - _AROUND)
        end = min(len(paragraph), last + _AROUND)
        if start > 0:  # begin and end at a space, not inside a word
            start = paragraph.find(" ", start, first) + 1 or start
        if end < len(paragraph):
            space = paragraph.rfind(" ", last, end)
            end = space if space != -1 else end
        before = Markup("… ") if start > 0 else Markup("")
        after = Markup(" …") if end < len(paragraph) else Markup("")
        return before + marked(paragraph[start:end].strip(), phrases) + after
    return None
