"""Ingest through the facade on a real SQLite file: incremental, atomic, order-independent,
and never losing a stored entry, asserted on the BuildReport and the stored entries."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import SEEDS, Project, base_config

from digest.app import Digest, make_digest
from digest.config import load
from digest.ingest import BuildReport
from digest.model import Entry

NEW_FILE = (
    "HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ\n"
    "Thứ trưởng Bộ Y tế Lê Đức Luận thăm Bệnh viện Bạch Mai\n"
    "Thứ Hai, ngày 16/11/2026 02:00Sáng 16/11/2026, Thứ trưởng...\n"
)
SEED_ENTRIES = 100  # 103 dated items in the five seeds, three of them listed twice


@pytest.fixture
def open_app() -> Iterator[Callable[[Project], Digest]]:
    """Facades over projects' stores, closed when the test ends."""
    opened: list[Digest] = []

    def make(project: Project) -> Digest:
        app = make_digest(load(project.config))
        opened.append(app)
        return app

    yield make
    for app in opened:
        app.close()


@pytest.fixture
def app(seeded: Project, open_app: Callable[[Project], Digest]) -> Digest:
    return open_app(seeded)


def by_id(app: Digest) -> dict[str, Entry]:
    return {e.id: e for e in app.entries()}


def snapshot(path: Path) -> tuple[int, bytes]:
    return os.stat(path).st_mtime_ns, path.read_bytes()


def test_a_cold_build_reads_every_file_once(app: Digest) -> None:
    report = app.build()
    assert (report.files_seen, report.files_parsed, report.files_failed) == (5, 5, 0)
    assert (report.entries_new, report.entries_total, report.problems_total) == (
        SEED_ENTRIES,
        SEED_ENTRIES,
        0,
    )
    assert len(report.changed_ids) == SEED_ENTRIES and report.wrote


def test_no_change_rebuild_parses_nothing_and_writes_nothing(seeded: Project, app: Digest) -> None:
    app.build()
    before = snapshot(seeded.store)
    report = app.build()
    assert (report.files_seen, report.files_parsed, report.files_unchanged) == (5, 0, 5)
    assert (report.entries_new, report.entries_updated, report.entries_total) == (0, 0, 100)
    assert not report.wrote and not report.changed_ids
    assert snapshot(seeded.store) == before


def test_touched_file_with_same_content_is_not_reparsed(seeded: Project, app: Digest) -> None:
    app.build()
    os.utime(seeded.seeds / "000_b1ad6872f566675d.txt", ns=(1, 1))
    report = app.build()
    assert (report.files_parsed, report.files_unchanged, report.changed_ids) == (0, 5, frozenset())


def test_new_file_is_merged_and_changed_file_reparsed(seeded: Project, app: Digest) -> None:
    app.build()
    seeded.write_seed("005_new.txt", NEW_FILE)
    report = app.build()
    assert (report.files_seen, report.files_parsed, report.files_unchanged) == (6, 1, 5)
    assert (report.entries_new, report.entries_updated, report.entries_total) == (1, 0, 101)
    (eid,) = report.changed_ids
    # A longer teaser for the same article in a changed file updates the entry.
    seeded.write_seed("005_new.txt", NEW_FILE.replace("Thứ trưởng...", "Thứ trưởng đã tới thăm..."))
    report = app.build()
    assert (report.entries_new, report.entries_updated, report.changed_ids) == (
        0,
        1,
        frozenset({eid}),
    )
    entry = by_id(app)[eid]
    assert entry.title.endswith("Bạch Mai")
    assert entry.summary == "Sáng 16/11/2026, Thứ trưởng đã tới thăm"
    assert entry.updated > entry.published
    # A shorter teaser later never replaces it.
    seeded.write_seed("005_new.txt", NEW_FILE.replace("Thứ trưởng...", "..."))
    report = app.build()
    assert (report.files_parsed, report.entries_new, report.entries_updated) == (1, 0, 0)
    assert by_id(app)[eid].summary == entry.summary


