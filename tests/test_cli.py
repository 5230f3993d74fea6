"""The five seeds end to end through the real `digest` command."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from support import Project

KEYS = {
    "id",
    "title",
    "published",
    "updated",
    "summary",
    "summary_truncated",
    "content",
    "officials",
    "topics",
    "related",
    "sources",
}

# (file, line, title, published UTC), read off the seed files by hand: a sample from each.
SAMPLE = [
    (
        "000_b1ad6872f566675d.txt",
        2,
        "Thứ trưởng Bộ Y tế Đỗ Xuân Tuyên kiểm tra công tác ứng phó, khắc phục hậu quả sau mưa lũ"
        " tại thành phố Huế",
        "2025-11-03T03:44:00Z",
    ),
    (
        "000_b1ad6872f566675d.txt",
        43,
        "Thứ trưởng Bộ Y tế Nguyễn Thị Liên Hương làm việc với Chủ tịch Viện Ký ức COVID-19,"
        " Cộng hòa Pháp",
        "2024-04-20T14:33:00Z",
    ),
    (
        "001_21f9db5134b92a1d.txt",
        18,
        "Một tháng, BVĐK Đức Giang thực hiện thành công 5 ca ghép thận",
        "2024-10-07T01:00:00Z",
    ),
    (
        "001_21f9db5134b92a1d.txt",
        43,
        "Bộ Y tế họp chuẩn bị Dự án Hỗ trợ Kỹ thuật y tế của Bộ Y tế - Tổ chức Y tế thế giới"
        " giai đoạn 2024-2027",
        "2023-12-09T01:28:00Z",
    ),
    (
        "002_ff76e2aec1f5e915.txt",
        1,
        "Bộ trưởng Bộ Y tế Đào Hồng Lan tham dự Hội nghị Bộ trưởng Y tế ASEAN lần thứ 16 và các"
        " Hội nghị liên quan",
        "2024-08-10T11:52:00Z",
    ),
    (
        "002_ff76e2aec1f5e915.txt",
        43,
        "Họp Ban chỉ đạo thực hiện Kế hoạch số 02-KH/BCĐTW ngày 19/6/2025 của Ban Chỉ đạo"
        " Trung ương",
        "2025-07-04T10:03:00Z",
    ),
    (
        "003_7798add9aa6a74df.txt",
        10,
        "Thứ trưởng Bộ Y tế Nguyễn Tri Thức: Khẩn trương và cẩn trọng hoàn thiện khung pháp luật,"
        " bảo đảm người chưa thành niên là bị hại được bảo vệ tốt hơn trong quá trình tư pháp",
        "2026-01-20T18:21:00Z",
    ),
    (
        "003_7798add9aa6a74df.txt",
        32,
        "100% cử tri Bộ Y tế nhất trí giới thiệu Bộ trưởng Đào Hồng Lan ứng cử Đại biểu Quốc hội"
        " khoá XVI",
        "2026-01-17T01:01:00Z",
    ),
    (
        "004_5ec5374b7f673a92.txt",
        6,
        "Thứ trưởng Trần Văn Thuấn thăm, tri ân gia đình Liệt sĩ, bác sĩ Đặng Thuỳ Trâm",
        "2025-07-17T08:13:00Z",
    ),
    (
        "004_5ec5374b7f673a92.txt",
        43,
        "Ký kết chương trình hợp tác tăng cường năng lực Hệ thống giám sát quốc gia về kháng thuốc"
        " của các vi sinh vật tại Việt Nam",
        "2024-09-20T13:06:00Z",
    ),
]

TWICE = {
    "Cảnh báo tình trạng kháng hóa chất của muỗi truyền bệnh sốt rét": "2025-07-06T01:31:00Z",
    "Tiếp tục đẩy nhanh tiến độ chuyển đổi số ngành Y tế": "2025-07-08T09:19:00Z",
    "Bộ Y tế tập huấn phổ biến các quy định liên quan đến phân cấp, phân quyền trong lĩnh vực y"
    " tế theo mô hình chính quyền địa phương 2 cấp": "2025-07-09T15:29:00Z",
}


@pytest.fixture(scope="module")
def seed_project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    import shutil

    from support import SEEDS, base_config

    root = tmp_path_factory.mktemp("seeds-e2e")
    p = Project(root)
    shutil.copytree(SEEDS, p.seeds)
    p.config.write_text(base_config(), encoding="utf-8")
    out = p.digest("build")
    assert out.stderr == ""
    assert out.stdout.splitlines()[:3] == [
        "files: 5 seen, 5 parsed, 0 unchanged, 0 failed",
        "entries: 100 new, 0 updated, 100 total",
        "problems: 0",
    ]
    return p


@pytest.fixture(scope="module")
def seed_entries(seed_project: Project) -> list[dict[str, Any]]:
    return seed_project.entries()


def test_one_hundred_entries_newest_first_with_exact_keys(
    seed_entries: list[dict[str, Any]],
) -> None:
    assert len(seed_entries) == 100
    assert all(set(e) == KEYS for e in seed_entries)
    published = [str(e["published"]) for e in seed_entries]
    assert published == sorted(published, reverse=True)
    assert len({e["id"] for e in seed_entries}) == 100
    assert all(e["updated"] == e["published"] for e in seed_entries)


@pytest.mark.parametrize(("file", "line", "title", "published"), SAMPLE)
def test_sample_titles_and_utc_instants(
    seed_entries: list[dict[str, Any]], file: str, line: int, title: str, published: str
) -> None:
    matches = [e for e in seed_entries if {"file": file, "line": line} in e["sources"]]
    assert len(matches) == 1
    assert matches[0]["title"] == title
    assert matches[0]["published"] == published


def test_listing_item_and_full_article_of_file_003_are_one_entry(
    seed_entries: list[dict[str, Any]],
) -> None:
    (entry,) = [e for e in seed_entries if str(e["title"]).endswith("từ xa và ngay từ cơ sở")]
    assert entry["sources"] == [
        {"file": "003_7798add9aa6a74df.txt", "line": 2},
        {"file": "003_7798add9aa6a74df.txt", "line": 43},
    ]
    assert entry["published"] == "2026-01-21T07:03:00Z"  # 14:03 in Hanoi
    content = str(entry["content"])
    assert content.startswith("Trong không khí cả nước hướng về Đại hội đại biểu toàn quốc")
    assert content.endswith("(Nguồn: suckhoedoisong.vn)")
    assert "Tin liên quan" not in content and "Văn kiện trình Đại hội XIV" not in content
    assert content.count("\n\n") == 41  # 42 paragraphs
    assert entry["summary_truncated"] is False
    assert str(entry["summary"]).endswith("Cổng Thông tin Điện tử Bộ Y tế trân trọng đăng tải.")
    assert entry["related"][0] == "5 nhóm nhiệm vụ triển khai thi hành Luật Phòng bệnh"


def test_three_titles_listed_twice_are_one_entry_each(
    seed_entries: list[dict[str, Any]],
) -> None:
    counts = Counter(str(e["title"]) for e in seed_entries)
    assert max(counts.values()) == 1
    for title, published in TWICE.items():
        (entry,) = [e for e in seed_entries if e["title"] == title]
        assert entry["published"] == published
        files = sorted({s["file"] for s in entry["sources"]})
        assert files == ["002_ff76e2aec1f5e915.txt", "004_5ec5374b7f673a92.txt"]


def test_teasers_cut_by_the_site_are_marked(seed_entries: list[dict[str, Any]]) -> None:
    listing_only = [e for e in seed_entries if e["content"] is None]
    assert len(listing_only) == 95
    assert sum(bool(e["summary_truncated"]) for e in listing_only) >= 90
    assert not any(str(e["summary"]).endswith("...") for e in seed_entries)


def test_related_titles_that_match_known_entries_are_linked(
    seed_project: Project, seed_entries: list[dict[str, Any]]
) -> None:
    from lxml import html

    by_title = {str(e["title"]): str(e["id"]) for e in seed_entries}
    linked: set[tuple[str, str]] = set()
    unlinked: set[str] = set()
    for e in seed_entries:
        page = html.parse(str(seed_project.public / f"entries/{e['id']}.html")).getroot()
        for item in page.iterfind(".//section[@class='related']//li"):
            anchor = item.find("a")
            if anchor is None:
                unlinked.add(item.text_content())
            else:
                linked.add((anchor.text_content(), anchor.get("href", "").removesuffix(".html")))
    assert (
        "Thứ trưởng Bộ Y tế Đỗ Xuân Tuyên kiểm tra công tác ứng phó, khắc phục hậu quả sau mưa lũ"
        " tại thành phố Huế",
        by_title[
            "Thứ trưởng Bộ Y tế Đỗ Xuân Tuyên kiểm tra công tác ứng phó, khắc phục hậu quả sau"
            " mưa lũ tại thành phố Huế"
        ],
    ) in linked
    assert (
        "Tiếp tục đẩy nhanh tiến độ chuyển đổi số ngành Y tế",
        by_title["Tiếp tục đẩy nhanh tiến độ chuyển đổi số ngành Y tế"],
    ) in linked
    assert "Một đời làm ngọn đèn dẫn lối yêu thương" in unlinked


# -- exit codes and what the command prints -----------------------------------------------------


def test_unusable_store_and_bad_config_exit_non_zero_with_a_clear_message(
    project: Project,
) -> None:
    project.store.parent.mkdir()
    project.store.write_bytes(b"this is not a database" * 100)
    result = project.digest("build", check=False)
    assert result.returncode == 3
    assert "cannot open the store" in result.stderr and "[paths] store" in result.stderr
    project.config.write_text("[paths]\nseeds = 3\n")
    result = project.digest("build", check=False)
    assert result.returncode == 2
    assert "paths.seeds: must be a non-empty path string" in result.stderr
    project.config.write_text("[pathz]\n")
    result = project.digest("build", check=False)
    assert result.returncode == 2 and "pathz: unknown section" in result.stderr


def test_a_file_name_cannot_forge_problem_lines(seeded: Project) -> None:
    seeded.write_seed(
        "x.txt\nseeds/000_b1ad6872f566675d.txt:1: forged\x1b[2J.txt",
        "HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ\nTiêu đề mồ côi\n",
    )
    result = seeded.digest("build")
    (line,) = result.stderr.splitlines()
    assert line == (
        "seeds/x.txt\\nseeds/000_b1ad6872f566675d.txt:1: forged\\x1b[2J.txt:2: "
        "title with no date line: 'Tiêu đề mồ côi'; skipped"
    )


def test_version(project: Project) -> None:
    import importlib.metadata

    out = project.digest("--version").stdout
    assert out.strip() == f"digest {importlib.metadata.version('digest')}"


def test_build_prints_problems_as_path_line_and_counts_them(seeded: Project) -> None:
    """The summary and problem lines people read (their content is tested in test_ingest)."""
    seeded.write_seed("bad-empty.txt", b"")
    seeded.write_seed("bad.txt", b"\x00binary")
    result = seeded.digest("build")
    assert result.stdout.splitlines()[:3] == [
        "files: 7 seen, 7 parsed, 0 unchanged, 2 failed",
        "entries: 100 new, 0 updated, 100 total",
        "problems: 2; `digest problems` lists them",
    ]
    lines = [
        "seeds/bad-empty.txt:1: empty file; skipped",
        "seeds/bad.txt:1: binary file (NUL byte at offset 0); skipped",
    ]
    assert sorted(result.stderr.splitlines()) == lines
    again = seeded.digest("build")  # nothing read this time; the broken files are still there
    assert "problems: 2;" in again.stdout and again.stderr == ""
    assert seeded.digest("problems").stdout.splitlines() == [*lines, "problems: 2"]
    (seeded.seeds / "bad.txt").unlink()
    (seeded.seeds / "bad-empty.txt").unlink()
    assert "problems: 0" in seeded.digest("build").stdout
