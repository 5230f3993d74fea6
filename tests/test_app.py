"""Builds against a real SQLite file: incremental, atomic, and never losing stored entries."""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import SEEDS, Project, base_config

from digest.app import make_digest
from digest.config import load
from digest.ingest import BuildReport

NEW_FILE = (
    "HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ\n"
    "Thứ trưởng Bộ Y tế Lê Đức Luận thăm Bệnh viện Bạch Mai\n"
    "Thứ Hai, ngày 16/11/2026 02:00Sáng 16/11/2026, Thứ trưởng...\n"
)


def snapshot(path: os.PathLike[str]) -> tuple[int, bytes]:
    with open(path, "rb") as f:
        return os.stat(path).st_mtime_ns, f.read()


def test_no_change_rebuild_parses_nothing_and_writes_nothing(seeded: Project) -> None:
    seeded.digest("build")
    before = snapshot(seeded.store)
    out = seeded.digest("build").stdout
    assert "files: 5 seen, 0 parsed, 5 unchanged, 0 failed" in out
    assert "entries: 0 new, 0 updated, 100 total" in out
    assert snapshot(seeded.store) == before


def test_touched_file_with_same_content_is_not_reparsed(seeded: Project) -> None:
    seeded.digest("build")
    path = seeded.seeds / "000_b1ad6872f566675d.txt"
    os.utime(path, ns=(1, 1))
    assert "0 parsed, 5 unchanged" in seeded.digest("build").stdout


def test_new_file_is_merged_and_changed_file_reparsed(seeded: Project) -> None:
    seeded.digest("build")
    seeded.write_seed("005_new.txt", NEW_FILE)
    out = seeded.digest("build").stdout
    assert "files: 6 seen, 1 parsed, 5 unchanged" in out
    assert "entries: 1 new, 0 updated, 101 total" in out
    # A longer teaser for the same article in a changed file updates the entry.
    seeded.write_seed("005_new.txt", NEW_FILE.replace("Thứ trưởng...", "Thứ trưởng đã tới thăm..."))
    out = seeded.digest("build").stdout
    assert "entries: 0 new, 1 updated, 101 total" in out
    entry = next(e for e in seeded.entries() if e["title"].endswith("Bạch Mai"))
    assert entry["summary"] == "Sáng 16/11/2026, Thứ trưởng đã tới thăm"
    assert entry["updated"] > entry["published"]
    # A shorter teaser later never replaces it.
    seeded.write_seed("005_new.txt", NEW_FILE.replace("Thứ trưởng...", "..."))
    assert "0 new, 0 updated" in seeded.digest("build").stdout


def test_deleted_file_leaves_entries_published(seeded: Project) -> None:
    seeded.digest("build")
    ids = {e["id"] for e in seeded.entries()}
    (seeded.seeds / "004_5ec5374b7f673a92.txt").unlink()
    out = seeded.digest("build").stdout
    assert "1 removed" in out and "100 total" in out
    after = seeded.entries()
    assert {e["id"] for e in after} == ids
    assert all(s["file"] != "004_5ec5374b7f673a92.txt" for e in after for s in e["sources"])


def test_renamed_file_with_same_content_changes_nothing(seeded: Project) -> None:
    seeded.digest("build")
    before = seeded.entries()
    os.rename(seeded.seeds / "001_21f9db5134b92a1d.txt", seeded.seeds / "renamed.txt")
    out = seeded.digest("build").stdout
    assert "0 parsed" in out and "1 renamed" in out and "0 new, 0 updated" in out
    after = seeded.entries()
    assert [e["id"] for e in after] == [e["id"] for e in before]
    files = {s["file"] for e in after for s in e["sources"]}
    assert "renamed.txt" in files and "001_21f9db5134b92a1d.txt" not in files


def test_rebuild_from_scratch_gives_the_same_ids(seeded: Project, make_project) -> None:  # type: ignore[no-untyped-def]
    seeded.digest("build")
    first = seeded.entries()
    seeded.store.unlink()
    seeded.digest("build")
    assert seeded.entries() == first
    # Other file names and another order of arrival give the same ids too.
    other: Project = make_project()
    for i, f in enumerate(sorted(SEEDS.iterdir(), reverse=True)):
        shutil.copy(f, other.seeds / f"capture-{i}.txt")
    other.digest("build")
    assert sorted(e["id"] for e in other.entries()) == sorted(e["id"] for e in first)


def test_bad_files_are_reported_and_others_ingested(seeded: Project) -> None:
    seeded.write_seed("bad-binary.txt", b"\x00\x01\x02binary")
    seeded.write_seed("bad-empty.txt", b"")
    seeded.write_seed("bad-utf8.txt", NEW_FILE.encode().replace(b"Bach", b"B\xffch") + b"\xff\n")
    seeded.write_seed(
        "bad-date.txt",
        "HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ\nNgày không có\nThứ Hai, ngày 31/02/2025 10:00Nội dung\n",
    )
    seeded.write_seed("bad-cut.txt", "HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ\nTin bị cắt\nThứ Hai, ngày 03/1")
    result = seeded.digest("build")
    assert result.returncode == 0
    assert "files: 10 seen, 10 parsed, 0 unchanged, 2 failed" in result.stdout
    assert "entries: 101 new" in result.stdout
    errors = result.stderr.splitlines()
    assert "seeds/bad-binary.txt:1: binary file (NUL byte at offset 0); skipped" in errors
    assert "seeds/bad-empty.txt:1: empty file; skipped" in errors
    assert "seeds/bad-utf8.txt:4: invalid UTF-8 at byte 0 of the line; line skipped" in errors
    assert any(e.startswith("seeds/bad-date.txt:3: impossible date") for e in errors)
    assert any(e.startswith("seeds/bad-cut.txt:3: date line cut") for e in errors)
    assert f"problems: {len(errors)}" in result.stdout
    assert not any(e["title"] in ("Ngày không có", "Tin bị cắt") for e in seeded.entries())


