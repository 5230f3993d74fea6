"""Tagging: which of the Ministry's leaders take part in an entry, and what it is about.

Officials are read from the sentence, not from lists of exceptions. Every mention of a
leader (a known name, or a role such as `Bộ trưởng Bộ Y tế`) is judged by its context:

- a role followed by another ministry (`Bộ Tài chính`), by `Y tế` without `Bộ` (`Bộ trưởng Y
  tế Hung-ga-ri`), or by any capitalised word after `Bộ Y tế` that is not a Vietnamese
  person's name (a country, a nationality: `Bộ Y tế Cu-ba`, `Bộ Y tế Vương quốc Cam-pu-chia`)
  belongs to someone else; so does a composite ministry (`Bộ Y tế, Lao động và Phúc lợi`);
- a mention preceded by a reference word is not taking part: `nguyên`, `cố` (former, late),
  `Thừa lệnh`, `Thay mặt`, `của` (`Quyết định của Bộ trưởng`, `theo ủy quyền của …`), `các`,
  `Thưa`; nor is a signer (`do Bộ trưởng Bộ Y tế ký`);
- a role with no name is the one person who held it on the entry's day (tenure dates), and
  only when exactly one did: `Bộ trưởng Bộ Y tế` is the Minister, `Thứ trưởng Bộ Y tế` nobody;
  a place before a role (`tại Bệnh viện Bạch Mai, Bộ trưởng …`) is not a person's name.

A person named with our Ministry's role (`Thứ trưởng Bộ Y tế <Name>`, `<Name>, Thứ trưởng Bộ
Y tế`, `<Name> giữ chức Thứ trưởng Bộ Y tế`) who is not in the registry is *discovered* when
the name reads as a Vietnamese person's: three or four capitalised syllables of Vietnamese
shape, starting with a family name, never after a reference word. A discovered official is
matched everywhere, in every form, like a configured one, once `discover_after` entries have
named them so (one odd sentence never creates a feed).

Topics come from phrase rules: phrases that decide a topic, weak ones that suggest it,
exclusions that mask other uses of the words, and signals read from the sentence (another
country's health minister, two countries side by side). A topic needs a score of 3: a deciding
phrase in the title scores 3, in the summary 2, a weak one 1; the body adds 1, 2 or 3 when
12%, 25% or 40% of its paragraphs hold a deciding phrase, so a long article that names a
subject once in passing gets nothing for it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime

from .config import Classification, Official, Rule
from .model import VIETNAM, Entry, pickled_as_fields
from .text import clean, fold, fold_aligned, slugify

TITLE_WEIGHT, SUMMARY_WEIGHT, TOPIC_THRESHOLD = 3, 2, 3
# What a body adds, by the share of its paragraphs that name the topic: a subject the article
# sustains counts; one named once in a long article does not.
_BODY_SHARES = ((0.4, 3), (0.25, 2), (0.12, 1))

# Vietnamese family names: a discovered official's name must start with one.
_SURNAMES = frozenset(
    fold(name)
    for line in (
        "Nguyễn Trần Lê Phạm Hoàng Huỳnh Phan Vũ Võ Đặng Bùi Đỗ Hồ Ngô Dương Lý Đào Đinh Mai",
        "Trịnh Lương Tạ Lưu Cao Chu Hà Thái Tô Lâm Phùng Kiều Quách Triệu Đoàn Trương La",
        "Châu Tăng Thân Hứa Nông Mạc Khổng Tống Diệp Lại Giang Tôn Vi Lục Âu Kim Bạch Văn",
        "Quan Lò Hầu Ninh Từ Khúc Doãn Đàm Nghiêm Lã Mã Trang Tiêu Chế Phương Thạch Ông",
    )
    for name in line.split(" ")
)
# Words that stand between a role and a name: honorifics and academic titles
# (GS.TS, GS.TS., PGS.TS.BSCKII, TS.BSCK II, ThS.BS …).
_HONORIFICS = frozenset({"ông", "bà", "đồng chí", "đ/c", "đại biểu", "ngài", "tân"})
_HONORIFIC_STARTS = frozenset(h.split(" ")[0] for h in _HONORIFICS)
_ACADEMIC = re.compile(
    r"(?:(?:GS|PGS|TS|ThS|BS|BSCK|BSCKI|BSCKII|CKI|CKII|DS|NGND|TTND|TTƯT|NGƯT|II|I)\.?)+\Z"
)
_ROLES = ("bộ trưởng", "thứ trưởng", "thứ trưởng thường trực")  # found with _find_all
_OURS = re.compile(r" bộ y tế(?!\w)(?: nước cộng hòa xã hội chủ nghĩa việt nam| việt nam)?")
# Before a mention, these make it a reference to someone, not someone taking part.
_REFERENCE_ONE = frozenset(
    {"nguyên", "cố", "cựu", "của", "các", "những", "thưa", "xin", "phó", "từng"}
)
_REFERENCE_TWO = frozenset({"thừa lệnh", "thay mặt", "ủy quyền", "nguyên là", "từng là"})
# `của` after one of these nouns is an event the person leads, not a document they signed:
# "chuyến thăm của Bộ trưởng" takes part, "Quyết định của Bộ trưởng" does not.
_EVENT_NOUNS = frozenset(
    {"thăm", "công tác", "đoàn", "làm việc", "phát biểu", "tham dự", "chứng kiến", "dự"}
)
_DESCRIBING = frozenset({"là", "làm", "chức", "cương vị", "chức vụ", "vị trí", "giữ"})
# Documents a leader signs: "Bằng khen Bộ trưởng Bộ Y tế", "Quyết định Bộ trưởng".
_DOCUMENT_NOUNS = frozenset(
    {
        "quyết định", "chỉ thị", "công văn", "thông tư", "bằng khen", "giấy khen", "công điện",
        "văn bản", "thông báo", "tờ trình", "chỉ đạo", "ý kiến chỉ đạo", "lệnh", "định",
        "thị", "khen", "điện", "kết luận", "kế hoạch",
    }
)  # fmt: skip
# Right after a mention: the person signs a document ("ký kết" an agreement is taking part).
_SIGNS = re.compile(
    r"(?:,?\s+(?:đã|vừa|mới|chính thức))*\s+(?:ký(?! kết)(?!\w)|ban hành|phê duyệt)(?!\w)"
)
_ROLE_BEFORE = re.compile(r"(?:bộ trưởng|thứ trưởng(?: thường trực)?)(?: bộ y tế)?$")
# After a signer: "… do Bộ trưởng Bộ Y tế ký", "được Bộ trưởng phê duyệt".
_SIGNED = re.compile(r"\s*(?:[^\s,.;:]+\s+){0,4}?(?:ký|phê duyệt|ban hành)(?!\w)")
# Words after `Bộ Y tế` that keep it ours, or that say it is another country's.
_NOT_OURS_AFTER = ("nước", "các nước", "hai nước", "của", "bạn")
# Nouns that make the capitalised words after them a place, not a person.
_PLACE_NOUNS = frozenset(
    {
        "viện", "bệnh viện", "trường", "tâm", "tỉnh", "phố", "xã", "phường", "huyện",
        "quận", "đường", "sở", "cục", "vụ", "hội", "ty", "đoàn", "học", "khu", "làng",
        "thôn", "bản", "đảo", "tp.", "tp", "tại", "ở", "tới", "đến", "từ", "thị", "trạm",
    }
)  # fmt: skip
_WORD = re.compile(r"[^\W_]+(?:\.[^\W_]+)+\.?|[^\W_]+(?:-[^\W_]+)*|\S")  # GS.TS., Cu-ba
_TERM = re.compile(r"\w+")  # a run of word characters, as (?<!\w) and (?!\w) bound them
_CLAUSE_END = re.compile(r"[.;:!?…(\n]")
_WINDOW = 240  # characters around a mention that its reading may look at
_NEAR = 100  # characters beside a mention where the words that qualify it stand
_CAPITAL_AFTER = re.compile(r"\s+(?!Việt Nam\b)[A-ZĐ]")
# A role of our Ministry written after a name: "<Name>, Thứ trưởng Bộ Y tế", "<Name> giữ chức
# Thứ trưởng Bộ Y tế". The role is found first and what joins it to the name is read back
# from it: an expression that starts with those words tries every position of a text.
_OUR_ROLE = re.compile(r"(bộ trưởng|thứ trưởng(?: thường trực)?)" + _OURS.pattern)
_JOINS_NAME = re.compile(
    r"(?:,\s*|\s+-\s+|\s+(?:giữ chức|làm|được bổ nhiệm(?: làm| giữ chức)?)\s+)\Z"
)
_JOIN_REACH = 40  # characters: the longest join, " được bổ nhiệm giữ chức ", and room
_COMPOSITE = re.compile(r",\s*[A-ZĐ][^,.;:]{0,40}?\svà\s+[A-ZĐ]")
_HYPHEN = re.compile(r"\s*-\s*")
# "Việt Nam - Ba Lan", "Pháp – Việt": two countries side by side.
_COUNTRY_PAIR = re.compile(
    r"(?:Việt Nam|Việt)\s*[-\u2010-\u2015\u2212]\s*[A-ZĐÁÀẢÃẠÂĂÊÔƠƯ]"
    r"|[A-ZĐ][^\s,.;:]*\s*[-\u2010-\u2015\u2212]\s*(?:Việt Nam|Việt)(?!\w)"
)
# A Vietnamese syllable: onset, a vowel nucleus of one to three letters, coda. Tone marks
# are removed before the check; the vowel letters keep their shape (ă, â, ê, ô, ơ, ư).
_SYLLABLE = re.compile(
    r"(?:ngh|ng|nh|ch|gh|gi|kh|ph|qu|th|tr|[bcdđghklmnprstvx])?"
    r"[aăâeêioôơuưy]{1,3}(?:ch|ng|nh|[cmnpt])?\Z"
)
_TONE_MARKS = dict.fromkeys(map(ord, "\u0300\u0301\u0303\u0309\u0323"))


@pickled_as_fields
@dataclass(frozen=True, slots=True)
class Discovered:
    slug: str
    name: str
    role: str


@pickled_as_fields
@dataclass(frozen=True, slots=True)
class Tags:
    officials: tuple[str, ...]
    topics: tuple[str, ...]
    discovered: tuple[Discovered, ...]  # new leaders this entry names, active or not yet


# What tagging reads of an entry: title, teaser, whether the teaser was cut, paragraphs, and
# the Vietnam day (who held a role then). A plain tuple: a build hands every entry to helper
# processes to be tagged, and pickling the whole Entry (its instants, its provenance, a
# dataclass's state) cost five times as much, most of it in the process that stores.
ForTags = tuple[str, str, bool, tuple[str, ...], date]


def read_for_tags(entry: Entry) -> ForTags:
    day = entry.published.astimezone(VIETNAM).date()
    return entry.title, entry.summary, entry.summary_truncated, entry.content or (), day


@dataclass(frozen=True, slots=True)
class _Token:
    start: int
    end: int
    word: str  # as written
    key: str  # folded


def _phrase_pattern(phrases: Iterable[str]) -> re.Pattern[str] | None:
    keys = sorted({_match_key(p) for p in phrases}, key=len, reverse=True)
    if not keys:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, keys)) + r")(?!\w)")


def _match_key(text: str) -> str:
    return _match_key_of_folded(fold(text))


def _match_key_of_folded(folded: str) -> str:
    # "Việt Nam-Pháp", "Pháp – Việt" and "Pháp - Việt" are one phrase. Most text has no
    # hyphen, and the expression tries every position of it.
    return _HYPHEN.sub("-", folded) if "-" in folded else folded


def _role_of(folded_role: str) -> str:
    if folded_role == "bộ trưởng":
        return "Bộ trưởng"
    return "Thứ trưởng Thường trực" if folded_role.endswith("thường trực") else "Thứ trưởng"


def _syllable(word: str) -> bool:
    bare = unicodedata.normalize("NFD", word.lower()).translate(_TONE_MARKS)
    return bool(_SYLLABLE.match(unicodedata.normalize("NFC", bare)))


def _is_name_word(word: str) -> bool:
    return word[:1].isupper() and word.isalpha() and (len(word) == 1 or word[1:].islower())


def person_name(words: Sequence[str]) -> bool:
    """Do these words read as a Vietnamese person's name: two to four capitalised syllables
    of Vietnamese shape, the first a family name?"""
    return (
        2 <= len(words) <= 4
        and all(_is_name_word(w) and _syllable(w) for w in words)
        and fold(words[0]) in _SURNAMES
    )


class _Text:
    """One paragraph (or title, or teaser), cleaned and folded. Words are cut out only around
    a mention that has to be read, never the whole text: most paragraphs have none.

    An expression runs only on text that holds the literal words it needs ("Việt", "trưởng",
    all the words of a name or a phrase): most texts hold none of them, and a search for a
    word costs a fraction of an expression tried at every position."""

    def __init__(self, raw: str, cut: bool) -> None:
        self.text = clean(raw)
        self.folded = fold_aligned(self.text)
        self.cut = cut
        self.signals: set[str] = set()  # what reading its roles found: see config.SIGNALS
        if "Việt" in self.text and _COUNTRY_PAIR.search(self.text):
            self.signals.add("country-pair")
        self.key = _match_key_of_folded(self.folded)
        self._before: dict[int, list[str]] = {}
        self.names_at: set[int] = set()  # where the known names that stand alone start
        self.cues: dict[int, list[str]] = {}  # see _cues
        self._words: set[str] | None = None

    @property
    def words(self) -> set[str]:
        r"""Its runs of word characters (folded), as (?<!\w) and (?!\w) bound them."""
        if self._words is None:
            self._words = set(_TERM.findall(self.key))
        return self._words

    def tokens(self, start: int, end: int, last: int = 0) -> list[_Token]:
        """The words wholly inside text[start:end]; with `last`, at least the last `last` of
        them (all when there are fewer)."""
        start = max(0, start)
        if last:
            # A word never holds a space: the words after the last-th space back are the
            # same as when read from `start`.
            at = end
            for _ in range(last):
                at = self.text.rfind(" ", start, at)
                if at < 0:
                    break
            start = max(start, at)
        return [
            _Token(m.start(), m.end(), m.group(0), self.folded[m.start() : m.end()])
            for m in _WORD.finditer(self.text, start, end)
        ]

    def clause_start(self, position: int, reach: int = 0) -> int:
        """Where the clause holding `position` starts, looking back `reach` characters at
        most (default: the whole window)."""
        start = max(0, position - (reach or _WINDOW))
        found = start
        for m in _CLAUSE_END.finditer(self.folded, start, position):
            found = m.end()
        return found

    def before(self, position: int, count: int) -> list[str]:
        """Up to `count` folded words before `position`, within its clause."""
        found = self._before.get(position)
        if found is None:
            start = self.clause_start(position, _NEAR)
            found = self._before[position] = _WORD.findall(self.folded, start, position)[-12:]
        return found[-count:]

    def name_after(self, position: int) -> tuple[list[str], int, str] | None:
        """The capitalised words right after `position` (titles and honorifics skipped), where
        they end, and their folded key; None when the next word is not capitalised."""
        if not self.text[position : position + 1].isspace():
            return None
        # Words are cut one at a time: the name ends at the first word without a capital,
        # a few words in, and most of the window is never read.
        found = _WORD.finditer(self.text, position, position + _NEAR)
        m = next(found, None)
        while m is not None and (_ACADEMIC.match(m[0]) or self._key(m) in _HONORIFICS):
            m = next(found, None)
        if m is not None:
            second = next(found, None)
            if second is not None and f"{self._key(m)} {self._key(second)}" in _HONORIFICS:
                m, second = next(found, None), None
            if second is not None:
                found = itertools.chain((second,), found)
        words: list[str] = []
        end = start = m.start() if m is not None else position
        while m is not None and m[0][:1].isupper() and len(words) < 6:
            words.append(m[0])
            end = m.end()
            m = next(found, None)
        return (words, end, self.folded[start:end]) if words else None

    def _key(self, m: re.Match[str]) -> str:
        return self.folded[m.start() : m.end()]


def _cues(text: _Text, position: int) -> list[str]:
    """The folded words before the mention at `position`, in its clause, without what may
    stand between a cue and the person: honorifics, academic titles, and a role of our
    Ministry ("nguyên Bộ trưởng Bộ Y tế Nguyễn …", "do Thứ trưởng Đỗ Xuân Tuyên ký"). Kept
    on the text: a name is read for a reference and then for a signer."""
    words = text.cues.get(position)
    if words is not None:
        return words
    words = text.before(position, 12)
    while words and (words[-1] in _HONORIFICS or _ACADEMIC.match(words[-1])):
        words.pop()
    joined = " ".join(words)
    role = _ROLE_BEFORE.search(joined) if "trưởng" in joined else None
    if role is not None:
        words = joined[: role.start()].split()
    text.cues[position] = words
    return words


def _reference(text: _Text, position: int) -> bool:
    """Is the mention starting at `position` a reference (former, late, a document's
    author, someone addressed or represented), not someone taking part?"""
    words = _cues(text, position)
    if not words:
        return False
    last, two = words[-1], " ".join(words[-2:])
    if last == "của":
        return not ({" ".join(words[-3:-1]), *words[-2:-1]} & _EVENT_NOUNS)
    return (
        last in _REFERENCE_ONE
        or two in _REFERENCE_TWO
        or last in _DOCUMENT_NOUNS
        or two in _DOCUMENT_NOUNS
    )


def _described(text: _Text, position: int) -> bool:
    """ "<someone> là Bộ trưởng Bộ Y tế", "giữ cương vị Bộ trưởng": the role describes a
    person named elsewhere in the sentence (often someone of the past), it is not the agent."""
    words = text.before(position, 2)
    return bool(words) and (words[-1] in _DESCRIBING or " ".join(words) in _DESCRIBING)


def _signed(text: _Text, position: int, end: int) -> bool:
    """ "Quyết định … do Bộ trưởng Bộ Y tế ký", "Bộ trưởng Đào Hồng Lan đã ký ban hành …": the
    person as the signer of a document, not taking part in an event ("ký kết" is)."""
    if _SIGNS.match(text.folded, end):
        return True
    words = _cues(text, position)
    return bool(words) and words[-1] in ("do", "được") and bool(_SIGNED.match(text.folded, end))


class Classifier:
    def __init__(
        self, rules: Classification, discovered: Mapping[str, tuple[str, str]] | None = None
    ) -> None:
        """`discovered`: slug -> (name, role) of the leaders discovered in earlier captures
        that are matched like the registry's."""
        self.rules = rules
        self.discovered = dict(sorted((discovered or {}).items()))
        self.fingerprint = hashlib.sha256(
            json.dumps([asdict(rules), self.discovered], sort_keys=True, default=str).encode()
        ).hexdigest()
        self._officials = rules.officials
        self._by_name: dict[str, str] = {}
        for official in rules.officials:
            for name in (official.name, *official.variants):
                self._by_name[fold(name)] = official.slug
        for slug, (name, _) in self.discovered.items():
            self._by_name.setdefault(fold(name), slug)
        # Match key (as text is searched) -> slug; each key with its words.
        self._names = {_match_key(key): slug for key, slug in self._by_name.items()}
        self._name_words = [(key, frozenset(_TERM.findall(key))) for key in self._names]
        # Names that `_Text.name_after` reads from their first word as they are (not a title
        # or an honorific, two words at least): right after a role, such a name is known.
        self._plain_names = {
            key
            for key, first in ((k, k.split(" ")[0]) for k in self._names)
            if key != first
            and first not in _HONORIFIC_STARTS
            and not re.match(_ACADEMIC.pattern, first, re.IGNORECASE)
        }
        self._ignored = {fold(n) for n in rules.not_officials}
        self._topics = [
            _TopicRules.of(i, topic.slug, [r for r in rules.rules if r.topic == topic.slug])
            for i, topic in enumerate(rules.topics)
        ]
        # Each topic's phrases under one of their words: an entry's words find the few phrases
        # that may be in it. The word that fewest phrases hold, then the longest, is likely
        # the rarest in text too ("bệnh" and "y tế" are in many phrases and most entries).
        phrases = [phrase for topic in self._topics for phrase in topic.phrases]
        holding = Counter(word for phrase in phrases for word in phrase.words)
        self._phrases_by_word: dict[str, list[_Phrase]] = {}
        for phrase in phrases:
            key = min(sorted(phrase.words), key=lambda w: (holding[w], -len(w)), default="")
            self._phrases_by_word.setdefault(key, []).append(phrase)
        self._phrase_words = frozenset(self._phrases_by_word)

    # -- officials ------------------------------------------------------------------------

    def holders(self, role: str, day: date) -> list[Official]:
        """Who held `role` on `day`; a standing deputy is also a deputy."""
        accepted = {role} if role != "Thứ trưởng" else {"Thứ trưởng", "Thứ trưởng Thường trực"}
        return [
            o for o in self._officials if any(t.role in accepted and t.covers(day) for t in o.roles)
        ]

    def officials(
        self, texts: Sequence[tuple[str, bool]], day: date
    ) -> tuple[set[str], list[Discovered]]:
        """Officials taking part in (text, was_cut) pairs, and the unknown leaders named with
        our Ministry's role; a name at the cut end of a text may be partial."""
        return self._officials_in([_Text(raw, cut) for raw, cut in texts], day)

    def _officials_in(self, texts: Sequence[_Text], day: date) -> tuple[set[str], list[Discovered]]:
        found: set[str] = set()
        discovered: list[Discovered] = []
        for text in texts:
            # A name whose words are not all in the text is not in it.
            named = [key for key, words in self._name_words if words <= text.words]
            for start, end in _find_all(named, text.folded):
                key = text.folded[start:end]
                if key in self._plain_names:
                    text.names_at.add(start)
                if not (
                    _reference(text, start)
                    or _signed(text, start, end)
                    or self._former_after(text, end)
                ):
                    found.add(self._names[key])
            if "trưởng" not in text.folded:
                continue  # no role, and no leader of ours written name first
            for start, end in _find_all(_ROLES, text.folded):
                self._role(text, start, end, day, found, discovered)
            discovered.extend(self._named_before_role(text))
        return found, discovered

    def _former_after(self, text: _Text, end: int) -> bool:
        """ "<Name>, nguyên Bộ trưởng …": the apposition says the person is former."""
        rest = text.folded[end : end + 40].lstrip(" ,-–")
        return rest.startswith(("nguyên ", "cố ", "cựu "))

    def _role(
        self,
        text: _Text,
        start: int,
        end: int,
        day: date,
        found: set[str],
        discovered: list[Discovered],
    ) -> None:
        """Read the role at text.folded[start:end]."""
        role = _role_of(text.folded[start:end])
        ours = _OURS.match(text.folded, end)
        if ours:
            end = ours.end()
        elif text.folded.startswith(" y tế", end):
            if text.text[end + 6 : end + 7].isupper():
                text.signals.add("foreign-leader")  # "Bộ trưởng Y tế Hung-ga-ri"
            return  # or the generic "Bộ trưởng Y tế ASEAN": nobody of ours
        elif text.folded.startswith(" bộ ", end):
            return  # another ministry: "Thứ trưởng Bộ Công an"
        after = text.folded[end : end + 40].lstrip()
        if after.startswith(("- ", "của ", "và ")) or (
            ours and after.startswith(_NOT_OURS_AFTER) and not after.startswith("của ông")
        ):
            if ours and not after.startswith("- "):
                text.signals.add("foreign-leader")  # "… của 10 nước", "… nước bạn"
            return
        if ours and self._composite_ministry(text, end):
            text.signals.add("foreign-leader")  # "Bộ Y tế, Lao động và Phúc lợi Nhật Bản"
            return
        if end + 1 in text.names_at and text.text[end].isspace() and text.text[end + 1].isupper():
            return  # a known name (counted by the name pass): what name_after would read
        named = text.name_after(end)
        if named is not None:
            words, name_end, key = named
            if self._known_prefix(key):
                return  # a known name (counted by the name pass), or one cut short
            if ours and person_name(words) and len(words) >= 3:
                name = " ".join(words)
                partial = text.cut and not text.folded[name_end:].strip()
                if not (_reference(text, start) or partial or fold(name) in self._ignored):
                    discovered.append(Discovered(slugify(name), name, role))
            elif ours:
                text.signals.add("foreign-leader")  # "Bộ Y tế Lào", "Bộ Y tế Cộng hòa Séc"
            return  # a person after the role: someone else, or someone new
        if _reference(text, start) or _signed(text, start, end) or _described(text, start):
            return
        if not (ours or role == "Thứ trưởng Thường trực") or self._named_before(text, start):
            return
        holders = self.holders(role, day)
        if len(holders) == 1:
            found.add(holders[0].slug)

    def _composite_ministry(self, text: _Text, end: int) -> bool:
        """ ", Lao động và Phúc lợi …": a ministry of health and more, of another country."""
        return bool(_COMPOSITE.match(text.text, end))

    def _known_prefix(self, key: str) -> bool:
        """A known name (folded `key`) or one cut short ("Đào Hồn…")."""
        return any(k.startswith(key) or key.startswith(k) for k in self._by_name)

    def _named_before(self, text: _Text, position: int) -> bool:
        """Is the role an apposition of a person named just before it in the clause?

        "TS.BS Vũ Mạnh Hà, Ủy viên …, Thứ trưởng Thường trực" names the person already; the
        role then describes them. Capitalised words after a place noun (`Bệnh viện Bạch Mai`,
        `tỉnh Điện Biên`) are a place, not a person."""
        clause = text.tokens(text.clause_start(position), position)
        i = 0
        while i < len(clause):
            if _is_name_word(clause[i].word) and clause[i].key in _SURNAMES:
                j = i
                while j < len(clause) and _is_name_word(clause[j].word):
                    j += 1
                previous = clause[i - 1].key if i > 0 else ""
                two = f"{clause[i - 2].key} {previous}" if i > 1 else ""
                place = (
                    previous in _PLACE_NOUNS
                    or two in _PLACE_NOUNS
                    or (i > 0 and clause[i - 1].word[:1].isupper() and clause[i - 1].word.isalpha())
                )
                if j - i >= 2 and not place:
                    return True
                i = j
            else:
                i += 1
        return False

    def _named_before_role(self, text: _Text) -> list[Discovered]:
        """New leaders written name first: "<Name>, Thứ trưởng Bộ Y tế", "<Name> giữ chức
        Thứ trưởng Bộ Y tế"."""
        found: list[Discovered] = []
        if " bộ y tế" not in text.folded:
            return found
        for role in _OUR_ROLE.finditer(text.folded):
            m = _JOINS_NAME.search(text.folded, max(0, role.start() - _JOIN_REACH), role.start())
            if m is None:
                continue
            if _CAPITAL_AFTER.match(text.text, role.end()):
                continue  # "…, Bộ trưởng Bộ Y tế Lào"
            if self._composite_ministry(text, role.end()):
                continue
            tokens = text.tokens(m.start() - _WINDOW, m.start(), last=4)
            named: list[_Token] = []
            while tokens and _is_name_word(tokens[-1].word) and len(named) < 4:
                named.insert(0, tokens.pop())
            words = [t.word for t in named]
            if not named or not person_name(words) or _reference(text, named[0].start):
                continue
            before = text.before(named[0].start, 2)
            if before and (before[-1] in _PLACE_NOUNS or " ".join(before) in _PLACE_NOUNS):
                continue
            name = " ".join(words)
            if fold(name) in self._by_name or fold(name) in self._ignored:
                continue
            found.append(Discovered(slugify(name), name, _role_of(role.group(1))))
        return found

    # -- topics ---------------------------------------------------------------------------

    def topics(self, title: str, summary: str, body: Sequence[str]) -> list[str]:
        texts = [_Text(title, False), _Text(summary, False), *(_Text(p, False) for p in body)]
        self._officials_in(texts, date.min)  # for the signals it reads
        return self._topics_in(texts)

    def _named_phrases(self, words: set[str]) -> dict[int, list[_Phrase]]:
        """Topic -> those of its phrases whose words are all among `words`."""
        named: dict[int, list[_Phrase]] = {}
        for phrase in self._phrases_by_word.get("", ()):  # phrases without words
            named.setdefault(phrase.topic, []).append(phrase)
        for word in words & self._phrase_words:  # a set operation: most words are in none
            for phrase in self._phrases_by_word[word]:
                if phrase.words <= words:
                    named.setdefault(phrase.topic, []).append(phrase)
        return named

    def _topics_in(self, texts: Sequence[_Text]) -> list[str]:
        """Topics of (title, summary, *paragraphs): see the module's docstring."""
        title, summary, body = texts[0], texts[1], texts[2:]
        # Which phrases each text may hold (all their words are in it): a text is searched
        # for those alone.
        named_in = [self._named_phrases(t.words) for t in texts]
        signals = [t.signals for t in texts]
        # The topics that may be there at all, in the taxonomy's order.
        candidates = set().union(*named_in)
        if found := set().union(*signals):
            candidates.update(i for i, rules in enumerate(self._topics) if rules.signals & found)
        chosen = []
        for i in sorted(candidates):
            rules = self._topics[i]
            phrases = [n.get(i, ()) for n in named_in]
            if not rules.present(texts, phrases, signals):
                continue
            score = rules.score(title, phrases[0], TITLE_WEIGHT)
            score += rules.score(summary, phrases[1], SUMMARY_WEIGHT)
            mentioned = sum(rules.strong(p, n) for p, n in zip(body, phrases[2:], strict=True))
            share = mentioned / len(body) if body else 0.0
            score += next((points for least, points in _BODY_SHARES if share >= least), 0)
            if score >= TOPIC_THRESHOLD:
                chosen.append(rules.slug)
        return chosen

    # -- both -----------------------------------------------------------------------------

    def tag(self, entry: Entry) -> Tags:
        return self.tag_read(read_for_tags(entry))

    def tag_read(self, read: ForTags) -> Tags:
        """Tags of what `read_for_tags` took of an entry."""
        title, summary, truncated, body, day = read
        texts = [_Text(title, False), _Text(summary, truncated), *(_Text(p, False) for p in body)]
        found, discovered = self._officials_in(texts, day)
        known = [o.slug for o in self._officials if o.slug in found]
        active = sorted(s for s in found if s in self.discovered and s not in known)
        new = {d.slug: d for d in discovered if d.slug not in found}
        return Tags(
            officials=tuple(known + active),
            topics=tuple(self._topics_in(texts)),
            discovered=tuple(new[s] for s in sorted(new)),
        )


