"""Reading the search box and the filters: the query language, and what a reader is told
when a search cannot run."""

from __future__ import annotations

import unicodedata
from datetime import UTC, date, datetime
from urllib.parse import parse_qs

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest.model import Phrase
from digest.search.query import MAX_LENGTH, Query, QueryError, read_query

OFFICIALS = {"dao-hong-lan", "vu-manh-ha"}
TOPICS = {"bao-hiem-y-te", "tiem-chung"}


def read(q: str = "", **more: str | list[str]) -> Query:
    params = {"q": [q], **{k: v if isinstance(v, list) else [v] for k, v in more.items()}}
    return read_query(params, officials=OFFICIALS, topics=TOPICS)


def test_words_phrases_exclusions_and_prefixes() -> None:
    query = read('Bảo "y tế cơ sở" -COVID vắc* "a bc"*')
    assert query.search.phrases == (
        Phrase(("bao",)),
        Phrase(("y", "te", "co", "so")),
        Phrase(("covid",), exclude=True),
        Phrase(("vac",), prefix=True),
        Phrase(("a", "bc"), prefix=True),
    )
    # A word with punctuation inside is its parts, in order; typographic quotes are quotes.
    assert read("covid-19").search.phrases == (Phrase(("covid", "19")),)
    assert read("“bảo hiểm” x").search.phrases == (Phrase(("bao", "hiem")), Phrase(("x",)))
    # One letter and a star would match half the words there are: it is a word.
    assert read("a*").search.phrases == (Phrase(("a",)),)


def test_spellings_a_reader_calls_the_same_read_the_same() -> None:
    spellings = ["bảo hiểm y tế", "bao hiem y te", "BẢO HIỂM Y TẾ", "Bảo  Hiểm\tY Tế"]
    spellings.append(unicodedata.normalize("NFD", "bảo hiểm y tế"))
    assert len({read(s).search for s in spellings}) == 1
    assert (
        read("khỏe hòa thủy").search == read("khoẻ hoà thuỷ").search == read("khoe hoa thuy").search
    )
    assert read("Đào").search == read("dao").search


def test_operators_of_the_database_are_words_or_nothing() -> None:
    assert read("bảo AND hiểm OR y NOT tế NEAR x").search.phrases == tuple(
        Phrase((w,)) for w in ("bao", "hiem", "y", "te", "x")
    )
    # Lower case, they are words people may look for.
    assert read("near").search.phrases == (Phrase(("near",)),)
    # Every other character only separates words: FTS5 and tsquery syntax never get through.
    assert read("x:y^z (a) {b} c|d !e").search.phrases == (
        Phrase(("x", "y", "z")),
        *(Phrase((w,)) for w in ("a", "b")),
        Phrase(("c", "d")),
        Phrase(("e",)),
    )


@pytest.mark.parametrize(
    "q", ['"', '""', "*", "NEAR", "AND OR", "-bảo", '-"y tế"', "( ) : ^", '"*"']
)
def test_a_query_with_nothing_to_find_is_told_so(q: str) -> None:
    with pytest.raises(QueryError, match="Không có từ nào để tìm"):
        read(q)


def test_an_unclosed_quote_is_closed_at_the_end_and_said() -> None:
    query = read('bảo "hiểm y')
    assert query.search.phrases == (Phrase(("bao",)), Phrase(("hiem", "y")))
    assert "ngoặc kép" in query.note
    assert read('"bảo hiểm"').note == ""


def test_a_long_query_is_refused_saying_the_limit() -> None:
    read("a" * MAX_LENGTH)
    with pytest.raises(QueryError, match=f"tối đa {MAX_LENGTH} ký tự"):
        read("a" * (MAX_LENGTH + 1))
    with pytest.raises(QueryError, match="nhiều từ quá"):
        read(" ".join(["y"] * 33))


def test_filters_and_dates() -> None:
    query = read(
        official=["vu-manh-ha", "dao-hong-lan"],
        topic="tiem-chung",
        **{"from": "2026-03-01", "to": "31/3/2026"},
    )
    assert query.search.officials == ("dao-hong-lan", "vu-manh-ha")
    assert query.search.topics == ("tiem-chung",)
    # Vietnam days: 1 March 00:00 in Hà Nội is 28 February 17:00 UTC; "to" includes its day.
    assert query.search.since == datetime(2026, 2, 28, 17, tzinfo=UTC)
    assert query.search.until == datetime(2026, 3, 31, 17, tzinfo=UTC)
    assert (query.since_day, query.until_day) == (date(2026, 3, 1), date(2026, 3, 31))
    assert not query.empty and read().empty
    # An empty choice (the form's "Tất cả") is no choice.
    assert read(official="", topic="").search.officials == ()


@pytest.mark.parametrize(
    ("params", "said"),
    [
        ({"official": "nguoi-la"}, "Không có lãnh đạo nào mang mã «nguoi-la»"),
        ({"topic": "<script>"}, "Không có chủ đề nào"),
        ({"from": "2026-02-30"}, "Từ ngày «2026-02-30» không phải một ngày"),
        ({"to": "hôm qua"}, "Đến ngày «hôm qua» không phải một ngày"),
        ({"from": "9999-12-31"}, "không phải một ngày"),
        ({"from": "2026-03-02", "to": "2026-03-01"}, "Ngày bắt đầu đang sau ngày kết thúc"),
        ({"official": [f"o{i}" for i in range(21)]}, "tối đa 20"),
    ],
)
def test_bad_filters_are_named(params: dict[str, str | list[str]], said: str) -> None:
    values = {k: v if isinstance(v, list) else [v] for k, v in params.items()}
    with pytest.raises(QueryError, match=said):
        read_query(values, officials=OFFICIALS, topics=TOPICS)


def test_one_search_is_one_url() -> None:
    a = read("y tế", topic="tiem-chung", official=["vu-manh-ha", "dao-hong-lan"], page="3")
    b = read("y tế", official=["dao-hong-lan", "vu-manh-ha"], topic="tiem-chung", page="3")
    assert a.params() == b.params()
    assert (
        a.params(page=2)
        == "q=y+t%E1%BA%BF&official=dao-hong-lan&official=vu-manh-ha&topic=tiem-chung&page=2"
    )
    again = parse_qs(a.params(page=a.page))
    assert read_query(again, officials=OFFICIALS, topics=TOPICS) == a
    # Pages out of range or not numbers are the first or the last.
    assert read("x", page="abc").page == 1
    assert read("x", page="0").page == 1
    assert read("x", page="999").page == 50


@given(st.text(max_size=600))
def test_any_text_is_a_query_or_a_reason(q: str) -> None:
    try:
        query = read(q)
    except QueryError as exc:
        assert str(exc)
        return
    for phrase in query.search.phrases:
        assert phrase.words and all(w.isalnum() and w == w.lower() for w in phrase.words)
