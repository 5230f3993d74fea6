"""The public folder: atomic writes skipped when the bytes are the same, nothing outside it,
and what killed writers leave behind swept."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from digest.site import PublicDir


def test_public_dir_writes_atomically_and_only_when_different(tmp_path: Path) -> None:
    public = PublicDir(tmp_path)
    assert public.write("a/b.txt", b"one") is True
    mtime = (tmp_path / "a/b.txt").stat().st_mtime_ns
    public.begin_publish()  # the next publish
    assert public.write("a/b.txt", b"one") is False
    assert (tmp_path / "a/b.txt").stat().st_mtime_ns == mtime
    assert public.write("a/b.txt", b"two") is True
    assert (tmp_path / "a/b.txt").read_bytes() == b"two"
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["b.txt"]  # no temporary left
    assert list((tmp_path / ".tmp").iterdir()) == []
    os.chmod(tmp_path / "a", 0o500)
    try:
        if os.geteuid() != 0:
            with pytest.raises(OSError):
                public.write("a/b.txt", b"three")
            assert (tmp_path / "a/b.txt").read_bytes() == b"two"
    finally:
        os.chmod(tmp_path / "a", 0o700)


def test_a_folder_made_by_this_publish_is_written_without_reading(tmp_path: Path) -> None:
    # A cold build's files cannot exist yet: it creates them without trying to read each
    # first. (A publish writes each file once; were it written twice, only the skip is lost.)
    public = PublicDir(tmp_path)
    assert public.write("new/a.txt", b"one") is True
    assert public.write("new/a.txt", b"one") is True  # not read: the folder is this publish's
    (tmp_path / "old").mkdir()
    (tmp_path / "old/a.txt").write_bytes(b"one")
    assert public.write("old/a.txt", b"one") is False  # a folder that was there: compared
    public.begin_publish()
    assert public.write("new/a.txt", b"one") is False  # the next publish compares it
    assert (tmp_path / "new/a.txt").read_bytes() == b"one"


def test_a_publish_into_an_empty_folder_reads_nothing_in_any_process(tmp_path: Path) -> None:
    # A worker process writes into folders the others made: it is told the folder was empty.
    (tmp_path / ".tmp").mkdir()  # a killed writer's scratch: still empty
    public = PublicDir(tmp_path)
    public.begin_publish()
    assert public.empty
    worker = PublicDir(tmp_path, empty=public.empty)
    (tmp_path / "made").mkdir()  # by another process of this publish
    (tmp_path / "made/a.txt").write_bytes(b"one")
    assert worker.write("made/a.txt", b"one") is True  # written without reading
    public.begin_publish()
    assert not public.empty
    assert PublicDir(tmp_path, empty=public.empty).write("made/a.txt", b"one") is False


@pytest.mark.parametrize(
    "name", ["../escape.txt", "/etc/x", "a//b", "a/./b", "a/../../b", ".hidden", "a/.tmp/x", ""]
)
def test_no_name_writes_outside_the_folder_or_where_the_server_does_not_look(
    tmp_path: Path, name: str
) -> None:
    public = PublicDir(tmp_path / "public")
    with pytest.raises(ValueError, match="refusing to write outside the public folder"):
        public.write(name, b"x")
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_begin_publish_removes_what_killed_writers_left(tmp_path: Path) -> None:
    public = PublicDir(tmp_path)
    public.write("entries/a.html", b"<p>a")
    (tmp_path / ".tmp" / "4242-entries~b.html").write_bytes(b"<half")
    legacy = tmp_path / "entries" / ".b.html.4242.tmp"  # what versions before 0.2 left
    legacy.write_bytes(b"<half")
    assert public.begin_publish() == 1
    assert legacy.exists()  # only a full publish walks the whole folder
    assert public.begin_publish(everywhere=True) == 1
    assert not legacy.exists()
    assert (tmp_path / "entries/a.html").read_bytes() == b"<p>a"
    # The scratch folder removed by hand is made again by the next write.
    (tmp_path / ".tmp").rmdir()
    assert public.write("entries/c.html", b"<p>c") is True