@dataclass(frozen=True, slots=True)
class _Phrase:
    r"""One of a topic's phrases, as its match key and the words in it. A match bounded by
    (?<!\w) and (?!\w) holds each run of word characters of the phrase as a whole run of the
    text, so a phrase whose words are not all in a text is never in it (set lookups)."""

    topic: int  # its place in the taxonomy
    key: str
    words: frozenset[str]
    strong: bool  # decides the topic; a weak phrase only suggests it

    def within(self, text: str) -> bool:
        return _within(self.key, text)


def _within(key: str, text: str) -> bool:
    """Is `key` in `text` between word boundaries? What `_phrase_pattern` finds of it, with
    `str.find`: several times faster than a regular expression of alternatives."""
    start = text.find(key)
    while start >= 0:
        if _bounded(text, start, start + len(key)):
            return True
        start = text.find(key, start + 1)
    return False


def _find_all(keys: Sequence[str], text: str) -> list[tuple[int, int]]:
    """Spans of `keys` in `text` between word boundaries, one after another: what `finditer`
    of `_phrase_pattern(keys)` finds, with `str.find` (an expression of alternatives tries
    every position of the text, and most texts hold a key or two)."""
    hits = []
    for key in keys:
        start = text.find(key)
        while start >= 0:
            end = start + len(key)
            if _bounded(text, start, end):
                hits.append((start, -end))  # at one place, the longest key: the first tried
            start = text.find(key, start + 1)
    found = []
    reach = 0
    for start, end in sorted(hits):
        if start >= reach:  # the expression goes on from where its last match ended
            found.append((start, -end))
            reach = -end
    return found


