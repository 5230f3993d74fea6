"""Officials and topics: the rules of the sentence, one case at a time, and config errors.

The measured accuracy over whole corpora (the seeds and tests/data/unseen/) is in
tests/test_accuracy.py; each case here is a sentence shape the rules must read right.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from support import DATA, Project, base_config

from digest.classify import (
    Classifier,
    _find_all,
    _match_key,
    _phrase_pattern,
    _within,
    person_name,
)
from digest.config import Classification, Official, Tenure, default_taxonomy, load
from digest.errors import ConfigError
from digest.model import Entry

DEFAULT = default_taxonomy()
SPRING = datetime(2026, 3, 5, 3, tzinfo=UTC)


def entry(
    title: str,
    summary: str = "",
    content: tuple[str, ...] | None = None,
    *,
    when: datetime = SPRING,
    truncated: bool = False,
) -> Entry:
    return Entry(
        id="x",
        title=title,
        title_from_article=False,
        published=when,
        summary=summary,
        summary_truncated=truncated,
        content=content,
        related=(),
        officials=(),
        topics=(),
        seen_at=when,
        changed_at=None,
    )


def officials(*texts: str, when: datetime = SPRING) -> tuple[str, ...]:
    return (
        Classifier(DEFAULT)
        .tag(entry(texts[0], texts[1] if len(texts) > 1 else "", when=when))
        .officials
    )


def discovered(title: str, summary: str = "", *, truncated: bool = False) -> list[str]:
    tags = Classifier(DEFAULT).tag(entry(title, summary, truncated=truncated))
    return [d.name for d in tags.discovered]


# -- the seeds: who takes part, entry by entry ---------------------------------------------


@pytest.fixture(scope="module")
def seed_entries(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    root = tmp_path_factory.mktemp("tags")
    shutil.copytree(DATA / "seeds", root / "seeds")
    p = Project(root)
    p.config.write_text(base_config(), encoding="utf-8")
    p.digest("build")
    by_first: dict[str, dict[str, object]] = {}
    for e in p.entries():
        first = e["sources"][0]
        by_first[f"{first['file']}:{first['line']}"] = e
    return by_first


def test_every_seed_entry_has_exactly_the_leaders_a_reader_found(
    seed_entries: dict[str, dict[str, object]],
) -> None:
    import json

    expected = json.loads((DATA / "seed_tags.json").read_text(encoding="utf-8"))["entries"]
    assert {r["at"] for r in expected} == set(seed_entries)
    wrong = [
        (r["at"], r["officials"], seed_entries[r["at"]]["officials"])
        for r in expected
        if seed_entries[r["at"]]["officials"] != r["officials"]
    ]
    assert wrong == []


# -- forms of a leader's name ---------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Thứ trưởng Bộ Y tế Trần Văn Thuấn dự hội nghị",
        "GS.TS Trần Văn Thuấn, Thứ trưởng Bộ Y tế, chủ trì",
        "đoàn do GS.TS. Trần Văn Thuấn làm trưởng đoàn",
        "Thứ trưởng Trần Văn Thuấn thăm gia đình",
        "THỨ TRƯỞNG TRẦN VĂN THUẤN phát biểu",
        "thứ trưởng trần văn thuấn phát biểu",
        "Tra\u0302\u0300n Va\u0306n Thua\u0302\u0301n (NFD) phát biểu",
        "Dự lễ có các Thứ trưởng: Trần Văn Thuấn, Lê Thị Khác",
    ],
)
def test_name_with_or_without_role_words_and_titles(text: str) -> None:
    assert officials(text) == ("tran-van-thuan",)


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("PGS.TS.BSCKII Nguyễn Tri Thức, Thứ trưởng Bộ Y tế chủ trì", "nguyen-tri-thuc"),
        ("TS.BSCK II Nguyễn Tri Thức - Thứ trưởng Bộ Y tế đến dự", "nguyen-tri-thuc"),
        ("Đại biểu Nguyễn Tri Thức: Kiến nghị Chính phủ", "nguyen-tri-thuc"),
        ("đồng chí Đỗ Xuân Tuyên, Thứ trưởng Bộ Y tế", "do-xuan-tuyen"),
        ("TS.BS Vũ Mạnh Hà, Thứ trưởng Thường trực Bộ Y tế tham dự", "vu-manh-ha"),
        ("PGS.TS Nguyễn Thị Liên Hương chủ trì", "nguyen-thi-lien-huong"),
        ("Bộ trưởng Đào Hồng Lan phát biểu", "dao-hong-lan"),
        ("Nhân chuyến thăm của Bộ trưởng Đào Hồng Lan tới Cu-ba", "dao-hong-lan"),
        ("Bộ trưởng Đào Hồng Lan ký kết Bản ghi nhớ với Hàn Quốc", "dao-hong-lan"),
        ("Theo Bộ trưởng Đào Hồng Lan, ngành y tế cần", "dao-hong-lan"),
    ],
)
def test_academic_titles_honorifics_and_taking_part(text: str, slug: str) -> None:
    assert officials(text) == (slug,)


def test_several_leaders_in_one_item() -> None:
    text = (
        "Dự hội nghị có Bộ trưởng Bộ Y tế Đào Hồng Lan; các Thứ trưởng: Đỗ Xuân Tuyên, "
        "Lê Đức Luận và PGS.TS Nguyễn Thị Liên Hương."
    )
    assert officials("Tin", text) == (
        "dao-hong-lan",
        "do-xuan-tuyen",
        "nguyen-thi-lien-huong",
        "le-duc-luan",
    )


# -- other countries, ministries and people -------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Bộ trưởng Bộ Y tế Lào Bounfeng Phoummalaysith cho biết",
        "hội đàm với Bộ trưởng Bộ Y tế CHDCND Lào",
        "Bộ trưởng Bộ Y tế Cu-ba thăm Viện Pasteur",
        "Bộ trưởng Y tế Hung-ga-ri thăm Trường Đại học Y Hà Nội",
        "Thứ trưởng Bộ Y tế Cộng hòa Séc làm việc tại Hà Nội",
        "ông Sok Vannarith, Bộ trưởng Bộ Y tế Vương quốc Cam-pu-chia",
        "Thứ trưởng Bộ Y tế Xri Lan-ca mong muốn học hỏi",
        "Bộ trưởng Bộ Y tế Công cộng Thái Lan đề nghị",
        "Bộ trưởng Bộ Y tế Thái Lan Anutin Charnvirakul cho biết",
        "Bộ trưởng Bộ Y tế nước bạn cảm ơn",
        "Thứ trưởng Bộ Y tế, Lao động và Phúc lợi Nhật Bản ông Hamachi Masakazu",
        "Phó Thủ tướng Lê Thành Long chủ trì cuộc họp",
        "Tổng Bí thư Tô Lâm dự lễ khởi công",
        "TS.BS. Hà Anh Đức, Cục trưởng Cục Quản lý Khám, chữa bệnh phát biểu",
        "Thứ trưởng Bộ Công an Nguyễn Văn Long dự",
        "Thứ trưởng Bộ Tài chính Đinh Công Bảo đồng chủ trì",
        "Hội nghị Bộ trưởng Y tế ASEAN lần thứ 16",
        "các Bộ trưởng Bộ Y tế của 10 nước ASEAN",
        "Bà Nguyễn Thúy Anh, Phó Trưởng ban Chính sách Chiến lược Trung ương",
        "TS.BS Nguyễn Thị Hương, Giám đốc Bệnh viện Chợ Rẫy",
        "BSCKII Trần Văn Thuận, Trưởng khoa Cấp cứu",
        "Trần Văn Thuấ",  # a name cut short is not the name
    ],
)
def test_other_countries_ministries_and_people_are_never_tagged(text: str) -> None:
    assert officials(text) == ()
    assert discovered(text) == []


def test_our_leader_receiving_a_foreign_minister_is_ours_alone() -> None:
    text = "Bộ trưởng Đào Hồng Lan tiếp Bộ trưởng Bộ Y tế Cộng hòa Mô-dăm-bích Helena Mucavele"
    assert officials(text) == ("dao-hong-lan",)
    assert discovered(text) == []


# -- references: former, late, signers, those represented -----------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Dự lễ có nguyên Bộ trưởng Bộ Y tế Nguyễn Thị Kim Tiến",
        "bà Nguyễn Thị Kim Tiến, nguyên Bộ trưởng Bộ Y tế, phát biểu",
        "tưởng niệm cố Bộ trưởng Bộ Y tế Phạm Ngọc Thạch",
        "Giáo sư Phạm Ngọc Thạch là Bộ trưởng Bộ Y tế đầu tiên của nước Việt Nam",
        "ông giữ cương vị Bộ trưởng Bộ Y tế từ năm 1958",
        "Quyết định số 1234/QĐ-BYT do Bộ trưởng Bộ Y tế ký ngày 12/3",
        "Bộ trưởng Bộ Y tế đã ký Quyết định thành lập Hội đồng",
        "Thừa lệnh Bộ trưởng, Chánh Văn phòng Bộ ký công văn",
        "theo ủy quyền của Bộ trưởng Bộ Y tế, Cục trưởng ký",
        "theo chỉ đạo của Bộ trưởng Bộ Y tế, các đơn vị",
        "trao Quyết định của Bộ trưởng Bộ Y tế bổ nhiệm lại",
        "trao Bằng khen của Bộ trưởng Bộ Y tế",
        "nhận Bằng khen Bộ trưởng Bộ Y tế",
        "Phóng viên: Thưa Bộ trưởng, Nghị quyết 72",
        "Thứ trưởng Bộ Y tế làm trưởng đoàn",  # several deputies: no one in particular
        "Nhận lời mời từ Bộ trưởng Bộ Y tế CHDCND Lào",
    ],
)
def test_references_are_not_taking_part(text: str) -> None:
    assert officials("Tin", text) == ()
    assert discovered("Tin", text) == []


def test_a_leader_named_only_as_someone_represented_is_not_there() -> None:
    text = "Thay mặt Bộ trưởng Bộ Y tế, Thứ trưởng Đỗ Xuân Tuyên trao Kỷ niệm chương"
    assert officials("Tin", text) == ("do-xuan-tuyen",)
    former = "Dự lễ có nguyên Thứ trưởng Bộ Y tế Lê Đức Luận"  # if he had retired
    assert officials("Tin", former) == ()


# -- roles with no name ---------------------------------------------------------------------


def test_role_with_no_name_resolves_to_the_holder_on_that_date() -> None:
    text = "Ngày 08/7/2025, Bộ Y tế tổ chức cuộc họp. Bộ trưởng Bộ Y tế"
    assert officials("Tiêu đề", text) == ("dao-hong-lan",)
    standing = "Thứ trưởng Thường trực Bộ Y tế phát biểu"
    assert officials("Tiêu đề", standing, when=datetime(2025, 11, 3, tzinfo=UTC)) == ("vu-manh-ha",)
    # Before the tenure in the registry starts, the role names no one.
    assert officials("Tiêu đề", standing, when=datetime(2025, 7, 8, tzinfo=UTC)) == ()


@pytest.mark.parametrize(
    "text",
    [
        "Sáng 5/3, tại Bệnh viện Bạch Mai, Bộ trưởng Bộ Y tế chủ trì hội nghị",
        "tại Trạm Y tế xã Mường Nhé, tỉnh Điện Biên, Bộ trưởng Bộ Y tế đã tặng quà",
        "Tại Thành phố Hồ Chí Minh, Bộ trưởng Bộ Y tế kiểm tra",
    ],
)
def test_a_place_before_a_role_is_not_a_persons_name(text: str) -> None:
    assert officials("Tin", text) == ("dao-hong-lan",)


def test_role_resolution_follows_tenure_dates() -> None:
    rules = Classification(
        officials=(
            Official("old", "Nguyễn Văn Cũ", (), (Tenure("Bộ trưởng", None, date(2024, 6, 30)),)),
            Official("new", "Trần Thị Mới", (), (Tenure("Bộ trưởng", date(2024, 7, 1), None),)),
        )
    )
    classifier = Classifier(rules)
    text = "Bộ trưởng Bộ Y tế chủ trì hội nghị"
    assert classifier.tag(
        entry("Tin", text, when=datetime(2024, 6, 30, 3, tzinfo=UTC))
    ).officials == ("old",)
    assert classifier.tag(
        entry("Tin", text, when=datetime(2024, 7, 1, 3, tzinfo=UTC))
    ).officials == ("new",)
    # The day is Vietnam's: 30/06 20:00 UTC is already 1 July in Hanoi.
    late = datetime(2024, 6, 30, 20, tzinfo=UTC)
    assert classifier.tag(entry("Tin", text, when=late)).officials == ("new",)


def test_role_before_the_tenure_starts_resolves_to_no_one() -> None:
    early = datetime(2020, 1, 1, tzinfo=UTC)
    assert officials("Tin", "Bộ trưởng Bộ Y tế chủ trì", when=early) == ()


# -- discovery -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "title",
    [
        "Thứ trưởng Bộ Y tế Phạm Văn Mới thăm Bệnh viện Bạch Mai",
        "PGS.TS Phạm Văn Mới, Thứ trưởng Bộ Y tế kiểm tra vùng trồng dược liệu",
        "Phạm Văn Mới, Thứ trưởng Bộ Y tế làm việc tại Đắk Lắk",
        "Thủ tướng bổ nhiệm ông Phạm Văn Mới giữ chức Thứ trưởng Bộ Y tế",
        "Thứ trưởng Thường trực Bộ Y tế Việt Nam Phạm Văn Mới dự",
    ],
)
def test_a_new_leader_is_discovered_in_every_form_that_names_our_ministry(title: str) -> None:
    assert discovered(title) == ["Phạm Văn Mới"]


@pytest.mark.parametrize(
    ("title", "summary", "truncated"),
    [
        ("Thứ trưởng Bộ Y tế làm trưởng đoàn", "", False),
        ("Bộ trưởng Bộ Y tế Lào Bounfeng Phoummalaysith", "", False),
        ("Thứ trưởng Nhật Bản Hamachi Masakazu", "", False),
        ("Thứ trưởng Phạm Văn Mới dự", "", False),  # no ministry named: could be any
        ("Thứ trưởng Bộ Công an Nguyễn Văn Long", "", False),
        ("Tin", "Bộ trưởng Bộ Y tế Đào Hồn", True),  # a known name cut short
        ("Tin", "Thứ trưởng Bộ Y tế Phạm Văn", True),  # an unknown name cut short
        ("Bộ trưởng Bộ Y tế Đào Hồng Lan. Ảnh: Trần Minh", "", False),
        ("nguyên Thứ trưởng Bộ Y tế Nguyễn Viết Tiến phát biểu", "", False),
        ("ông Nguyễn Viết Tiến, nguyên Thứ trưởng Bộ Y tế", "", False),
        ("Bộ trưởng Bộ Y tế Thái Lan dự", "", False),
        ("Bộ trưởng Bộ Y tế Hà Lan dự", "", False),  # two words: a country here
        ("tại Bệnh viện Bạch Mai, Thứ trưởng Bộ Y tế dự", "", False),
    ],
)
def test_text_that_is_not_a_new_leader_discovers_no_one(
    title: str, summary: str, truncated: bool
) -> None:
    assert discovered(title, summary, truncated=truncated) == []


def test_a_persons_name_is_vietnamese_syllables_after_a_family_name() -> None:
    assert person_name(["Triệu", "Văn", "Khải"])
    assert person_name(["Nguyễn", "Thị", "Liên", "Hương"])
    assert not person_name(["Bounfeng", "Phoummalaysith"])
    assert not person_name(["Cộng", "Hòa", "Séc"])  # not a family name
    assert not person_name(["Mô-dăm-bích"])
    assert not person_name(["Lê", "Anutin", "Charn"])


NEW_DEPUTY = (
    "HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ\n"
    "Trao Quyết định bổ nhiệm Thứ trưởng Bộ Y tế\n"
    "Thứ Hai, ngày 06/04/2026 09:00Chiều 06/4/2026, Bộ trưởng Đào Hồng Lan trao Quyết định "
    "của Thủ tướng bổ nhiệm PGS.TS Phạm Văn Mới giữ chức Thứ trưởng Bộ Y tế...\n"
    "Đồng chí Phạm Văn Mới thăm Bệnh viện E\n"
    "Thứ Tư, ngày 08/04/2026 02:00Sáng 08/4/2026, đồng chí Phạm Văn Mới thăm và làm việc...\n"
)
LATER = (
    "HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ\n"
    "Phạm Văn Mới, Thứ trưởng Bộ Y tế làm việc tại Đắk Lắk\n"
    "Thứ Năm, ngày 16/04/2026 02:00Sáng 16/4/2026, Thứ trưởng làm việc với Sở Y tế...\n"
)


def test_a_discovered_leader_gets_feeds_once_two_entries_name_them_then_everywhere(
    project: Project,
) -> None:
    project.write_seed("a.txt", NEW_DEPUTY)
    project.digest("build")
    by_title = {e["title"]: e["officials"] for e in project.entries()}
    # One entry names him with our Ministry's role: not enough for a feed of his own.
    assert by_title["Đồng chí Phạm Văn Mới thăm Bệnh viện E"] == []
    assert not (project.public / "feeds/officials/pham-van-moi.atom").exists()
    assert "pham-van-moi" not in project.digest("officials").stdout
    project.write_seed("b.txt", LATER)
    out = project.digest("build").stdout
    assert "re-tagged" in out
    by_title = {e["title"]: e["officials"] for e in project.entries()}
    # The second names him: every entry is read again, every form now found.
    assert by_title["Đồng chí Phạm Văn Mới thăm Bệnh viện E"] == ["pham-van-moi"]
    assert by_title["Phạm Văn Mới, Thứ trưởng Bộ Y tế làm việc tại Đắk Lắk"] == ["pham-van-moi"]
    assert by_title["Trao Quyết định bổ nhiệm Thứ trưởng Bộ Y tế"] == [
        "dao-hong-lan",
        "pham-van-moi",
    ]
    assert (project.public / "feeds/officials/pham-van-moi.atom").is_file()
    (row,) = [r for r in project.digest("officials").stdout.splitlines() if "pham-van-moi" in r]
    assert "Phạm Văn Mới (Thứ trưởng)" in row and row.endswith("not in config")


def test_names_listed_as_not_officials_are_never_discovered(project: Project) -> None:
    project.config.write_text(
        base_config('[classify]\nnot_officials = ["Phạm Văn Mới"]\n'), encoding="utf-8"
    )
    project.write_seed("a.txt", NEW_DEPUTY)
    project.write_seed("b.txt", LATER)
    project.digest("build")
    assert all(e["officials"] in ([], ["dao-hong-lan"]) for e in project.entries())


def test_names_match_across_tone_conventions() -> None:
    rules = Classification(
        officials=(
            Official("nguyen-thi-thuy", "Nguyễn Thị Thuỳ", (), (Tenure("Thứ trưởng", None, None),)),
        )
    )
    classifier = Classifier(rules)
    for spelling in ("Nguyễn Thị Thuỳ", "Nguyễn Thị Thùy", "NGUYỄN THỊ THÙY"):
        assert classifier.tag(entry(f"Thứ trưởng {spelling} dự")).officials == ("nguyen-thi-thuy",)


# -- topics ------------------------------------------------------------------------------------

TOPIC_CASES = {
    "chuyen-doi-so": (
        ["Tiếp tục đẩy nhanh tiến độ chuyển đổi số ngành Y tế", "Triển khai bệnh án điện tử"],
        ["Chuyển giao kỹ thuật cho bệnh viện tuyến tỉnh", "Số ca mắc sốt xuất huyết tăng"],
    ),
    "hop-tac-quoc-te": (
        [
            "Tiếp Đại sứ Cu Ba",
            "Hợp tác y tế Việt Nam - Ba Lan",
            "Thứ trưởng Lê Đức Luận tiếp Thứ trưởng Bộ Y tế Xri Lan-ca",
            "Bộ trưởng Y tế Hung-ga-ri thăm Trường Đại học Y Hà Nội",
        ],
        ["Ký kết thoả thuận hợp tác với Công ty TNHH", "Vụ Hợp tác quốc tế tổng kết năm"],
    ),
    "bao-hiem-y-te": (
        ["12 điểm mới của chính sách BHYT", "Quyền lợi bảo hiểm y tế khi khám bệnh"],
        ["Bảo hiểm xã hội tự nguyện", "Bảo hiểm nhân thọ"],
    ),
    "to-chuc-can-bo": (
        ["Trao Quyết định công tác cán bộ", "Bộ Y tế điều động, bổ nhiệm Viện trưởng"],
        ["Tôn vinh cán bộ y tế cơ sở", "Công đoàn Y tế biểu dương cán bộ"],
    ),
    "phong-chong-dich-benh": (
        ["Công tác phòng, chống dịch sốt xuất huyết", "Ghi nhận ca sốt rét ngoại lai"],
        [
            "Nâng cao chất lượng dịch vụ y tế",
            "Giao dịch điện tử",
            "Chiến dịch truyền thông",
            "Anh hùng Lao động Phạm Ngọc Thạch",
            "Công bố Quyết định tổ chức lại Viện Sốt rét - Ký sinh trùng",
        ],
    ),
    "the-che-chinh-sach": (
        ["Hoàn thiện thể chế và quy định pháp luật", "Dự thảo Nghị định về y tế"],
        ["Kỷ luật lao động", "Viện Chiến lược và Chính sách Y tế tổng kết năm"],
    ),
    "kham-chua-benh": (
        [
            "Nâng cao chất lượng khám bệnh, chữa bệnh tại Bệnh viện Bạch Mai",
            "Ghép phổi thành công từ người cho chết não",
        ],
        [
            "Khởi công Trung tâm Kỹ thuật cao của Bệnh viện Hữu nghị Việt Đức",
            "Bệnh viện E công bố quyết định bổ nhiệm Phó Giám đốc",
            "Giá dịch vụ khám bệnh, chữa bệnh phải tính đúng, tính đủ",
            "Cục Quản lý Khám, chữa bệnh ký kết",
        ],
    ),
    "y-te-co-so": (
        ["Tặng thiết bị y tế cho tuyến cơ sở", "Nâng cấp trạm y tế xã"],
        ["Cơ sở dữ liệu y tế", "Cơ sở 2 Bệnh viện Bạch Mai"],
    ),
    "duoc-thuc-pham": (
        ["Siết chặt quản lý thực phẩm chức năng", "Bảo đảm cung ứng thuốc hiếm"],
        [
            "Trường Đại học Dược Hà Nội khai giảng",
            "Giám sát kháng thuốc",
            "Thuốc lá",
            "Kỷ niệm Ngày Thầy thuốc Việt Nam",
            "Bổ nhiệm Cục trưởng Cục Quản lý Dược",
        ],
    ),
    "thien-tai-khan-cap": (
        ["Khắc phục hậu quả sau mưa lũ", "Ứng phó bão số 3"],
        ["Báo cáo kết quả", "Sốc nhiệt trong nắng nóng"],
    ),
    "dan-so": (
        ["Lễ mít tinh ngày Dân số Thế giới", "Luật Dân số"],
        ["Chăm sóc sức khỏe nhân dân", "Khu chăm sóc người cao tuổi"],
    ),
    "nhan-luc-dao-tao": (
        ["Lễ khai giảng năm học", "Đào tạo nguồn nhân lực y tế"],
        ["Đảm bảo nhân lực, trang thiết bị phục vụ Đại hội", "Hội nghị khoa học"],
    ),
    "quoc-hoi": (
        ["Bộ trưởng trả lời chất vấn của đại biểu Quốc hội", "Tiếp xúc cử tri tỉnh Bắc Ninh"],
        ["Hội nghị tổng kết công tác năm", "Đại hội Công đoàn Y tế"],
    ),
    "y-hoc-co-truyen": (
        ["Kết hợp y học cổ truyền với y học hiện đại", "Kiểm tra vùng trồng dược liệu"],
        ["Bổ nhiệm Cục trưởng Cục Quản lý Y, Dược cổ truyền", "Hội nghị khoa học"],
    ),
}


def test_every_default_topic_has_cases() -> None:
    assert set(TOPIC_CASES) == {t.slug for t in DEFAULT.topics}


@pytest.mark.parametrize("slug", sorted(TOPIC_CASES))
def test_topic_matches_and_does_not_match(slug: str) -> None:
    must, must_not = TOPIC_CASES[slug]
    classifier = Classifier(DEFAULT)
    for title in must:
        assert slug in classifier.topics(title, "", ()), title
    for title in must_not:
        assert slug not in classifier.topics(title, "", ()), title


def test_topic_weights_title_summary_and_body() -> None:
    classifier = Classifier(DEFAULT)
    # A deciding phrase in the title decides; in the summary it needs support.
    assert "dan-so" in classifier.topics("Bàn về dân số", "", ())
    assert "dan-so" not in classifier.topics("Tin", "Bàn về dân số và phát triển", ())
    assert "dan-so" in classifier.topics("Tin", "Bàn về dân số", ("Dân số.", "khác", "khác"))
    # A weak phrase alone decides nothing: "thuốc" is also in "thầy thuốc".
    assert "duoc-thuc-pham" not in classifier.topics("Thuốc", "thuốc", ())
    assert "duoc-thuc-pham" in classifier.topics("Thuốc", "cung ứng thuốc", ())
    # A body adds what it sustains: 40% of its paragraphs alone decide.
    assert "dan-so" in classifier.topics("Tin", "", ("dân số",) * 4 + ("khác",) * 6)
    assert "dan-so" not in classifier.topics("Tin", "", ("dân số",) * 3 + ("khác",) * 7)
    # A long article that names a subject a few times in passing gets nothing for it.
    long_body = ("dân số",) * 3 + ("khác",) * 37
    assert "dan-so" not in classifier.topics("Tin", "Có nói về dân số", long_body)
    assert "dan-so" in classifier.topics(
        "Tin", "Có nói về dân số", ("dân số",) * 5 + ("khác",) * 35
    )


# -- config ------------------------------------------------------------------------------------

OFFICIAL = '[[officials]]\nslug = "a-b"\nname = "A B"\nroles = [{ role = "Thứ trưởng" }]\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[[topics]]\nslug = "x"\nname = "X"\n[[rules]]\ntopic = "y"\nphrases = ["z"]\n',
            "rules[0].topic: unknown topic 'y'; add it under [[topics]]",
        ),
        (OFFICIAL + OFFICIAL, "officials[1].slug: duplicate slug 'a-b'"),
        (
            OFFICIAL.replace('"Thứ trưởng" }', '"Thứ trưởng", from = "2024-13-01" }'),
            "officials[0].roles[0].from: must be a date written like 2024-06-01",
        ),
        (
            OFFICIAL.replace(
                '"Thứ trưởng" }', '"Thứ trưởng", from = 2024-02-01, to = 2024-01-01 }'
            ),
            "officials[0].roles[0].to: 2024-01-01 is before from = 2024-02-01",
        ),
        (OFFICIAL.replace("Thứ trưởng", "Vụ trưởng"), "officials[0].roles[0].role: 'Vụ trưởng' is"),
        (OFFICIAL.replace("a-b", "Đào Hồng Lan"), "officials[0].slug: 'Đào Hồng Lan' must be"),
        ('[[topics]]\nslug = "x"\n', "topics[0].name: must be a non-empty string"),
        ('[topics]\nslug = "x"\n', "topics: must be an array of tables: write [[topics]]"),
        ('[[officials]]\nslug = "a"\nname = "A"\ncolour = 1\n', "officials[0].colour: unknown key"),
        (
            '[[rules]]\ntopic = "dan-so"\nsignals = ["tarot"]\n',
            "rules[0].signals: unknown signal 'tarot'",
        ),
        ("[classify]\ndiscover_after = 0\n", "classify.discover_after: must be a whole number"),
    ],
)
def test_config_errors_name_the_key(project: Project, text: str, message: str) -> None:
    project.config.write_text(base_config(text), encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load(project.config)
    assert f"{project.config}: {message}" in str(error.value)
    assert "\n" not in str(error.value)


def test_a_config_adds_to_the_shipped_taxonomy_and_replaces_by_slug(project: Project) -> None:
    extra = (
        '[[officials]]\nslug = "le-duc-luan"\nname = "Lê Đức Luận"\n'
        'roles = [{ role = "Thứ trưởng", to = 2026-06-30 }]\n'
        '[[topics]]\nslug = "hien-mau"\nname = "Hiến máu"\n'
        '[[rules]]\ntopic = "hien-mau"\nphrases = ["hiến máu"]\n'
        '[[rules]]\ntopic = "dan-so"\nphrases = ["sinh con thứ ba"]\n'
    )
    project.config.write_text(base_config(extra), encoding="utf-8")
    rules = load(project.config).classification
    assert [o.slug for o in rules.officials] == [o.slug for o in DEFAULT.officials]
    (luan,) = [o for o in rules.officials if o.slug == "le-duc-luan"]
    assert luan.roles[0].end == date(2026, 6, 30)
    assert [t.slug for t in rules.topics][-1] == "hien-mau"
    assert "dan-so" in Classifier(rules).topics("Sinh con thứ ba", "", ())
    # Without the shipped taxonomy, only what the config lists.
    alone = base_config("[classify]\ndefaults = false\n" + extra.split("[[rules]]")[0])
    project.config.write_text(alone, encoding="utf-8")
    rules = load(project.config).classification
    assert [o.slug for o in rules.officials] == ["le-duc-luan"]
    assert [t.slug for t in rules.topics] == ["hien-mau"]


# -- re-tagging after a config change ---------------------------------------------------------


def test_config_change_retags_without_parsing_or_bumping_updated(
    make_project: Callable[..., Project],
) -> None:
    p: Project = make_project()
    shutil.copytree(DATA / "seeds", p.seeds, dirs_exist_ok=True)
    p.digest("build")
    before = {e["id"]: e for e in p.entries()}
    # A leader leaves the registry, and a topic comes.
    extra = (
        '[[topics]]\nslug = "hien-mau"\nname = "Hiến máu"\n'
        '[[rules]]\ntopic = "hien-mau"\nphrases = ["hiến máu"]\n'
        '[[officials]]\nslug = "le-duc-luan"\nname = "Lê Đức Luận"\n'
        'roles = [{ role = "Thứ trưởng", to = 2025-01-01 }]\n'
    )
    p.config.write_text(base_config(extra), encoding="utf-8")
    out = p.digest("build").stdout
    assert "0 parsed" in out and "re-tagged" in out
    after = {e["id"]: e for e in p.entries()}
    assert all(after[i]["updated"] == before[i]["updated"] for i in before)
    assert sum("hien-mau" in e["topics"] for e in after.values()) == 1
    assert "hien-mau" in p.digest("topics").stdout


def test_seed_tag_expectations_were_written_by_reading() -> None:
    """The file states how it was made, and keeps each reader's reason."""
    import json

    data = json.loads((DATA / "seed_tags.json").read_text(encoding="utf-8"))
    assert "by reading" in data["_note"]
    assert all(r["why"] for r in data["entries"])
    assert Path(DATA / "README.md").read_text(encoding="utf-8").count("seed_tags.json") >= 1