def test_a_broken_new_version_never_loses_stored_entries(seeded: Project) -> None:
    seeded.digest("build")
    before = {e["id"]: e for e in seeded.entries()}
    (seeded.seeds / "003_7798add9aa6a74df.txt").write_bytes(b"\x00garbage")
    seeded.digest("build")
    after = {e["id"]: e for e in seeded.entries()}
    assert after.keys() == before.keys()
    for eid, entry in before.items():
        assert after[eid]["content"] == entry["content"]
        assert after[eid]["summary"] == entry["summary"]


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


def test_changes_a_build_recorded_are_published_by_the_next_publish(seeded: Project) -> None:
    """Marks of what changed are stored with the entries: a process that dies between its
    build and its publish leaves nothing unpublished."""
    from digest.app import make_digest
    from digest.config import load

    seeded.digest("build")
    seeded.write_seed("005_new.txt", NEW_FILE)
    app = make_digest(load(seeded.config))
    assert app.build().entries_new == 1  # and no publish: as if killed here
    app.close()
    before = (seeded.public / "feeds/all.atom").read_text(encoding="utf-8")
    assert "Lê Đức Luận thăm Bệnh viện Bạch Mai" not in before
    out = seeded.digest("build").stdout
    assert "0 parsed" in out
    after = (seeded.public / "feeds/all.atom").read_text(encoding="utf-8")
    assert "Thứ trưởng Bộ Y tế Lê Đức Luận thăm Bệnh viện Bạch Mai" in after
    assert "published: 0 written" in seeded.digest("build").stdout


def test_a_build_told_which_files_changed_looks_at_those_alone(seeded: Project) -> None:
    """What the daemon's watcher does: the cost follows the change, and a name that is not a
    file (a folder made or removed) falls back to scanning the whole folder."""
    from digest.app import make_digest
    from digest.config import load

    seeded.digest("build")
    app = make_digest(load(seeded.config))
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
        st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60),
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


def test_dates_at_the_calendars_edge_are_problems_not_instants(seeded: Project) -> None:
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
    result = seeded.digest("build")
    assert "entries: 100 new" in result.stdout
    errors = result.stderr.splitlines()
    assert any(
        e.startswith("seeds/edge.txt:3: date 31/12/9999 23:59 is before 2000 or") for e in errors
    )
    assert any(
        e.startswith("seeds/edge.txt:6: date 01/01/0001 03:00 is before 2000") for e in errors
    )


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


def test_fuzzed_seeds_keep_every_original_teaser(seeded: Project, make_project) -> None:  # type: ignore[no-untyped-def]
    seeded.digest("build")
    original = {e["id"]: e for e in seeded.entries()}
    for i, f in enumerate(sorted(SEEDS.iterdir())):
        seeded.write_seed(f"fuzzed-{f.name}", _fuzzed(f.read_text(encoding="utf-8"), i))
    result = seeded.digest("build")
    assert "entries: 0 new, 0 updated" in result.stdout
    after = {e["id"]: e for e in seeded.entries()}
    for eid, entry in original.items():
        for key in ("summary", "summary_truncated", "updated", "content"):
            assert after[eid][key] == entry[key], (eid, key)
    assert "teaser adds text after the site's cut marker" in result.stderr
    assert "longer than the site shows" in result.stderr
    assert os.path.getsize(seeded.public / "feeds" / "all.atom") < 200_000
    # Arriving together, in one build, the damaged copies win nothing either.
    both: Project = make_project()
    for f in sorted(seeded.seeds.iterdir()):
        shutil.copy(f, both.seeds / f.name)
    both.digest("build")
    cold = {e["id"]: e for e in both.entries()}
    for eid, entry in original.items():
        assert (cold[eid]["summary"], cold[eid]["summary_truncated"]) == (
            entry["summary"],
            entry["summary_truncated"],
        ), eid


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


def test_every_build_counts_the_problems_there_are_now(seeded: Project) -> None:
    seeded.write_seed("bad.txt", b"\x00binary")
    assert "problems: 1; `digest problems` lists them" in seeded.digest("build").stdout
    again = seeded.digest("build")  # nothing read this time; the broken file is still there
    assert "problems: 1;" in again.stdout and again.stderr == ""
    assert seeded.digest("problems").stdout.splitlines() == [
        "seeds/bad.txt:1: binary file (NUL byte at offset 0); skipped",
        "problems: 1",
    ]
    (seeded.seeds / "bad.txt").unlink()
    assert "problems: 0" in seeded.digest("build").stdout


def test_version(project: Project) -> None:
    import importlib.metadata

    out = project.digest("--version").stdout
    assert out.strip() == f"digest {importlib.metadata.version('digest')}"
