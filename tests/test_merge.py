"""Merging items into entries: stable ids, order independence, never degrading."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from digest.merge import entry_id, merge
from digest.model import Item, Location

WHEN = datetime(2026, 1, 21, 7, 3, tzinfo=UTC)
NOW = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)
LATER = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)


def item(
    summary: str,
    *,
    truncated: bool = True,
    kind: str = "listing",
    content: tuple[str, ...] | None = None,
    title: str = "Bộ trưởng thăm Hoà Bình, khoẻ mạnh",
    related: tuple[str, ...] = (),
    line: int = 1,
) -> Item:
    return Item(kind, title, WHEN, summary, truncated, content, related, Location("f", line))  # type: ignore[arg-type]


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
    results = {merge(None, list(order), now=NOW) for order in itertools.permutations(items)}
    assert len(results) == 1
    (entry,) = results
    assert entry.summary == "Trong không khí cả nước hướng về Đại hội đại biểu."
    assert entry.summary_truncated is False
    assert entry.content == ("Trong không khí cả nước hướng về Đại hội đại biểu.", "Đoạn hai.")
    assert entry.related == ("A", "B")
    assert entry.changed_at is None and entry.updated == WHEN


def test_shorter_or_cut_teaser_never_replaces_a_longer_one() -> None:
    stored = merge(None, [item("Một đoạn dài hơn nhiều so với đoạn sau", truncated=True)], now=NOW)
    again = merge(stored, [item("Một đoạn", truncated=True)], now=LATER)
    assert again == stored
    cut_article = merge(stored, [item("x", kind="article", content=("Ngắn",))], now=LATER)
    full = merge(cut_article, [item("x", kind="article", content=("Ngắn", "Dài hơn"))], now=LATER)
    shorter = merge(full, [item("x", kind="article", content=("Ngắn",))], now=LATER)
    assert shorter.content == ("Ngắn", "Dài hơn")


def test_updated_moves_only_when_visible_text_changes() -> None:
    stored = merge(None, [item("Đoạn mở đầu", truncated=True)], now=NOW)
    same = merge(stored, [item("Đoạn mở đầu", truncated=True, related=("Tin khác",))], now=LATER)
    assert same.changed_at is None and same.related == ("Tin khác",)
    longer = merge(stored, [item("Đoạn mở đầu dài hơn", truncated=True)], now=LATER)
    assert longer.changed_at == LATER and longer.updated == LATER
    assert longer.seen_at == NOW