def test_a_build_keeps_its_tagger_until_the_discovered_leaders_change(
    seeded: Project, app: Digest
) -> None:
    app.build()
    tagger = app.ingest.classifier
    seeded.write_seed("005_new.txt", NEW_FILE)  # a known leader: nothing to discover
    app.build()
    assert app.ingest.classifier is tagger
    # Two entries name a leader the registry does not know (discover_after = 2).
    seeded.write_seed(
        "006_new.txt",
        "HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ\n"
        + "".join(
            f"Thứ trưởng Bộ Y tế Phạm Văn Mới thăm trạm y tế xã {i}\n"
            f"Thứ Hai, ngày 1{i}/11/2026 02:00Sáng nay...\n"
            for i in (6, 7)
        ),
    )
    report = app.build()
    assert app.ingest.classifier is not tagger
    assert "pham-van-moi" in app.ingest.classifier.discovered
    assert report.entries_new == 2


def test_deleted_file_leaves_entries_published(seeded: Project, app: Digest) -> None:
    app.build()
    ids = set(by_id(app))
    (seeded.seeds / "004_5ec5374b7f673a92.txt").unlink()
    report = app.build()
    assert (report.files_removed, report.entries_total) == (1, 100)
    after = app.entries()
    assert {e.id for e in after} == ids
    assert all(s.file != "004_5ec5374b7f673a92.txt" for e in after for s in e.sources)


def test_renamed_file_with_same_content_changes_nothing(seeded: Project, app: Digest) -> None:
    app.build()
    before = app.entries()
    os.rename(seeded.seeds / "001_21f9db5134b92a1d.txt", seeded.seeds / "renamed.txt")
    report = app.build()
    assert (report.files_parsed, report.files_renamed) == (0, 1)
    assert (report.entries_new, report.entries_updated) == (0, 0)
    after = app.entries()
    assert [e.id for e in after] == [e.id for e in before]
    files = {s.file for e in after for s in e.sources}
    assert "renamed.txt" in files and "001_21f9db5134b92a1d.txt" not in files


def test_rebuild_from_scratch_gives_the_same_ids(
    seeded: Project,
    make_project: Callable[..., Project],
    open_app: Callable[[Project], Digest],
) -> None:
    first = open_app(seeded)
    first.build()
    entries = first.entries()
    first.close()
    seeded.store.unlink()
    again = open_app(seeded)
    again.build()
    assert [(e.id, e.title, e.summary) for e in again.entries()] == [
        (e.id, e.title, e.summary) for e in entries
    ]
    # Other file names and another order of arrival give the same ids too.
    other = make_project()
    for i, f in enumerate(sorted(SEEDS.iterdir(), reverse=True)):
        shutil.copy(f, other.seeds / f"capture-{i}.txt")
    elsewhere = open_app(other)
    elsewhere.build()
    assert sorted(e.id for e in elsewhere.entries()) == sorted(e.id for e in entries)


def test_bad_files_are_reported_and_others_ingested(seeded: Project, app: Digest) -> None:
    seeded.write_seed("bad-binary.txt", b"\x00\x01\x02binary")
    seeded.write_seed("bad-empty.txt", b"")
    seeded.write_seed("bad-utf8.txt", NEW_FILE.encode().replace(b"Bach", b"B\xffch") + b"\xff\n")
    seeded.write_seed(
        "bad-date.txt",
        "HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ\nNgày không có\nThứ Hai, ngày 31/02/2025 10:00Nội dung\n",
    )
    seeded.write_seed("bad-cut.txt", "HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ\nTin bị cắt\nThứ Hai, ngày 03/1")
    report = app.build()
    assert (report.files_seen, report.files_parsed, report.files_failed) == (10, 10, 2)
    assert report.entries_new == 101
    where = {(p.file, p.line): p.message for p in report.problems}
    assert where[("bad-binary.txt", 1)] == "binary file (NUL byte at offset 0); skipped"
    assert where[("bad-empty.txt", 1)] == "empty file; skipped"
    assert where[("bad-utf8.txt", 4)] == "invalid UTF-8 at byte 0 of the line; line skipped"
    assert where[("bad-date.txt", 3)].startswith("impossible date")
    assert where[("bad-cut.txt", 3)].startswith("date line cut")
    assert report.problems_total == len(report.problems) == len(app.problems())
    assert not any(e.title in ("Ngày không có", "Tin bị cắt") for e in app.entries())