def _bounded(text: str, start: int, end: int) -> bool:
    r"""Does text[start:end] stand between word boundaries, as (?<!\w) and (?!\w) see them?"""
    return (start == 0 or not _is_word_char(text[start - 1])) and (
        end == len(text) or not _is_word_char(text[end])
    )


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"  # what \w matches in a str pattern


@dataclass(frozen=True, slots=True)
class _TopicRules:
    """One topic's rules, compiled: phrases that decide it, weak ones, exclusions, signals.
    Each method reads a text for the `phrases` whose words are all in it (see _Phrase)."""

    slug: str
    phrases: tuple[_Phrase, ...]
    strong_phrases: re.Pattern[str] | None  # read again in a text masked by the exclusions
    exclude: re.Pattern[str] | None
    excluded: tuple[str, ...]  # the exclusions' keys: most texts hold none of them
    signals: frozenset[str]

    @classmethod
    def of(cls, topic: int, slug: str, rules: Sequence[Rule]) -> _TopicRules:
        strong = [p for r in rules for p in r.phrases]
        weak = [p for r in rules for p in r.weak]
        keys = {(_match_key(p), True) for p in strong} | {(_match_key(p), False) for p in weak}
        exclude = [p for r in rules for p in r.exclude]
        return cls(
            slug,
            tuple(
                _Phrase(topic, key, frozenset(_TERM.findall(key)), decides)
                for key, decides in sorted(keys)
            ),
            _phrase_pattern(strong),
            _phrase_pattern(exclude),
            tuple(sorted({_match_key(p) for p in exclude})),
            frozenset(s for r in rules for s in r.signals),
        )

    def present(
        self,
        texts: Sequence[_Text],
        phrases: Sequence[Sequence[_Phrase]],
        signals: Sequence[set[str]],
    ) -> bool:
        """Does the entry name the topic in one of its `texts` or hold one of its signals?"""
        return any(
            p.within(t.key) for t, named in zip(texts, phrases, strict=True) for p in named
        ) or bool(self.signals and any(self.signals & s for s in signals))

    def _masked(self, text: _Text) -> str:
        # Masking an exclusion only removes matches: phrases start and end with letters, so
        # a blanked neighbour never makes a new word boundary.
        return self.exclude.sub(_blank, text.key) if self.exclude else text.key

    def strong(self, text: _Text, phrases: Sequence[_Phrase]) -> bool:
        """Does `text` hold a phrase that decides the topic, or one of its signals?"""
        if self.signals & text.signals:
            return True
        if not any(p.strong and p.within(text.key) for p in phrases):
            return False
        if self.strong_phrases is None or not any(_within(k, text.key) for k in self.excluded):
            return True  # nothing to mask
        return bool(self.strong_phrases.search(self._masked(text)))

    def score(self, text: _Text, phrases: Sequence[_Phrase], weight: int) -> int:
        """`weight` for a phrase that decides the topic, 1 for a weak one."""
        if self.strong(text, phrases):
            return weight
        # Weak phrases are read unmasked: a department's name can suggest its subject.
        return int(any(not p.strong and p.within(text.key) for p in phrases))


