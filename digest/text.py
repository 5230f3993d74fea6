"""Vietnamese text normalisation shared by every stage: NFC, matching keys, slugs."""

from __future__ import annotations

import functools
import re
import unicodedata

from slugify import slugify as _slugify

_TONES = ("\u0300", "\u0301", "\u0309", "\u0303", "\u0323")  # huyền, sắc, hỏi, ngã, nặng


def _tone_pairs() -> dict[str, str]:
    # Old style puts the tone on the first vowel of oa/oe/uy (hòa, khỏe, thủy), new style
    # on the second (hoà, khoẻ, thuỷ). Mapping old -> new makes both spell the same key.
    pairs: dict[str, str] = {}
    for first, second in (("o", "a"), ("o", "e"), ("u", "y")):
        for tone in _TONES:
            old = unicodedata.normalize("NFC", first + tone) + second
            new = first + unicodedata.normalize("NFC", second + tone)
            pairs[old] = new
    return pairs


_TONE_PAIRS = _tone_pairs()
_TONE_RE = re.compile("|".join(map(re.escape, _TONE_PAIRS)))
_DASHES = re.compile("[\u2010-\u2015\u2212]")
_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'", "`": "'"})
# Translating walks every character through a table: most text has no such quote.
_ANY_QUOTE = re.compile("[“”„‘’`]")
_SPACE = re.compile(r"\s+")
# C0/C1 control characters other than tab and newline cannot appear in XML 1.0 at all.
# So can't U+FFFE and U+FFFF, valid UTF-8 though they are.
_CONTROL_CHARS = "\x00-\x08\x0b-\x1f\x7f-\x9f\ufffe\uffff"
_CONTROL = re.compile(f"[{_CONTROL_CHARS}]")
# What `\s` matches besides the space (tests/test_text.py checks it against every code point).
OTHER_WHITE_SPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
# Text `clean` would change besides its ends: one search of a class, where rewriting every
# run of white space costs ten times more, and text from the parser is nearly always clean.
_UNCLEAN = re.compile(f"[{OTHER_WHITE_SPACE}{_CONTROL_CHARS}]")


def nfc(text: str) -> str:
    if unicodedata.is_normalized("NFC", text):  # nearly always: the parser stored NFC
        return text
    return unicodedata.normalize("NFC", text)


def clean(text: str) -> str:
    """NFC text without control characters and with runs of white space folded to one space."""
    text = nfc(text)
    if "  " in text or text[:1] == " " or text[-1:] == " " or _UNCLEAN.search(text):
        return _SPACE.sub(" ", _CONTROL.sub(" ", text)).strip()
    return text


# A build folds each title and teaser several times (its id, merging, the title index), and
# captures repeat them: a cache of recent keys saves most of the work.
@functools.lru_cache(maxsize=8192)
def fold(text: str) -> str:
    """A matching key: equal for spellings a reader would call the same.

    Case, NFC/NFD, the two tone-mark conventions, dash and quote variants and white space
    are folded; the diacritics themselves are kept (Hà and Hạ are different names).
    """
    return fold_aligned(clean(text))


def _lower_char(char: str) -> str:
    lowered = char.lower()
    return lowered if len(lowered) == 1 else char


def fold_aligned(text: str) -> str:
    """`fold` of already clean text, character for character: a match found in the result
    has the same span in `text`, so names can be read back with their capitals."""
    key = text.lower()
    if len(key) != len(text):  # a character whose lower case is longer (İ): keep alignment
        key = "".join(map(_lower_char, text))
    key = _TONE_RE.sub(lambda m: _TONE_PAIRS[m.group(0)], key)
    key = _DASHES.sub("-", key)
    return key.translate(_QUOTES) if _ANY_QUOTE.search(key) else key


def _unmarked() -> dict[int, str]:
    # Every precomposed Latin letter (Vietnamese uses U+00C0-U+01B0 and U+1EA0-U+1EF9) maps
    # to its base letter: one character for one, so spans stay aligned. đ is a letter of its
    # own, not d with a mark, but readers type d for it.
    table = {ord("đ"): "d", ord("Đ"): "D"}
    for code in (*range(0xC0, 0x250), *range(0x1E00, 0x1F00)):
        base = unicodedata.normalize("NFD", chr(code))[0]
        if base != chr(code) and base.isascii():
            table[code] = base
    return table


_UNMARKED = _unmarked()
# The same as a string indexed by code point: translating through a string costs half what
# a dict does (characters past its end stay as they are).
_UNMARKED_TABLE = "".join(_UNMARKED.get(c, chr(c)) for c in range(max(_UNMARKED) + 1))


def _marked_forms() -> dict[str, str]:
    forms: dict[str, set[str]] = {}
    for code, base in _UNMARKED.items():
        forms.setdefault(base.lower(), {base.lower()}).add(chr(code).lower())
    return {base: "".join(sorted(chars)) for base, chars in forms.items()}


_MARKED_FORMS = _marked_forms()  # "o" -> "oòóõôöøōŏőơǒǫǭ…ọỏốồổỗộớờởỡợ"
_WORD = re.compile(r"[^\W_]+")  # what search matches: runs of letters and digits


def any_marks(word: str) -> str:
    """A regular expression for `word` (as `search_words` gives it) however it is marked
    (`soi` matches sởi, sợi, Sói), to use with re.IGNORECASE on NFC text: where a search
    found a word is then found in the text as written, without folding the text."""
    return "".join(
        f"[{re.escape(_MARKED_FORMS[c])}]" if c in _MARKED_FORMS else re.escape(c) for c in word
    )


def unmarked(text: str) -> str:
    """Lower case without tone marks or other diacritics, đ as d, character for character
    (`Bảo hiểm` -> `bao hiem`): what search compares, so a reader may type either. `text`
    is NFC (clean); a match in the result has the same span in `text`."""
    bare = text.translate(_UNMARKED_TABLE)
    key = bare.lower()
    if len(key) != len(text):  # a character whose lower case is longer (İ): keep alignment
        key = "".join(map(_lower_char, bare))
    return key


def search_words(text: str) -> list[str]:
    """The words search indexes and looks for: `Covid-19, BẢO HIỂM` -> covid 19 bao hiem."""
    return _WORD.findall(unmarked(clean(text)))


def slugify(text: str) -> str:
    """An ASCII, lower-case, file-name-safe slug: `Đào Hồng Lan` -> `dao-hong-lan`."""
    return _slugify(nfc(text), max_length=80, word_boundary=True)


def printable(text: str) -> str:
    """`text` with every character that is not printable escaped (`\\n`, `\\x1b`, `\\u2028`):
    a file name or a setting written into a log line can then neither break the line nor
    forge another."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