def test_a_broken_new_version_never_loses_stored_entries(seeded: Project, app: Digest) -> None:
    app.build()
    before = by_id(app)
    (seeded.seeds / "003_7798add9aa6a74df.txt").write_bytes(b"\x00garbage")
    report = app.build()
    assert report.files_failed == 1
    after = by_id(app)
    assert after.keys() == before.keys()
    for eid, entry in before.items():
        assert (after[eid].content, after[eid].summary) == (entry.content, entry.summary)


def test_a_build_told_which_files_changed_looks_at_those_alone(
    seeded: Project, app: Digest
) -> None:
    """What the daemon's watcher does: the cost follows the change, and a name that is not a
    file (a folder made or removed) falls back to scanning the whole folder."""
    app.build()
    seeded.write_seed("005_new.txt", NEW_FILE)
    os.utime(seeded.seeds / "000_b1ad6872f566675d.txt", ns=(1, 1))  # not named: not looked at
    report = app.build(only={"005_new.txt"})
    assert (report.files_seen, report.files_parsed, report.entries_new) == (1, 1, 1)
    (seeded.seeds / "005_new.txt").rename(seeded.seeds / "006_moved.txt")
    report = app.build(only={"005_new.txt", "006_moved.txt"})
    assert (report.files_renamed, report.files_parsed, report.files_removed) == (1, 0, 0)
    (seeded.seeds / "sub").mkdir()
    shutil.move(seeded.seeds / "006_moved.txt", seeded.seeds / "sub" / "006_moved.txt")
    report = app.build(only={"sub"})  # a folder: everything is scanned
    assert report.files_seen == 6 and report.files_renamed == 1
    shutil.rmtree(seeded.seeds / "sub")
    report = app.build(only={"sub"})  # gone, and never a file: everything is scanned
    assert (report.files_seen, report.files_removed) == (5, 1)
    assert report.entries_total == 101  # a deleted file's entries stay


def test_dates_at_the_calendars_edge_are_problems_not_instants(
    seeded: Project, app: Digest
) -> None:
    seeded.write_seed(
        "edge.txt",
        "HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ\n"
        "Tin ngày tận thế\n"
        "Thứ Sáu, ngày 31/12/9999 23:59Nội dung...\n"
        "Xuất bản thông tin\n"
        "Bài năm một\n"
        "01/01/0001 | 03:00 AM\n"
        "Thân bài.\n",
    )
    report = app.build()
    assert report.entries_new == 100
    where = {(p.file, p.line): p.message for p in report.problems}
    assert where[("edge.txt", 3)].startswith("date 31/12/9999 23:59 is before 2000 or")
    assert where[("edge.txt", 6)].startswith("date 01/01/0001 03:00 is before 2000")


def test_every_build_counts_the_problems_there_are_now(seeded: Project, app: Digest) -> None:
    seeded.write_seed("bad.txt", b"\x00binary")
    assert app.build().problems_total == 1
    again = app.build()  # nothing read this time; the broken file is still there
    assert (again.problems_total, again.problems) == (1, ())
    (seeded.seeds / "bad.txt").unlink()
    assert app.build().problems_total == 0 and app.problems() == []


# -- no input can stop a build ------------------------------------------------------------------


def _build_in_process(root: Path) -> tuple[BuildReport, int]:
    app = make_digest(load(root / "config.toml"))
    try:
        return app.build(), app.publish().written
    finally:
        app.close()


_day = st.integers(0, 40).map(lambda n: f"{n:02d}")
_year = st.sampled_from([1, 999, 1999, 2000, 2025, 2026, 2036, 2037, 9999, 10000])
_edge_dates = st.one_of(
    st.builds(
        lambda wd, d, mo, y, h, mi, rest: f"{wd}, ngày {d}/{mo}/{y} {h}:{mi}{rest}",
        st.sampled_from(["Thứ Hai", "Thứ Sáu", "Chủ Nhật", "Thứ Bẩy"]),
        _day,
        st.integers(0, 13).map(str),
        _year,
        st.integers(0, 30).map(str),
        st.integers(0, 99).map(lambda n: f"{n:02d}"),
        st.sampled_from(["Nội dung...", "", "x" * 500, "...rác"]),
    ),
    st.builds(
        lambda d, mo, y, h: f"{d}/{mo}/{y} | {h}:03 AM",
        _day,
        st.integers(0, 13).map(lambda n: f"{n:02d}"),
        _year,
        st.integers(0, 30),
    ),
)
_lines = st.lists(
    st.one_of(
        _edge_dates,
        st.sampled_from(
            ["HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ", "Xuất bản thông tin", "Tin liên quan", "- Tiêu đề", ""]
        ),
        st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=60),
    ),
    max_size=30,
)
_capture = st.one_of(
    _lines.map(lambda lines: "\n".join(lines).encode("utf-8")),
    st.binary(max_size=300),
    _lines.map(lambda lines: "\r\n".join(lines).encode("utf-8") + b"\xff\xfe\x00"),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_capture, min_size=1, max_size=4))
