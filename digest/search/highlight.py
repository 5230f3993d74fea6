"""Showing why an entry was found: the matched words marked in its own spelling, and a short
passage of the article around the first match.

Matching runs on `text.unmarked`, which keeps every character in its place, so a match found
without tone marks marks the text as written (`bao hiem` marks «bảo hiểm»). Everything else is
escaped: the result is HTML that Jinja2 inserts as is.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

from ..model import Phrase
from ..text import WORD, unmarked

_AROUND = 160  # characters of article shown on each side of the first match


def _spans(text: str, phrases: Sequence[Phrase]) -> list[tuple[int, int]]:
    """Where the wanted phrases occur in `text` (NFC), as sorted, non-overlapping spans."""
    words = [(m.group(), m.start(), m.end()) for m in WORD.finditer(unmarked(text))]
    found: list[tuple[int, int]] = []
    for phrase in phrases:
        if phrase.exclude:
            continue
        n = len(phrase.words)
        for i in range(len(words) - n + 1):
            if all(
                words[i + k][0] == w
                or (phrase.prefix and k == n - 1 and words[i + k][0].startswith(w))
                for k, w in enumerate(phrase.words)
            ):
                found.append((words[i][1], words[i + n - 1][2]))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(found):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def marked(text: str, phrases: Sequence[Phrase]) -> Markup:
    """`text` escaped, with each match in <mark>."""
    out: list[str] = []
    last = 0
    for start, end in _spans(text, phrases):
        out += [escape(text[last:start]), Markup("<mark>"), escape(text[start:end])]
        out.append(Markup("</mark>"))
        last = end
    out.append(escape(text[last:]))
    return Markup("").join(out)


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
