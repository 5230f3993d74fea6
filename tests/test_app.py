"""Builds against a real SQLite file: incremental, atomic, and never losing stored entries."""

from __future__ import annotations

import os
import shutil
import sqlite3

from conftest import SEEDS, Project

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


def test_store_schema_is_plain_sql(seeded: Project) -> None:
    seeded.digest("build")
    with sqlite3.connect(seeded.store) as db:
        tables = {r[0] for r in db.execute("select name from sqlite_master where type='table'")}
        assert {"entries", "sources", "provenance", "problems"} <= tables
        hashes = dict(db.execute("select name, sha256 from sources"))
    import hashlib

    for name, digest in hashes.items():
        assert hashlib.sha256((SEEDS / name).read_bytes()).hexdigest() == digest


def test_a_schema_2_store_is_upgraded_in_place_and_publishes_nothing_new(
    seeded: Project,
) -> None:
    seeded.digest("build")
    index = (seeded.public / "index.html").read_bytes()
    with sqlite3.connect(seeded.store) as db:
        listed = sorted(db.execute("select * from listing"))
        counted = sorted(db.execute("select * from months"))
        for table in ("listing", "months", "titles", "mentions", "dirty_months", "dirty_entries"):
            db.execute(f"drop table {table}")  # what a schema 2 store did not have
        db.execute("update meta set value = '2' where key = 'schema'")
    out = seeded.digest("build").stdout
    assert "published: 0 written" in out
    assert (seeded.public / "index.html").read_bytes() == index
    with sqlite3.connect(seeded.store) as db:
        assert sorted(db.execute("select * from listing")) == listed
        assert sorted(db.execute("select * from months")) == counted
        assert db.execute("select value from meta where key = 'schema'").fetchone() == ("3",)


def test_changes_a_build_recorded_are_published_by_the_next_publish(seeded: Project) -> None:
    """Marks of what changed are stored with the entries: a process that dies between its
    build and its publish leaves nothing unpublished."""
    from digest.app import make_digest
    from digest.config import load

    seeded.digest("build")
    seeded.write_seed("005_new.txt", NEW_FILE)
    app = make_digest(load(seeded.config))
    assert app.build().entries_new == 1  # and no publish: as if killed here
    app.store.close()  # type: ignore[attr-defined]
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
