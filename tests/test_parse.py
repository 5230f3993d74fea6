"""The parser on each shape of the seed-format doc, and on broken input."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from digest.parse import parse_text

LISTING = (
    "HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ\n"
    "Bộ trưởng Bộ Y tế Đào Hồng Lan giải trình các nội dung liên quan lĩnh vực y tế\n"
    "Thứ Năm, ngày 30/10/2025 16:54Sáng 30/10/2025, tại hội trường, Bộ trưởng giải trình...\n"
    "100% cử tri Bộ Y tế nhất trí giới thiệu Bộ trưởng Đào Hồng Lan\n"
    "Thứ Bẩy, ngày 17/01/2026 01:01112 cử tri (100%) tham gia hội nghị lấy ý kiến\n"
)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_vietnamese_listing_times_are_utc_and_teaser_is_split_from_time() -> None:
    result = parse_text("a.txt", LISTING)
    assert result.problems == ()
    first, second = result.items
    assert first.kind == "listing"
    assert first.title.startswith("Bộ trưởng Bộ Y tế Đào Hồng Lan giải trình")
    assert first.published == utc(2025, 10, 30, 16, 54)
    assert first.summary == "Sáng 30/10/2025, tại hội trường, Bộ trưởng giải trình"
    assert first.summary_truncated is True
    assert first.source.file == "a.txt" and first.source.line == 2
    # Teaser starting with digits: 01:01 then "112 cử tri".
    assert second.published == utc(2026, 1, 17, 1, 1)
    assert second.summary.startswith("112 cử tri (100%)")
    assert second.summary_truncated is False
    assert second.source.line == 4


def test_weekday_shown_is_vietnam_weekday_so_time_is_utc() -> None:
    # 20/01/2026 is a Tuesday; 18:21 UTC is Wednesday 01:21 in Hanoi, printed "Thứ Tư".
    text = "HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ\nTiêu đề\nThứ Tư, ngày 20/01/2026 18:21Nội dung...\n"
    (item,) = parse_text("a.txt", text).items
    assert item.published == utc(2026, 1, 20, 18, 21)


def test_english_date_listing_under_asset_publisher() -> None:
    text = (
        "Asset Publisher\n"
        "Cứu sản phụ từng 3 lần mổ lấy thai\n"
        "Thursday 2025-07-10 01:38Sản phụ 33 tuổi từng 3 lần mổ lấy thai...\n"
        "Tiếp tục đẩy nhanh tiến độ chuyển đổi số ngành Y tế\n"
        "Tuesday 2025-07-08 09:19Ngày 08/7/2025, Bộ Y tế tổ chức cuộc họp\n"
    )
    result = parse_text("b.txt", text)
    assert result.problems == ()
    assert [i.published for i in result.items] == [
        utc(2025, 7, 10, 1, 38),
        utc(2025, 7, 8, 9, 19),
    ]
    assert result.items[0].summary == "Sản phụ 33 tuổi từng 3 lần mổ lấy thai"


def test_teaser_repeating_the_title_drops_the_repeat_but_not_a_caption() -> None:
    text = (
        "HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ\n"
        "Lễ phát động Chương trình “Mắt khoẻ”\n"
        "Thứ Hai, ngày 07/10/2024 07:43"
        "Lễ phát động Chương trình “Mắt khoẻ” Ngày 07/10/2024, tại...\n"
        "Bộ trưởng tiếp Đại sứ Cu Ba\n"
        "Thứ Năm, ngày 10/10/2024 09:09"
        "Bộ trưởng tiếp Đại sứ Cu Ba tại Việt Nam Chiều ngày 10/10...\n"
    )
    repeat, caption = parse_text("a.txt", text).items
    assert repeat.summary == "Ngày 07/10/2024, tại"
    assert caption.summary.startswith("Bộ trưởng tiếp Đại sứ Cu Ba tại Việt Nam")


ARTICLE = (
    "Xuất bản thông tin\n"
    "Thứ trưởng làm việc với Viện Ký ức COVID-19\n"
    "20/04/2024 | 21:33 PM\n"
    "Thứ trưởng làm việc với Viện Ký ức COVID-19\n"
    "Chiều ngày 19/4/2024, tại trụ sở Bộ Y tế, Thứ trưởng đã có buổi làm việc.\n"
    "Thứ trưởng phát biểu tại buổi làm việc\n"
    "\n"
    "(Nguồn: suckhoedoisong.vn)\n"
    "Tin liên quan\n"
    "- Một đời làm ngọn đèn dẫn lối yêu thương\n"
    "- 08.10.2024. Domesco 1252.png\n"
    "- Bộ Y tế cảnh báo nguy cơ 'dịch chồng dịch'\n"
    "\n\n"
)


def test_article_time_is_vietnam_time_and_repeated_title_is_not_body() -> None:
    result = parse_text("c.txt", ARTICLE)
    assert result.problems == ()
    (item,) = result.items
    assert item.kind == "article"
    assert item.published == utc(2024, 4, 20, 14, 33)  # 21:33 in Hanoi
    assert item.content == (
        "Chiều ngày 19/4/2024, tại trụ sở Bộ Y tế, Thứ trưởng đã có buổi làm việc.",
        "Thứ trưởng phát biểu tại buổi làm việc",
        "(Nguồn: suckhoedoisong.vn)",
    )
    assert item.summary == item.content[0]
    assert item.summary_truncated is False
    # The related list is kept apart from the body; file-name junk is dropped.
    assert item.related == (
        "Một đời làm ngọn đèn dẫn lối yêu thương",
        "Bộ Y tế cảnh báo nguy cơ 'dịch chồng dịch'",
    )
    assert item.source.line == 2


def test_article_at_top_of_file_without_repeated_title_with_related_news() -> None:
    text = (
        "Bộ trưởng tham dự Hội nghị Bộ trưởng Y tế ASEAN\n"
        "10/08/2024 | 18:52 PM\n\n\n\n"
        "Nhận lời mời từ Bộ trưởng Bộ Y tế CHDCND Lào.\n"
        "- Phóng viên: một câu hỏi trong thân bài.\n"
        "Related news\n"
        "- Tiếp tục đẩy nhanh tiến độ chuyển đổi số ngành Y tế\n"
        "Asset Publisher\n"
        "Cảnh báo tình trạng kháng hóa chất của muỗi\n"
        "Sunday 2025-07-06 01:31Ngày càng nhiều côn trùng kháng hóa chất...\n"
    )
    result = parse_text("d.txt", text)
    assert result.problems == ()
    article, listing = result.items
    assert article.published == utc(2024, 8, 10, 11, 52)
    assert article.content == (
        "Nhận lời mời từ Bộ trưởng Bộ Y tế CHDCND Lào.",
        "- Phóng viên: một câu hỏi trong thân bài.",
    )
    assert article.related == ("Tiếp tục đẩy nhanh tiến độ chuyển đổi số ngành Y tế",)
    assert listing.published == utc(2025, 7, 6, 1, 31)


def test_morning_article_time() -> None:
    text = "Xuất bản thông tin\nHọp chuẩn bị Dự án\n09/12/2023 | 08:28 AM\nNgày 08/12/2023.\n"
    (item,) = parse_text("e.txt", text).items
    assert item.published == utc(2023, 12, 9, 1, 28)


# -- bad input -------------------------------------------------------------------------------


def test_impossible_date_is_reported_and_the_rest_kept() -> None:
    text = (
        "HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ\n"
        "Tin sai ngày\n"
        "Thứ Hai, ngày 31/02/2025 10:00Nội dung...\n"
        "Tin đúng\n"
        "Thứ Hai, ngày 03/11/2025 03:44Nội dung...\n"
    )
    result = parse_text("bad.txt", text)
    assert [i.title for i in result.items] == ["Tin đúng"]
    (problem,) = result.problems
    assert str(problem).startswith("bad.txt:3: impossible date or time 31/02/2025")


def test_weekday_that_contradicts_its_date_is_reported_and_the_item_kept() -> None:
    # 03/11/2025 03:44 UTC is Monday 10:44 in Hanoi, not a Friday.
    text = "HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ\nTin\nThứ Sáu, ngày 03/11/2025 03:44Nội dung...\n"
    result = parse_text("w.txt", text)
    (item,) = result.items
    assert item.published == utc(2025, 11, 3, 3, 44)
    assert [str(p) for p in result.problems] == [
        "w.txt:3: weekday 'Thứ Sáu' does not match 03/11/2025 03:44 UTC (Thứ Hai in Vietnam); "
        "kept with the date and time as written"
    ]


def test_dates_outside_2000_to_ten_years_ahead_are_problems() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    text = (
        "HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ\n"
        "Quá xa\nThứ Sáu, ngày 31/12/9999 23:59Nội dung...\n"
        "Quá cũ\nThứ Hai, ngày 03/11/1999 03:44Nội dung...\n"
        "Mười một năm sau\nThứ Tư, ngày 03/12/2036 03:44Nội dung...\n"
        "Chín năm sau\nThứ Hai, ngày 03/12/2035 03:44Nội dung...\n"
        "Xuất bản thông tin\nNăm một\n01/01/0001 | 03:00 AM\nThân bài.\n"
    )
    result = parse_text("d.txt", text, now=now)
    assert [i.title for i in result.items] == ["Chín năm sau"]
    assert [p.line for p in result.problems] == [3, 5, 7, 12]
    assert all("is before 2000 or more than ten years ahead" in p.message for p in result.problems)


def test_a_teaser_longer_than_the_site_shows_is_cut_and_reported() -> None:
    teaser = "Sáng nay, Bộ trưởng Bộ Y tế làm việc với tỉnh " * 4
    junk = " rác" * 100_000
    text = (
        "HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ\n"
        f"Có dấu cắt\nThứ Hai, ngày 03/11/2025 03:44{teaser}...{junk}\n"
        f"Không dấu cắt\nThứ Hai, ngày 03/11/2025 04:44{teaser}{junk}\n"
    )
    result = parse_text("t.txt", text)
    marked, unmarked = result.items
    # Junk after the site's own `...`: what comes before it is the teaser.
    assert (marked.summary, marked.summary_truncated) == (teaser.strip(), True)
    assert unmarked.summary_truncated and len(unmarked.summary) <= 300
    assert unmarked.summary.startswith(teaser.strip()) and not unmarked.summary.endswith(" r")
    assert [p.line for p in result.problems] == [3, 5]
    assert "longer than the site shows" in result.problems[0].message


def test_title_with_no_date_line_is_reported() -> None:
    text = (
        "HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ\n"
        "Tiêu đề mồ côi\n"
        "Tin đúng\n"
        "Thứ Hai, ngày 03/11/2025 03:44Nội dung...\n"
    )
    result = parse_text("t.txt", text)
    assert [i.title for i in result.items] == ["Tin đúng"]
    assert [str(p) for p in result.problems] == [
        "t.txt:2: title with no date line: 'Tiêu đề mồ côi'; skipped"
    ]


def test_file_cut_mid_date_publishes_no_invented_date() -> None:
    text = LISTING + "Tin bị cắt\nThứ Hai, ngày 03/11/20"
    result = parse_text("cut.txt", text)
    assert len(result.items) == 2
    (problem,) = result.problems
    assert problem.line == 7 and "date line cut or malformed" in problem.message


def test_file_cut_mid_teaser_marks_the_teaser_cut() -> None:
    text = "HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ\nTin\nThứ Hai, ngày 03/11/2025 03:44Sáng nay, Bộ trưởng"
    (item,) = parse_text("cut.txt", text).items
    assert item.summary == "Sáng nay, Bộ trưởng"
    assert item.summary_truncated is True


def test_file_cut_after_an_article_title() -> None:
    result = parse_text("cut.txt", "Xuất bản thông tin\nMột bài báo\n20/04/20")
    assert result.items == ()
    assert str(result.problems[0]).startswith("cut.txt:2: article title with no date line")


def test_text_outside_any_block_is_reported_not_guessed() -> None:
    text = "Một dòng lạ\nThứ Hai, ngày 03/11/2025 03:44Nội dung\n" + LISTING
    result = parse_text("u.txt", text)
    assert len(result.items) == 2
    assert [str(p) for p in result.problems] == [
        "u.txt:1: text outside any known block (2 lines); skipped"
    ]


def test_related_list_without_article_is_reported() -> None:
    result = parse_text("r.txt", "Tin liên quan\n- Một tiêu đề\n")
    assert result.items == ()
    assert "related list with no article" in str(result.problems[0])


def test_nfd_text_reads_as_nfc() -> None:
    import unicodedata

    text = unicodedata.normalize("NFD", LISTING)
    result = parse_text("n.txt", text)
    assert [i.title for i in result.items] == [i.title for i in parse_text("x", LISTING).items]


# -- properties -------------------------------------------------------------------------------

line_text = st.text(
    alphabet=st.characters(exclude_categories=["Cs"]),
    max_size=80,
)
seedish = st.sampled_from(
    [
        "HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ",
        "Xuất bản thông tin",
        "Tin liên quan",
        "Related news",
        "Asset Publisher",
        "Thứ Hai, ngày 31/02/2025 10:00",
        "Thứ Hai, ngày 03/11/2025 03:44Nội dung...",
        "Monday 2025-13-40 10:00x",
        "20/04/2024 | 21:33 PM",
        "99/99/2024 | 99:99 PM",
        "- một tiêu đề",
        "",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(line_text, seedish), max_size=40))
def test_parser_never_raises(lines: list[str]) -> None:
    result = parse_text("fuzz.txt", "\n".join(lines))
    for item in result.items:
        assert item.published.tzinfo is UTC
        assert item.title


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(line_text, seedish), min_size=1, max_size=20))
def test_appending_junk_never_loses_an_entry(junk: list[str]) -> None:
    for valid in (LISTING, ARTICLE):
        before = {(i.title, i.published) for i in parse_text("v.txt", valid).items}
        after = {(i.title, i.published) for i in parse_text("v.txt", valid + "\n".join(junk)).items}
        assert before <= after
