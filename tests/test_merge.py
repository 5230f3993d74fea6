"""Merging items into entries: stable ids, order independence, never degrading."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Literal

from digest.merge import Merged, entry_id, merge
from digest.model import Entry, Item, Location

WHEN = datetime(2026, 1, 21, 7, 3, tzinfo=UTC)
NOW = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)
LATER = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
TITLE = "Bộ trưởng thăm Hoà Bình, khoẻ mạnh"
EID = entry_id(TITLE, WHEN)


def item(
    summary: str,
    *,
    truncated: bool = True,
    kind: Literal["listing", "article"] = "listing",
    content: tuple[str, ...] | None = None,
    title: str = TITLE,
    related: tuple[str, ...] = (),
    line: int = 1,
) -> Item:
    return Item(kind, title, WHEN, summary, truncated, content, related, Location("f", line))


def merged(existing: Entry | None, *items: Item, now: datetime = NOW) -> Entry:
    return merge(EID, existing, list(items), now=now).entry


def test_id_ignores_spelling_variants_but_not_instant() -> None:
    a = entry_id("Bộ trưởng thăm Hoà Bình, khoẻ mạnh", WHEN)
    assert a == entry_id("bộ trưởng thăm Hòa Bình,  khỏe mạnh", WHEN)
    assert a != entry_id("Bộ trưởng thăm Hoà Bình, khoẻ mạnh", LATER)


def test_merge_is_order_independent_and_prefers_full_text() -> None:
    items = [
        item("Trong không khí cả nước", truncated=True),
        item("Trong không khí cả nước hướng về Đại hội", truncated=True),
        item(
            "Trong không khí cả nước hướng về Đại hội đại biểu.",
            truncated=False,
            kind="article",
            content=("Trong không khí cả nước hướng về Đại hội đại biểu.", "Đoạn hai."),
            related=("B", "A"),
        ),
    ]
    orders = itertools.permutations(items)
    results = {merge(EID, None, list(order), now=NOW).entry for order in orders}
    assert len(results) == 1
    (entry,) = results
    assert entry.summary == "Trong không khí cả nước hướng về Đại hội đại biểu."
    assert entry.summary_truncated is False
    assert entry.content == ("Trong không khí cả nước hướng về Đại hội đại biểu.", "Đoạn hai.")
    assert entry.related == ("A", "B")
    assert entry.changed_at is None and entry.updated == WHEN


def test_shorter_or_cut_teaser_never_replaces_a_longer_one() -> None:
    stored = merged(None, item("Một đoạn dài hơn nhiều so với đoạn sau", truncated=True))
    again = merge(EID, stored, [item("Một đoạn", truncated=True)], now=LATER)
    assert again == Merged(stored)
    cut_article = merged(stored, item("x", kind="article", content=("Ngắn",)), now=LATER)
    full = merged(cut_article, item("x", kind="article", content=("Ngắn", "Dài hơn")), now=LATER)
    shorter = merged(full, item("x", kind="article", content=("Ngắn",)), now=LATER)
    assert shorter.content == ("Ngắn", "Dài hơn")


def test_updated_moves_only_when_visible_text_changes() -> None:
    stored = merged(None, item("Đoạn mở đầu", truncated=True))
    same = merged(stored, item("Đoạn mở đầu", truncated=True, related=("Tin khác",)), now=LATER)
    assert same.changed_at is None and same.related == ("Tin khác",)
    longer = merged(stored, item("Đoạn mở đầu dài hơn", truncated=True), now=LATER)
    assert longer.changed_at == LATER and longer.updated == LATER
    assert longer.seen_at == NOW


# -- damage cannot win ------------------------------------------------------------------------

TEASER = "Sáng 30/10/2025, tại hội trường, Bộ trưởng Bộ Y tế Đào Hồng Lan đã giải trình, làm rõ"


def test_junk_after_the_sites_cut_marker_never_replaces_a_teaser() -> None:
    stored = merged(None, item(TEASER))
    for damaged in (TEASER + "...x", TEASER + "... " + "rác " * 50_000, TEASER + "…Đ"):
        # The parser strips only a final marker: what follows one stays in the text.
        result = merge(EID, stored, [item(damaged, truncated=False, line=7)], now=LATER)
        assert result.entry == stored  # text, cut flag and `updated` all as they were
        (problem,) = result.problems
        assert (problem.file, problem.line) == ("f", 7)
        assert "after the site's cut marker" in problem.message


def test_a_longer_capture_of_the_same_teaser_replaces_it() -> None:
    stored = merged(None, item(TEASER[:40]))
    longer = merge(EID, stored, [item(TEASER)], now=LATER)
    assert longer.entry.summary == TEASER and longer.entry.summary_truncated
    assert longer.problems == ()


def test_a_conflicting_teaser_never_replaces_the_stored_one_and_is_reported_once() -> None:
    stored = merged(None, item(TEASER))
    other = item("Chiều 30/10/2025, một nội dung khác hẳn", line=3)
    result = merge(EID, stored, [other], now=LATER)
    assert result.entry == stored
    assert [p.line for p in result.problems] == [3]
    assert "differs" in result.problems[0].message


def test_a_teaser_cut_mid_word_without_marker_never_replaces_the_longer_one() -> None:
    # A scraper stopped early: the last item's teaser has no `...`, the file ends cleanly.
    stored = merged(None, item(TEASER))
    cut = TEASER[:57]
    result = merge(EID, stored, [item(cut, truncated=False)], now=LATER)
    assert result.entry == stored and result.problems == ()
    # In one build, whatever the order, the longer one is kept.
    for order in itertools.permutations([item(cut, truncated=False), item(TEASER)]):
        entry = merged(None, *order)
        assert (entry.summary, entry.summary_truncated) == (TEASER, True)


def test_a_complete_teaser_that_a_longer_text_starts_with_is_marked_cut() -> None:
    stored = merged(None, item(TEASER[:60], truncated=False))
    assert not stored.summary_truncated
    result = merged(stored, item(TEASER, truncated=False), now=LATER)
    # Two complete teasers of different length: the stored text stays, but it was cut.
    assert result.summary == TEASER[:60] and result.summary_truncated


def test_the_article_body_is_the_authority_for_the_summary() -> None:
    lead = "Sáng 30/10/2025, Bộ trưởng giải trình."
    article = item(lead, truncated=False, kind="article", content=(lead, "Đoạn hai."))
    listing = item(lead + " Một đoạn dài hơn của bản tin trên trang danh sách", truncated=True)
    for order in itertools.permutations([article, listing]):
        entry = merged(None, *order)
        assert (entry.summary, entry.summary_truncated) == (lead, False)


def test_choice_among_new_teasers_does_not_depend_on_order() -> None:
    candidates = [
        item(TEASER[:50]),
        item(TEASER),
        item(TEASER + "...rác"),
        item(TEASER[:30], truncated=False),
    ]
    results = {merged(None, *order).summary for order in itertools.permutations(candidates)}
    assert results == {TEASER}
