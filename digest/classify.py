"""Tagging: which of the Ministry's leaders take part in an entry, and what it is about.

Officials are found by name (folded, so either tone convention matches), with or without
role words and academic titles in front. A role with no name (`Bộ trưởng Bộ Y tế...` cut
before the name) is read as the one person who held that role on the entry's date, and
only when the tenure data names exactly one. A name after a Ministry role that is not in
the registry is *discovered*. Roles of other ministries or countries never count.

Topics come from phrase rules in config.toml. A topic needs a score of 3: each phrase found
in the title scores 3, in the summary 2; each body paragraph that mentions the topic scores
1, scaled down for bodies over 12 paragraphs so that a long article must come back to the
subject in a quarter of its paragraphs. So: one title hit, or a summary hit the body
confirms, or a body that keeps returning to it. A wrong topic is worse than a missing one.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime

from .config import Classification, Official
from .model import VIETNAM, Entry
from .text import clean, fold, fold_aligned, slugify

TITLE_WEIGHT, SUMMARY_WEIGHT, BODY_WEIGHT, TOPIC_THRESHOLD = 3, 2, 1, 3

# Vietnamese family names: a discovered official's name must start with one. This keeps
# `Bộ trưởng Bộ Y tế Lào Bounfeng …` and `Thứ trưởng Nhật Bản` from becoming leaders.
_SURNAMES = frozenset(
    fold(name)
    for line in (
        "Nguyễn Trần Lê Phạm Hoàng Huỳnh Phan Vũ Võ Đặng Bùi Đỗ Hồ Ngô Dương Lý Đào Đinh Mai",
        "Trịnh Lương Tạ Lưu Cao Chu Hà Thái Tô Lâm Phùng Kiều Quách Triệu Đoàn Trương La",
        "Châu Tăng Thân Hứa Nông Mạc Khổng Tống Diệp Lại Giang Tôn Vi Lục Âu Kim Bạch Văn",
        "Quan Lò Hầu Ninh Từ Khúc Doãn Đàm Nghiêm Lã Mã Trang Tiêu Chế Phương Thạch",
    )
    for name in line.split(" ")
)
# Words that stand between a role and a name: honorifics and academic titles
# (GS.TS, GS.TS., PGS.TS.BSCKII, TS.BSCK II, ThS.BS …).
_HONORIFICS = frozenset({"ông", "bà", "đồng chí", "đ/c"})
_ACADEMIC = re.compile(
    r"(?:(?:GS|PGS|TS|ThS|BS|BSCK|BSCKI|BSCKII|CKI|CKII|DS|NGND|TTND|TTƯT|II|I)\.?)+\Z"
)
_ROLE = re.compile(r"(?<!\w)(bộ trưởng|thứ trưởng(?: thường trực)?)(?!\w)")
_OUR_MINISTRY = " bộ y tế"
# Before a role, these make it a reference, not someone taking part: "Quyết định của Bộ
# trưởng", "các Bộ trưởng", "nguyên Bộ trưởng", "Thưa Bộ trưởng".
_REFERENCE_BEFORE = frozenset({"của", "các", "những", "nguyên", "cố", "thưa", "xin", "phó"})
_WORD = re.compile(r"[^\W_]+(?:\.[^\W_]+)+\.?|[^\W_]+|\S")  # GS.TS. is one word, "Lan." two
_CLAUSE_END = re.compile(r"[.;:!?…]")


@dataclass(frozen=True, slots=True)
class Discovered:
    slug: str
    name: str
    role: str


@dataclass(frozen=True, slots=True)
class Tags:
    officials: tuple[str, ...]
    topics: tuple[str, ...]
    discovered: tuple[Discovered, ...]


def _phrase_pattern(phrases: Iterable[str]) -> re.Pattern[str] | None:
    keys = sorted({_match_key(p) for p in phrases}, key=len, reverse=True)
    if not keys:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, keys)) + r")(?!\w)")


def _match_key(text: str) -> str:
    # "Việt Nam-Pháp", "Pháp – Việt" and "Pháp - Việt" are one phrase.
    return re.sub(r"\s*-\s*", "-", fold(text))


def _role_of(folded_role: str) -> str:
    if folded_role == "bộ trưởng":
        return "Bộ trưởng"
    return "Thứ trưởng Thường trực" if folded_role.endswith("thường trực") else "Thứ trưởng"


class Classifier:
    def __init__(self, rules: Classification) -> None:
        self.rules = rules
        self.fingerprint = hashlib.sha256(
            json.dumps(asdict(rules), sort_keys=True, default=str).encode()
        ).hexdigest()
        self._officials = rules.officials
        self._by_name: dict[str, Official] = {}
        for official in rules.officials:
            for name in (official.name, *official.variants):
                self._by_name[fold(name)] = official
        self._names = _phrase_pattern(self._by_name)
        self._foreign = _phrase_pattern(rules.foreign_markers)
        self._topics: list[tuple[str, list[tuple[re.Pattern[str], re.Pattern[str] | None]]]] = []
        for topic in rules.topics:
            compiled = []
            for rule in rules.rules:
                if rule.topic == topic.slug:
                    include = _phrase_pattern(rule.phrases)
                    assert include is not None  # config requires at least one phrase
                    compiled.append((include, _phrase_pattern(rule.exclude)))
            self._topics.append((topic.slug, compiled))

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
        """Officials in (text, was_cut) pairs; a name at the cut end of a text may be partial."""
        found: set[str] = set()
        discovered: list[Discovered] = []
        for raw, cut in texts:
            text = clean(raw)
            folded = fold_aligned(text)
            if self._names is not None:
                for m in self._names.finditer(folded):
                    found.add(self._by_name[m.group(0)].slug)
            for m in _ROLE.finditer(folded):
                self._role_mention(text, folded, m, day, cut, found, discovered)
        return found, discovered

    def _role_mention(
        self,
        text: str,
        folded: str,
        m: re.Match[str],
        day: date,
        cut: bool,
        found: set[str],
        discovered: list[Discovered],
    ) -> None:
        role = _role_of(m.group(1))
        end = m.end()
        ours = (
            folded.startswith(_OUR_MINISTRY, end)
            and not folded[end + len(_OUR_MINISTRY) : end + len(_OUR_MINISTRY) + 1].isalnum()
        )
        if ours:
            end += len(_OUR_MINISTRY)
        elif folded.startswith(" bộ ", end) or folded.startswith(" y tế", end):
            return  # another ministry ("Thứ trưởng Bộ Công an") or a generic "Bộ trưởng Y tế"
        window = _CLAUSE_END.split(folded[end : end + 60], maxsplit=1)[0]
        if self._foreign is not None and self._foreign.search(window):
            return  # "Bộ trưởng Bộ Y tế Lào …", "Thứ trưởng Bộ Y tế, Lao động … Nhật Bản"
        name = _name_after(text, end)
        if name is not None:
            key = fold(name)
            partial = cut and fold_aligned(text).rstrip().endswith(key)
            known = any(k.startswith(key) for k in self._by_name)  # also "Đào Hồn" cut short
            if ours and not partial and not known and key.split()[0] in _SURNAMES:
                discovered.append(Discovered(slugify(name), name, role))
            return
        if folded[end : end + 2] == " -" or folded[end : end + 4].startswith(" của"):
            return  # "Bộ trưởng Bộ Y tế của 10 nước ASEAN"
        before = folded[: m.start()].split()
        if before and before[-1] in _REFERENCE_BEFORE:
            return
        if not (ours or role == "Thứ trưởng Thường trực") or _named_before(text[: m.start()]):
            return
        holders = self.holders(role, day)
        if len(holders) == 1:
            found.add(holders[0].slug)

    # -- topics ---------------------------------------------------------------------------

    def topics(self, title: str, summary: str, body: Sequence[str]) -> list[str]:
        head = [(TITLE_WEIGHT, _match_key(title)), (SUMMARY_WEIGHT, _match_key(summary))]
        paragraphs = [_match_key(p) for p in body]
        paragraph_weight = BODY_WEIGHT * min(1.0, 4 * TOPIC_THRESHOLD / max(1, len(paragraphs)))
        # One search over everything first: most rules name nothing in most entries. Masking
        # an exclusion only removes matches (phrases start and end with letters, so a blanked
        # neighbour never makes a new word boundary), so a rule absent here scores nothing.
        everything = "\n".join([text for _, text in head] + paragraphs)
        chosen = []
        for slug, compiled in self._topics:
            score = 0.0
            mentioned: set[int] = set()
            for include, exclude in compiled:
                if not include.search(everything):
                    continue
                for weight, text in head:
                    score += weight * len(include.findall(_mask(exclude, text)))
                for index, text in enumerate(paragraphs):
                    if include.search(_mask(exclude, text)):
                        mentioned.add(index)
            if score + paragraph_weight * len(mentioned) >= TOPIC_THRESHOLD - 1e-9:
                chosen.append(slug)
        return chosen

    # -- both -----------------------------------------------------------------------------

    def tag(self, entry: Entry) -> Tags:
        body = entry.content or ()
        day = entry.published.astimezone(VIETNAM).date()
        texts = [(entry.title, False), (entry.summary, entry.summary_truncated)]
        found, discovered = self.officials([*texts, *((p, False) for p in body)], day)
        known = [o.slug for o in self._officials if o.slug in found]
        unique = {d.slug: d for d in discovered if d.slug not in found}
        return Tags(
            officials=tuple(known + sorted(unique)),
            topics=tuple(self.topics(entry.title, entry.summary, body)),
            discovered=tuple(unique[s] for s in sorted(unique)),
        )


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


def _mask(exclude: re.Pattern[str] | None, text: str) -> str:
    return exclude.sub(_blank, text) if exclude else text


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _is_name_word(word: str) -> bool:
    return word[:1].isupper() and word.isalpha() and (len(word) == 1 or word[1:].islower())


def _name_after(text: str, start: int) -> str | None:
    """The person's name right after a role (titles and honorifics skipped), if any."""
    rest = text[start:]
    if not rest.startswith(" "):
        return None
    words = _words(rest)
    i = 0
    while i < len(words) and (_ACADEMIC.match(words[i]) or fold(words[i]) in _HONORIFICS):
        i += 1
    if i + 1 < len(words) and fold(" ".join(words[i : i + 2])) in _HONORIFICS:
        i += 2
    name: list[str] = []
    while i < len(words) and _is_name_word(words[i]) and len(name) < 5:
        name.append(words[i])
        i += 1
    if not 2 <= len(name) <= 4:
        return None
    return " ".join(name)


def _named_before(text: str) -> bool:
    """Is there a person's name earlier in the clause before a role?

    "TS.BS Vũ Mạnh Hà, Ủy viên …, Thứ trưởng Thường trực" names the person already; the
    role then describes them. Erring towards "yes" can only cost a tag, never add a wrong one.
    """
    clause = _CLAUSE_END.split(text)[-1]
    previous = ""
    for word in _words(clause):
        if _is_name_word(word) and _is_name_word(previous) and fold(previous) in _SURNAMES:
            return True
        previous = word
    return False