@dataclass(frozen=True, slots=True)
class Subject:
    """An official or a topic as listed to people: who or what, and how much there is."""

    slug: str
    name: str
    role: str
    entries: int
    latest: datetime | None
    in_config: bool


def subjects(
    rules: Classification,
    stats: Mapping[str, tuple[int, datetime]],
    discovered: Mapping[str, tuple[str, str]],
) -> tuple[list[Subject], list[Subject]]:
    """(officials, topics) with entry counts: the registry in config order, then officials
    discovered in the captures that still have entries. `stats` maps a channel key
    (`officials/<slug>`, `topics/<slug>`) to its entry count and latest entry."""

    def counted(key: str) -> tuple[int, datetime | None]:
        return stats.get(key, (0, None))

    officials = [
        Subject(o.slug, o.name, o.role, *counted(f"officials/{o.slug}"), True)
        for o in rules.officials
    ]
    known = {o.slug for o in rules.officials}
    for slug, (name, role) in sorted(discovered.items()):
        if slug not in known and f"officials/{slug}" in stats:
            officials.append(Subject(slug, name, role, *counted(f"officials/{slug}"), False))
    topics = [Subject(t.slug, t.name, "", *counted(f"topics/{t.slug}"), True) for t in rules.topics]
    return officials, topics


def _blank(match: re.Match[str]) -> str:
    """An excluded phrase's place, kept the same length so nothing else moves or joins."""
    return "\x00" * len(match.group(0))
