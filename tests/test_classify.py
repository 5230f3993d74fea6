"""Officials and topics: the seeds' expectations table, every form, and config errors."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from conftest import DATA, ROOT, Project, real_config

from digest.classify import Classifier
from digest.config import Classification, ConfigError, Official, Tenure, load
from digest.model import Entry

DEFAULT = load(ROOT / "config.toml").classification


def entry(
    title: str,
    summary: str = "",
    content: tuple[str, ...] | None = None,
    *,
    when: datetime = datetime(2025, 7, 8, 9, 19, tzinfo=UTC),
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


def officials(*texts: str, when: datetime = datetime(2025, 7, 8, tzinfo=UTC)) -> tuple[str, ...]:
    return Classifier(DEFAULT).tag(entry(texts[0], *texts[1:2], when=when)).officials


# -- the seeds --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seed_entries(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    import shutil

    root = tmp_path_factory.mktemp("tags")
    shutil.copytree(ROOT / "seeds", root / "seeds")
    (root / "config.toml").write_text(real_config(), encoding="utf-8")
    p = Project(root)
    p.digest("build")
    by_first: dict[str, dict[str, object]] = {}
    for e in p.entries():
        first = e["sources"][0]
        by_first[f"{first['file']}:{first['line']}"] = e
    return by_first


EXPECTED = json.loads((DATA / "seed_tags.json").read_text(encoding="utf-8"))["entries"]


@pytest.mark.parametrize("row", EXPECTED, ids=[r["at"] for r in EXPECTED])
def test_seed_entry_officials_and_topics(
    seed_entries: dict[str, dict[str, object]], row: dict[str, object]
) -> None:
    found = seed_entries[str(row["at"])]
    assert str(found["title"]).startswith(str(row["title"]))
    assert found["officials"] == row["officials"]
    assert found["topics"] == row["topics"]


def test_seed_expectations_cover_every_entry(seed_entries: dict[str, object]) -> None:
    assert {r["at"] for r in EXPECTED} == set(seed_entries)
    tagged = [r for r in EXPECTED if r["officials"]]
    assert len(tagged) == 58
    # No foreign minister, deputy prime minister or department head ever becomes a leader.
    slugs = {s for r in EXPECTED for s in r["officials"]}
    assert slugs == {o.slug for o in DEFAULT.officials}


# -- forms of a leader's name -----------------------------------------------------------------


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
    ],
)
def test_academic_titles_and_honorifics(text: str, slug: str) -> None:
    assert officials(text) == (slug,)


@pytest.mark.parametrize(
    "text",
    [
        "Bộ trưởng Bộ Y tế Lào Bounfeng Phoummalaysith cho biết",
        "hội đàm với Bộ trưởng Bộ Y tế CHDCND Lào",
        "Thứ trưởng Bộ Y tế, Lao động và Phúc lợi Nhật Bản ông Hamachi Masakazu",
        "Phó Thủ tướng Lê Thành Long chủ trì cuộc họp",
        "Tổng Bí thư Tô Lâm dự lễ khởi công",
        "TS.BS. Hà Anh Đức, Cục trưởng Cục Quản lý Khám, chữa bệnh phát biểu",
        "Thứ trưởng Bộ Công an Nguyễn Văn Long dự",
        "Hội nghị Bộ trưởng Y tế ASEAN lần thứ 16",
        "các Bộ trưởng Bộ Y tế của 10 nước ASEAN",
        "Bà Nguyễn Thúy Anh, Phó Trưởng ban Chính sách Chiến lược Trung ương",
        "Trần Văn Thuấ",  # a name cut short is not the name
    ],
)
def test_other_ministries_countries_and_people_are_never_tagged(text: str) -> None:
    assert officials(text) == ()


# -- roles with no name -----------------------------------------------------------------------


def test_role_with_no_name_resolves_to_the_holder_on_that_date() -> None:
    text = "Ngày 08/7/2025, Bộ Y tế tổ chức cuộc họp. Bộ trưởng Bộ Y tế"
    assert officials("Tiêu đề", text) == ("dao-hong-lan",)
    standing = "Thứ trưởng Thường trực Bộ Y tế phát biểu"
    assert officials("Tiêu đề", standing, when=datetime(2025, 11, 3, tzinfo=UTC)) == ("vu-manh-ha",)
    # Before the tenure in config.toml starts, the role names no one.
    assert officials("Tiêu đề", standing, when=datetime(2025, 7, 8, tzinfo=UTC)) == ()


def test_role_resolution_follows_tenure_dates() -> None:
    rules = Classification(
        officials=(
            Official("old", "Nguyễn Văn Cũ", (), (Tenure("Bộ trưởng", None, date(2024, 6, 30)),)),
            Official("new", "Trần Thị Mới", (), (Tenure("Bộ trưởng", date(2024, 7, 1), None),)),
        )
    )
    classifier = Classifier(rules)
    text = "Bộ trưởng Bộ Y tế chủ trì hội nghị"
    at = lambda y, m, d: datetime(y, m, d, 3, tzinfo=UTC)  # noqa: E731
    assert classifier.tag(entry("Tin", text, when=at(2024, 6, 30))).officials == ("old",)
    assert classifier.tag(entry("Tin", text, when=at(2024, 7, 1))).officials == ("new",)
    # The day is Vietnam's: 30/06 20:00 UTC is already 1 July in Hanoi.
    late = datetime(2024, 6, 30, 20, tzinfo=UTC)
    assert classifier.tag(entry("Tin", text, when=late)).officials == ("new",)


@pytest.mark.parametrize(
    "text",
    [
        "Thứ trưởng Bộ Y tế làm trưởng đoàn",  # several deputies: no one in particular
        "trao Quyết định của Bộ trưởng Bộ Y tế bổ nhiệm lại",  # a reference, not taking part
        "trao Bằng khen của Bộ trưởng Bộ Y tế",
        "Phóng viên: Thưa Bộ trưởng, Nghị quyết 72",  # bare role: any minister
        "Nhận lời mời từ Bộ trưởng Bộ Y tế CHDCND Lào",
    ],
)
def test_roles_that_do_not_resolve(text: str) -> None:
    assert officials("Tin", text) == ()


def test_role_before_the_tenure_starts_resolves_to_no_one() -> None:
    early = datetime(2020, 1, 1, tzinfo=UTC)
    assert officials("Tin", "Bộ trưởng Bộ Y tế chủ trì", when=early) == ()


# -- discovery ---------------------------------------------------------------------------------


def tags_of(title: str, summary: str = "", *, truncated: bool = False):  # type: ignore[no-untyped-def]
    return Classifier(DEFAULT).tag(entry(title, summary, truncated=truncated))


def test_new_leader_after_a_ministry_role_is_discovered() -> None:
    tags = tags_of("Thứ trưởng Bộ Y tế Phạm Văn Mới thăm Bệnh viện Bạch Mai")
    assert tags.officials == ("pham-van-moi",)
    assert [(d.slug, d.name, d.role) for d in tags.discovered] == [
        ("pham-van-moi", "Phạm Văn Mới", "Thứ trưởng")
    ]
    assert tags_of("Bộ trưởng Bộ Y tế GS.TS Lê Thị Mới dự").officials == ("le-thi-moi",)


@pytest.mark.parametrize(
    ("title", "summary", "truncated"),
    [
        ("Thứ trưởng Bộ Y tế làm trưởng đoàn", "", False),
        ("Thứ trưởng Bộ Y tế dự", "", False),
        ("Bộ trưởng Bộ Y tế Lào Bounfeng Phoummalaysith", "", False),
        ("Thứ trưởng Nhật Bản Hamachi Masakazu", "", False),
        ("Thứ trưởng Bộ Công an Nguyễn Văn Long", "", False),
        ("Tin", "Bộ trưởng Bộ Y tế Đào Hồn", True),  # a known name cut short
        ("Tin", "Thứ trưởng Bộ Y tế Phạm Văn", True),  # an unknown name cut short
        ("Bộ trưởng Bộ Y tế Đào Hồng Lan. Ảnh: Trần Minh", "", False),
    ],
)
def test_text_that_is_not_a_new_leader_discovers_no_one(
    title: str, summary: str, truncated: bool
) -> None:
    assert tags_of(title, summary, truncated=truncated).discovered == ()


# -- topics ------------------------------------------------------------------------------------

TOPIC_CASES = {
    "chuyen-doi-so": (
        ["Tiếp tục đẩy nhanh tiến độ chuyển đổi số ngành Y tế", "Triển khai bệnh án điện tử"],
        ["Chuyển giao kỹ thuật cho bệnh viện tuyến tỉnh", "Số ca mắc sốt xuất huyết tăng"],
    ),
    "hop-tac-quoc-te": (
        ["Tiếp Đại sứ Cu Ba", "Hợp tác y tế Việt Nam - Pháp", "Hội nghị Bộ trưởng Y tế ASEAN"],
        ["Ký kết thoả thuận hợp tác với Công ty TNHH", "Hoàn thiện khung pháp luật"],
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
        ["Nâng cao chất lượng dịch vụ y tế", "Giao dịch điện tử", "Chiến dịch truyền thông"],
    ),
    "the-che-chinh-sach": (
        ["Hoàn thiện thể chế và quy định pháp luật", "Dự thảo Nghị định về y tế", "Quốc hội"],
        ["Kỷ luật lao động", "Viện Chiến lược và Chính sách Y tế tổng kết năm"],
    ),
    "kham-chua-benh": (
        ["Khởi công Khoa Khám bệnh Bệnh viện Bạch Mai", "Cấp cứu kịp thời bệnh nhân"],
        ["Cục Quản lý Khám, chữa bệnh ký kết", "Lễ mít tinh ngày dân số"],
    ),
    "y-te-co-so": (
        ["Tặng thiết bị y tế cho tuyến cơ sở", "Nâng cấp trạm y tế xã"],
        ["Cơ sở dữ liệu y tế", "Cơ sở 2 Bệnh viện Bạch Mai"],
    ),
    "duoc-thuc-pham": (
        ["Siết chặt quản lý thực phẩm chức năng", "Viện Kiểm nghiệm thuốc"],
        ["Trường Đại học Kỹ thuật Y - Dược khai giảng", "Giám sát kháng thuốc", "Thuốc lá"],
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
    assert "dan-so" in classifier.topics("Tin", "Bàn về dân số và phát triển", ("Dân số.",))
    assert "dan-so" not in classifier.topics("Tin", "Bàn về dân số và phát triển", ())
    assert "dan-so" not in classifier.topics("Tin", "", ("dân số",) * 2)
    assert "dan-so" in classifier.topics("Tin", "", ("dân số",) * 3)
    # A long body must keep returning to a subject: 3 of 40 paragraphs is not enough.
    long_body = ("dân số",) * 3 + ("khác",) * 37
    assert "dan-so" not in classifier.topics("Tin", "", long_body)
    assert "dan-so" in classifier.topics("Tin", "", ("dân số",) * 10 + ("khác",) * 30)


# -- config ------------------------------------------------------------------------------------

BASE = '[paths]\nseeds = "seeds"\n'
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
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(BASE + text, encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load(path)
    assert f"{path}: {message}" in str(error.value)
    assert "\n" not in str(error.value)


# -- re-tagging after a config change ---------------------------------------------------------


def test_config_change_retags_without_parsing_or_bumping_updated(
    seed_entries: dict[str, dict[str, object]], make_project
) -> None:  # type: ignore[no-untyped-def]
    import shutil

    p: Project = make_project()
    shutil.copytree(ROOT / "seeds", p.seeds, dirs_exist_ok=True)
    config = real_config()
    p.config.write_text(config, encoding="utf-8")
    p.digest("build")
    before = {e["id"]: e for e in p.entries()}
    # Remove one official, add a topic rule.
    config = config.replace(
        '[[officials]]\nslug = "le-duc-luan"\nname = "Lê Đức Luận"\nvariants = []\n'
        'roles = [{ role = "Thứ trưởng" }]\n',
        "",
    )
    config += '\n[[topics]]\nslug = "hien-mau"\nname = "Hiến máu"\n'
    config += '[[rules]]\ntopic = "hien-mau"\nphrases = ["hiến máu"]\n'
    p.config.write_text(config, encoding="utf-8")
    out = p.digest("build").stdout
    assert "0 parsed" in out and "re-tagged" in out
    after = {e["id"]: e for e in p.entries()}
    assert all(after[i]["updated"] == before[i]["updated"] for i in before)
    assert sum("hien-mau" in e["topics"] for e in after.values()) == 1
    # Still named after "Thứ trưởng Bộ Y tế" in the captures: now a discovered official.
    (row,) = [r for r in p.digest("officials").stdout.splitlines() if r.startswith("le-duc-luan")]
    assert row.endswith("not in config")
    assert "hien-mau" in p.digest("topics").stdout


def test_officials_command_lists_discovered_as_not_in_config(project: Project) -> None:

    project.config.write_text(real_config(), encoding="utf-8")
    project.write_seed(
        "new.txt",
        "HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ\n"
        "Thứ trưởng Bộ Y tế Phạm Văn Mới làm việc tại Hưng Yên\n"
        "Thứ Hai, ngày 16/11/2026 02:00Sáng 16/11/2026, Thứ trưởng Bộ Y tế dự...\n",
    )
    project.digest("build")
    lines = project.digest("officials").stdout.splitlines()
    (row,) = [line for line in lines if line.startswith("pham-van-moi")]
    assert "Phạm Văn Mới (Thứ trưởng)" in row and row.endswith("not in config")
    assert "16/11/2026 09:00" in row
    assert project.entries()[0]["officials"] == ["pham-van-moi"]


def test_names_match_across_tone_conventions() -> None:
    rules = Classification(
        officials=(
            Official("nguyen-thi-thuy", "Nguyễn Thị Thuỳ", (), (Tenure("Thứ trưởng", None, None),)),
        )
    )
    classifier = Classifier(rules)
    for spelling in ("Nguyễn Thị Thuỳ", "Nguyễn Thị Thùy", "NGUYỄN THỊ THÙY"):
        assert classifier.tag(entry(f"Thứ trưởng {spelling} dự")).officials == ("nguyen-thi-thuy",)