def test_no_capture_stops_a_build_nor_costs_a_stored_entry(captures: list[bytes]) -> None:
    """Arbitrary bytes and dates at the calendar's edges, through the whole build and publish:
    each broken capture is its own problem, and what was stored stays stored and served."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "seeds").mkdir()
        (root / "config.toml").write_text(base_config(), encoding="utf-8")
        (root / "seeds" / "good.txt").write_text(NEW_FILE, encoding="utf-8")
        good, _ = _build_in_process(root)
        assert good.entries_new == 1
        for i, data in enumerate(captures):
            (root / "seeds" / f"fuzz-{i}.txt").write_bytes(data)
        report, _ = _build_in_process(root)
        assert all(p.file.startswith("fuzz-") for p in report.problems)
        app = make_digest(load(root / "config.toml"))
        try:
            stored = {e.id: e for e in app.entries()}
        finally:
            app.close()
        (eid,) = good.changed_ids
        assert stored[eid].summary == "Sáng 16/11/2026, Thứ trưởng"
        assert (root / "public" / "entries" / f"{eid}.html").is_file()
        for entry in stored.values():  # every stored instant is a sane one
            assert 2000 <= entry.published.year <= datetime.now(UTC).year + 10


def _fuzzed(text: str, index: int) -> str:
    """A seed capture damaged the ways captures get damaged: junk after the site's `...`,
    one extra character, a very long run of junk, and the last item cut mid-word by a scraper
    that stopped early (no `...`, the file still ends with a newline)."""
    lines = text.splitlines()
    dated = [i for i, line in enumerate(lines) if line.endswith("...")]
    junk = ["x", " rác rác rác", "Đ"]
    for n, i in enumerate(dated):
        lines[i] += " nhiễu" * 200_000 if (index, n) == (0, 2) else junk[n % 3]
    if dated:
        last = lines[dated[-1]]
        lines[dated[-1]] = last[: len(last) * 2 // 3].rstrip(".")
    return "\n".join(lines) + "\n"


def test_fuzzed_seeds_keep_every_original_teaser(
    seeded: Project,
    app: Digest,
    make_project: Callable[..., Project],
    open_app: Callable[[Project], Digest],
) -> None:
    app.build()
    original = by_id(app)
    for i, f in enumerate(sorted(SEEDS.iterdir())):
        seeded.write_seed(f"fuzzed-{f.name}", _fuzzed(f.read_text(encoding="utf-8"), i))
    report = app.build()
    assert (report.entries_new, report.entries_updated) == (0, 0)
    after = by_id(app)
    for eid, entry in original.items():
        for key in ("summary", "summary_truncated", "updated", "content"):
            assert getattr(after[eid], key) == getattr(entry, key), (eid, key)
    messages = [p.message for p in report.problems]
    assert any("teaser adds text after the site's cut marker" in m for m in messages)
    assert any("longer than the site shows" in m for m in messages)
    app.publish()
    assert os.path.getsize(seeded.public / "feeds" / "all.atom") < 200_000
    # Arriving together, in one build, the damaged copies win nothing either.
    both = make_project()
    for f in sorted(seeded.seeds.iterdir()):
        shutil.copy(f, both.seeds / f.name)
    cold = open_app(both)
    cold.build()
    together = by_id(cold)
    for eid, entry in original.items():
        assert (together[eid].summary, together[eid].summary_truncated) == (
            entry.summary,
            entry.summary_truncated,
        ), eid
