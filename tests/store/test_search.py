"""Search in the store, on SQLite (FTS5) and PostgreSQL (tsvector): folding, phrases,
exclusions, prefixes, filters, dates, ranking, paging, and the index kept with the entries."""

from __future__ import annotations

import unicodedata
import zlib
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from support import stored_entry

from digest.errors import StoreError
from digest.model import Entry, Phrase, Search
from digest.store import Store, open_store
from digest.store.schema import SCHEMA_VERSION
from digest.text import search_words

pytestmark = pytest.mark.both_engines

NOW = datetime(2026, 3, 20, 8, 0, tzinfo=UTC)


def entry(
    title: str,
    day: int,
    *,
    summary: str = "",
    body: Sequence[str] | None = None,
    officials: tuple[str, ...] = (),
    topics: tuple[str, ...] = (),
) -> Entry:
    made = stored_entry(
        title,
        datetime(2026, 3, day, 2, 0, tzinfo=UTC),
        seen_at=NOW,
        officials=officials,
        topics=topics,
    )
    return replace(made, summary=summary, content=tuple(body) if body is not None else None)


# Each text written so that which query finds it can be read off by eye.
INSURANCE = entry(
    "Bộ trưởng Đào Hồng Lan làm việc về bảo hiểm y tế",
    2,
    summary="Quỹ bảo hiểm y tế năm 2026.",
    officials=("dao-hong-lan",),
    topics=("bao-hiem-y-te",),
)
SCATTERED = entry(
    "Y tế cơ sở và bảo hiểm xã hội",  # every word of «bảo hiểm y tế», not as a phrase
    5,
    summary="Hiểm họa thiên tai.",
    officials=("vu-manh-ha",),
)
HEALTH_OLD = entry("Chăm sóc sức khỏe người cao tuổi", 7, topics=("dan-so",))  # old tone style
HEALTH_NEW = entry("Nâng cao sức khoẻ học đường", 9, officials=("dao-hong-lan",))  # new style
ARTICLE = entry(
    "Thứ trưởng thăm bệnh viện",
    11,
    summary="Đoàn công tác đến Điện Biên.",
    body=["Đoàn kiểm tra công tác tiêm chủng vắc xin sởi.", "Bệnh viện đã chuẩn bị đủ thuốc."],
    officials=("vu-manh-ha",),
    topics=("tiem-chung",),
)
COVID = entry("Phòng chống COVID-19 mùa mưa", 13, summary="Covid và sốt xuất huyết.")
ALL = [INSURANCE, SCATTERED, HEALTH_OLD, HEALTH_NEW, ARTICLE, COVID]


def words(text: str, *, prefix: bool = False, exclude: bool = False) -> Phrase:
    return Phrase(tuple(search_words(text)), prefix=prefix, exclude=exclude)


def find(store: Store, *phrases: Phrase, **filters: object) -> set[str]:
    found = store.search.find(Search(phrases=phrases, **filters), limit=100)  # type: ignore[arg-type]
    assert found.total == len(found.ids)
    return set(found.ids)


def ids(*entries: Entry) -> set[str]:
    return {e.id for e in entries}


@pytest.fixture
def filled(store: Store) -> Store:
    with store.entries.transaction() as tx:
        tx.upsert_entries(ALL, [])
    return store


def test_case_tone_marks_and_their_conventions_do_not_matter(filled: Store) -> None:
    spellings = [
        "bảo hiểm y tế",
        "bao hiem y te",
        "BẢO HIỂM Y TẾ",
        unicodedata.normalize("NFD", "bảo hiểm y tế"),
    ]
    found = [find(filled, *(words(w) for w in s.split())) for s in spellings]
    assert found == [ids(INSURANCE, SCATTERED)] * 4
    # khỏe (tone on o) and khoẻ (tone on e) are one word; so are the unmarked and đ/d forms.
    assert find(filled, words("khỏe")) == find(filled, words("khoẻ")) == ids(HEALTH_OLD, HEALTH_NEW)
    assert find(filled, words("khoe")) == ids(HEALTH_OLD, HEALTH_NEW)
    assert find(filled, words("dien bien")) == find(filled, words("Điện Biên")) == ids(ARTICLE)


def test_a_phrase_needs_its_words_together_and_in_order(filled: Store) -> None:
    assert find(filled, words("bảo hiểm y tế")) == ids(INSURANCE)
    assert find(filled, words("y tế bảo hiểm")) == set()
    assert find(filled, words("dao hong lan")) == ids(INSURANCE)
    # A word with a hyphen is its parts, in order.
    assert find(filled, words("covid-19")) == ids(COVID)
    assert find(filled, words("19 covid")) == set()


def test_the_article_text_is_searched_too(filled: Store) -> None:
    assert find(filled, words("vắc xin sởi")) == ids(ARTICLE)
    assert find(filled, words("thuoc")) == ids(ARTICLE)


def test_exclusions_and_prefixes(filled: Store) -> None:
    assert find(filled, words("y"), words("te")) == ids(INSURANCE, SCATTERED)
    assert find(filled, words("y"), words("te"), words("xa hoi", exclude=True)) == ids(INSURANCE)
    assert find(filled, words("cov", prefix=True)) == ids(COVID)
    assert find(filled, words("cov")) == set()


