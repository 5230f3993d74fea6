"""Text normalisation: NFC, matching keys, search words, slugs."""

import re
import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from digest.text import (
    OTHER_WHITE_SPACE,
    any_marks,
    clean,
    fold,
    nfc,
    search_words,
    slugify,
    unmarked,
)


def test_slug_of_vietnamese_names_is_ascii() -> None:
    assert slugify("Đào Hồng Lan") == "dao-hong-lan"
    assert slugify("Nguyễn Thị Liên Hương") == "nguyen-thi-lien-huong"
    assert slugify("Đỗ Xuân Tuyên") == "do-xuan-tuyen"
    assert slugify("../../etc/passwd <script>") == "etc-passwd-script"


def test_fold_treats_both_tone_conventions_as_equal() -> None:
    assert fold("khoẻ") == fold("khỏe")
    assert fold("Hoà") == fold("hòa")
    assert fold("Thuỳ") == fold("Thùy")
    assert fold("thoả thuận") == fold("thỏa thuận")
    assert fold("Ủy ban") == fold("Uỷ ban")


def test_fold_keeps_distinct_words_distinct() -> None:
    assert fold("Hà") != fold("Hạ")
    assert fold("dịch") != fold("dịch vụ")


def test_fold_reads_nfd_dashes_quotes_and_space() -> None:
    decomposed = "Bo\u0323\u0302 Y te\u0302\u0301"  # NFD spelling of "Bộ Y tế"
    assert fold(decomposed) == fold("Bộ Y tế")
    assert fold("Việt Nam – Pháp") == fold("Việt Nam - Pháp")
    assert fold("“Mắt khoẻ”") == fold('"Mắt khỏe"')
    assert fold("  a \t b ") == "a b"


def test_clean_removes_control_characters() -> None:
    assert clean("a\x00b\x1bc\x7f") == "a b c"
    assert nfc("e\u0301") == "é"


def test_other_white_space_is_what_backslash_s_matches_besides_the_space() -> None:
    every = (chr(c) for c in range(0x110000))
    assert "".join(c for c in every if c != " " and re.match(r"\s", c)) == OTHER_WHITE_SPACE


# Every character clean must see, around words it must leave as they are.
_AWKWARD = st.text(st.sampled_from([*OTHER_WHITE_SPACE, " ", "\x00", "\x1b", "\x7f", "\x9f",
                                    "\ufffe", "a", "ạ", "\u0301", "“", "-"]))  # fmt: skip


@given(_AWKWARD)
def test_clean_is_the_same_whether_or_not_the_text_needed_it(text: str) -> None:
    # The rewrite `clean` skips for text that is already clean, done on everything.
    expected = re.sub(
        r"\s+", " ", re.sub("[\x00-\x08\x0b-\x1f\x7f-\x9f\ufffe\uffff]", " ", nfc(text))
    )
    assert clean(text) == expected.strip()
    assert clean(clean(text)) == clean(text)


def test_search_words_drop_case_marks_and_d_stroke() -> None:
    assert search_words("Bảo hiểm Y TẾ, Đào Hồng Lan; COVID-19") == [
        "bao", "hiem", "y", "te", "dao", "hong", "lan", "covid", "19",
    ]  # fmt: skip
    nfd = unicodedata.normalize("NFD", "khỏe khoẻ hòa hoà thủy thuỷ")
    assert search_words(nfd) == ["khoe", "khoe", "hoa", "hoa", "thuy", "thuy"]
    assert search_words("a_b\x00c") == ["a", "b", "c"]  # underscores and controls separate


@given(st.text())
def test_unmarked_keeps_every_character_in_its_place(text: str) -> None:
    text = unicodedata.normalize("NFC", text)
    folded = unmarked(text)
    assert len(folded) == len(text)
    for char, key in zip(text, folded, strict=True):
        if char.isascii():
            assert key == char.lower()
        base = unicodedata.normalize("NFD", char)[0]
        if "\u00c0" <= char < "\u0250" and base != char and base.isascii():
            assert key == base.lower()  # a marked Latin letter: its letter, unmarked


def test_any_marks_finds_a_folded_word_however_it_is_written() -> None:
    soi = re.compile(any_marks("soi"), re.IGNORECASE)
    assert all(soi.fullmatch(w) for w in ("sởi", "sợi", "SÓI", "Sồi", "soi"))
    assert not soi.fullmatch("sai")
    assert re.fullmatch(any_marks("dao"), "Đào", re.IGNORECASE)


@given(st.text())
def test_any_marks_agrees_with_search_words(text: str) -> None:
    text = unicodedata.normalize("NFC", text)
    for word in re.findall(r"[^\W_]+", text):
        assert re.fullmatch(any_marks(unmarked(word)), word, re.IGNORECASE), word