# Letters with and without marks, word-joining and breaking marks, digits, a combining mark,
# a character past the BMP: what the boundaries of a phrase may meet.
_CHARS = st.sampled_from(list("ab yếĐ_-,.1\u0301😀"))


@given(key=st.text(_CHARS, min_size=1, max_size=4), text=st.text(_CHARS, max_size=24))
@settings(max_examples=2000)
def test_phrase_found_where_the_bounded_expression_finds_it(key: str, text: str) -> None:
    """Topic phrases are found with `str.find` and boundary checks: exactly where the
    expression `(?<!\\w)phrase(?!\\w)` they replace matches, planted or not."""
    bounded = re.compile(r"(?<!\w)" + re.escape(key) + r"(?!\w)")
    for haystack in (text, text + key, key + text, f"{text} {key}.{text}"):
        assert _within(key, haystack) == bool(bounded.search(haystack)), haystack


@given(
    keys=st.lists(st.text(_CHARS, min_size=1, max_size=4), min_size=1, max_size=4),
    text=st.text(_CHARS, max_size=24),
)
@settings(max_examples=2000)
def test_names_and_roles_found_where_the_expression_of_alternatives_finds_them(
    keys: list[str], text: str
) -> None:
    """Names and roles are found with `str.find`, one after another: the spans `finditer`
    of the expression of alternatives they replace gives, keys inside keys included."""
    keys = sorted({k for k in map(_match_key, keys) if k})  # as the classifier keeps them
    pattern = _phrase_pattern(keys)
    assume(pattern is not None)
    assert pattern is not None
    planted = [f"{text}{keys[0]} {text}", f"{' '.join(keys)}.{text}", "".join(keys), text]
    for haystack in planted:
        assert _find_all(keys, haystack) == [m.span() for m in pattern.finditer(haystack)]
