"""A small fixed feed document: the source of the golden files in tests/data/golden/."""

from __future__ import annotations

from datetime import UTC, datetime

from digest.feeds import FORMATS, Category, FeedDoc, FeedItem
from digest.model import Entry

BASE = "https://digest.example/"


def sample_doc() -> FeedDoc:
    published = datetime(2026, 1, 21, 7, 3, tzinfo=UTC)
    article = Entry(
        id="ee07bbc0-5aba-5502-98ab-818e9811aabf",
        title="Bộ trưởng Đào Hồng Lan: <script>alert('x')</script> & “]]>”",
        title_from_article=True,
        published=published,
        summary="Trong không khí cả nước & <b>",
        summary_truncated=False,
        content=("Đoạn một với <i>thẻ</i> & ]]>.", 'Đoạn hai: "trích dẫn".'),
        related=(),
        officials=("dao-hong-lan",),
        topics=("the-che-chinh-sach",),
        seen_at=published,
        changed_at=datetime(2026, 1, 22, 1, 0, tzinfo=UTC),
    )
    teaser = Entry(
        id="10b53e75-0000-5000-8000-000000000001",
        title="Tin chỉ có tóm tắt",
        title_from_article=False,
        published=datetime(2026, 1, 20, 18, 21, tzinfo=UTC),
        summary="Sáng 20/01/2026, Thứ trưởng",
        summary_truncated=True,
        content=None,
        related=(),
        officials=(),
        topics=(),
        seen_at=published,
        changed_at=None,
    )
    items = [
        FeedItem(
            article,
            f"{BASE}entries/{article.id}.html",
            ("Đào Hồng Lan",),
            (
                Category("the-che-chinh-sach", "Thể chế, chính sách", f"{BASE}topics/"),
                Category("dao-hong-lan", "Đào Hồng Lan", f"{BASE}officials/"),
            ),
        ),
        FeedItem(teaser, f"{BASE}entries/{teaser.id}.html", (), ()),
    ]
    return FeedDoc(
        key="all",
        title="Hoạt động của lãnh đạo Bộ Y tế",
        subtitle="Hoạt động của Bộ trưởng và các Thứ trưởng Bộ Y tế",
        site_name="Hoạt động của lãnh đạo Bộ Y tế",
        html_url=f"{BASE}index.html",
        urls={f: f"{BASE}feeds/all.{f}" for f in FORMATS},
        updated=article.updated,
        items=items,
        prev_archive={"atom": f"{BASE}feeds/archive/all/2026-01.atom"},  # archives: Atom only
    )