def test_filters_combine_with_words_or_stand_alone(filled: Store) -> None:
    lan = ("dao-hong-lan",)
    assert find(filled, words("suc khoe"), officials=lan) == ids(HEALTH_NEW)
    assert find(filled, officials=lan) == ids(INSURANCE, HEALTH_NEW)
    # Any of the officials, any of the topics; officials and topics both.
    assert find(filled, officials=("dao-hong-lan", "vu-manh-ha")) == ids(
        INSURANCE, HEALTH_NEW, SCATTERED, ARTICLE
    )
    assert find(filled, officials=lan, topics=("bao-hiem-y-te",)) == ids(INSURANCE)
    assert find(filled, officials=lan, topics=("tiem-chung",)) == set()
    # [since, until): the 9th 02:00 UTC is in, the 11th 02:00 UTC is out.
    since, until = datetime(2026, 3, 9, 2, tzinfo=UTC), datetime(2026, 3, 11, 2, tzinfo=UTC)
    assert find(filled, since=since, until=until) == ids(HEALTH_NEW)
    assert find(filled, words("khoe"), since=since) == ids(HEALTH_NEW)


def test_relevance_first_then_the_newest(filled: Store) -> None:
    # In a title (INSURANCE) counts more than scattered over title and teaser (SCATTERED).
    query = (words("bao hiem"),)
    assert filled.search.find(Search(phrases=query)).ids == (INSURANCE.id, SCATTERED.id)
    by_date = filled.search.find(Search(phrases=query, newest_first=True))
    assert by_date.ids == (SCATTERED.id, INSURANCE.id)
    # Without words: newest first; pages of it; a page past the end is empty but counted.
    everything = filled.search.find(Search(), limit=100)
    newest = sorted(ALL, key=lambda e: e.published, reverse=True)
    assert everything.ids == tuple(e.id for e in newest)
    assert filled.search.find(Search(), offset=2, limit=2).ids == tuple(e.id for e in newest[2:4])
    assert filled.search.find(Search(), offset=50) == type(everything)((), len(ALL))


def test_the_index_follows_changed_entries_and_rolled_back_ones_never_were(filled: Store) -> None:
    renamed = replace(COVID, title="Phòng chống sốt rét", summary="")
    with filled.entries.transaction() as tx:
        tx.upsert_entries([], [renamed])
    assert find(filled, words("covid")) == set()
    assert find(filled, words("sot ret")) == ids(COVID)
    extra = entry("Hội nghị về bệnh dại", 15)
    with pytest.raises(RuntimeError), filled.entries.transaction() as tx:
        tx.upsert_entries([extra], [])
        raise RuntimeError("the build failed after writing")
    assert find(filled, words("benh dai")) == set()
    assert filled.search.find(Search()).total == len(ALL)


def _sharing_a_number(count: int) -> list[str]:
    """Entry ids whose index numbers collide within one second (the low bits of their crc32)."""
    by_bits: dict[int, list[str]] = {}
    for n in range(1_000_000):
        made = f"{n:08d}-cung-giay"
        found = by_bits.setdefault(zlib.crc32(made.encode()) & ((1 << 20) - 1), [])
        found.append(made)
        if len(found) == count:
            return found
    raise AssertionError("no collision found")


def test_entries_of_one_second_sharing_a_number_each_get_their_own(store: Store) -> None:
    """Two entries of one second whose numbers collide in one transaction, and a third that
    collides with both in the next: each takes the next free number and is found."""
    first, second, third = (
        replace(entry(title, 3), id=made)
        for title, made in zip(
            ("Tiêm chủng sởi", "Khám sức khỏe", "Hiến máu nhân đạo"),
            _sharing_a_number(3),
            strict=True,
        )
    )
    with store.entries.transaction() as tx:
        tx.upsert_entries([first, second], [])
    with store.entries.transaction() as tx:
        tx.upsert_entries([third], [])
    assert find(store, words("tiem chung soi")) == ids(first)
    assert find(store, words("kham suc khoe")) == ids(second)
    assert find(store, words("hien mau")) == ids(third)
    assert store.search.find(Search()).total == 3


def test_a_store_from_before_search_is_indexed_when_upgraded(path: Path | str) -> None:
    store = open_store(path)
    with store.entries.transaction() as tx:
        tx.upsert_entries(ALL, [])
    store.close()
    engine = sa.create_engine(path if isinstance(path, str) else f"sqlite:///{path}")
    with engine.begin() as conn:  # as schema 6 was: no search tables
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("DROP TABLE search_text")
        conn.exec_driver_sql("DROP TABLE search_docs")
        conn.exec_driver_sql("UPDATE meta SET value = '6' WHERE key = 'schema'")
    engine.dispose()
    upgraded = open_store(path)
    try:
        assert find(upgraded, words("bao hiem y te")) == ids(INSURANCE)
        assert upgraded.search.find(Search()).total == len(ALL)
        assert upgraded.entries.meta("schema") == SCHEMA_VERSION
    finally:
        upgraded.close()


@pytest.mark.sqlite_only  # damages the file's FTS table
def test_a_broken_index_is_a_store_error_naming_the_store(filled: Store) -> None:
    raw = filled.search.engine  # type: ignore[attr-defined]
    with raw.begin() as conn:
        conn.exec_driver_sql("DROP TABLE search_text")
    with pytest.raises(StoreError, match="the store failed"):
        filled.search.find(Search(phrases=(words("y"),)))
