"""Marking matches in the text as written, escaped, and the passage of an article."""

from __future__ import annotations

from digest.model import Phrase
from digest.search.highlight import marked, passage


def test_matches_are_marked_in_their_own_spelling() -> None:
    text = "Bộ trưởng Đào Hồng Lan: BẢO HIỂM Y TẾ cho người dân, bảo vệ sức khoẻ"
    found = marked(text, [Phrase(("bao", "hiem", "y", "te")), Phrase(("dao",)), Phrase(("khoe",))])
    assert found == (
        "Bộ trưởng <mark>Đào</mark> Hồng Lan: <mark>BẢO HIỂM Y TẾ</mark> cho người dân, "
        "bảo vệ sức <mark>khoẻ</mark>"
    )


def test_a_phrase_is_marked_only_where_its_words_are_together() -> None:
    assert marked("y tế bảo hiểm, bảo hiểm y tế", [Phrase(("bao", "hiem", "y", "te"))]) == (
        "y tế bảo hiểm, <mark>bảo hiểm y tế</mark>"
    )
    assert marked("vắc xin, vaccine", [Phrase(("vac",), prefix=True)]) == (
        "<mark>vắc</mark> xin, <mark>vaccine</mark>"
    )
    # Excluded words are not why an entry was found.
    assert marked("covid và sởi", [Phrase(("soi",)), Phrase(("covid",), exclude=True)]) == (
        "covid và <mark>sởi</mark>"
    )


def test_everything_else_is_escaped() -> None:
    found = marked('<script>alert("x")</script> & y', [Phrase(("y",))])
    assert found == "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; <mark>y</mark>"


def test_a_letter_whose_lower_case_is_longer_does_not_shift_the_marks() -> None:
    # "İ".lower() is two characters: the folded text must still line up with the text.
    assert marked("İstanbul và bảo hiểm", [Phrase(("bao", "hiem"))]) == (
        "İstanbul và <mark>bảo hiểm</mark>"
    )


def test_the_passage_is_around_the_first_match_and_cut_at_spaces() -> None:
    before = " ".join(f"từ{i}" for i in range(100))
    after = " ".join(f"chữ{i}" for i in range(100))
    body = ["Mở đầu không có gì.", f"{before} quỹ bảo hiểm y tế {after}"]
    shown = passage(body, [Phrase(("bao", "hiem"))])
    assert shown is not None
    assert shown.startswith("… ") and shown.endswith(" …")
    assert "quỹ <mark>bảo hiểm</mark> y tế" in shown
    words = str(shown).removeprefix("… ").removesuffix(" …").split()
    assert words[0].startswith("từ") and words[-1].startswith("chữ")  # whole words only
    assert len(shown) < 500
    assert passage(["không khớp"], [Phrase(("bao",))]) is None
