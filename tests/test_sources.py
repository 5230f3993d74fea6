"""Decoding captures: what other tools produce must read the same; what is broken is reported."""

from __future__ import annotations

import unicodedata
from pathlib import Path

from digest.sources import decode, is_capture, scan

TEXT = "HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ\nTiêu đề khoẻ\nThứ Hai, ngày 03/11/2025 03:44Nội dung...\n"


def test_bom_crlf_and_nfd_decode_to_the_same_lines() -> None:
    plain = decode("a", TEXT.encode())
    for variant in (
        b"\xef\xbb\xbf" + TEXT.encode(),
        TEXT.replace("\n", "\r\n").encode(),
        TEXT.replace("\n", "\r").encode(),
        unicodedata.normalize("NFD", TEXT).encode(),
    ):
        decoded = decode("a", variant)
        assert decoded.lines == plain.lines
        assert decoded.problems == ()
        assert decoded.ends_with_newline


def test_invalid_utf8_loses_only_its_line() -> None:
    data = TEXT.encode().replace("Tiêu đề".encode(), b"Ti\xff\xfe")
    decoded = decode("bad.txt", data)
    assert decoded.usable
    assert [str(p) for p in decoded.problems] == [
        "bad.txt:2: invalid UTF-8 at byte 2 of the line; line skipped"
    ]
    assert decoded.lines[2].startswith("Thứ Hai")


def test_binary_and_empty_files_are_unusable_with_one_problem() -> None:
    binary = decode("img.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    assert not binary.usable
    assert [str(p) for p in binary.problems] == [
        "img.png:3: binary file (NUL byte at offset 8); skipped"
    ]
    for empty in (b"", b"\n\n  \n", b"\xef\xbb\xbf"):
        decoded = decode("e.txt", empty)
        assert not decoded.usable
        assert [p.message for p in decoded.problems] == ["empty file; skipped"]


def test_scan_skips_hidden_and_partial_files(tmp_path: Path) -> None:
    (tmp_path / "b.txt").write_text("x")
    (tmp_path / "a.txt").write_text("x")
    (tmp_path / ".hidden").write_text("x")
    (tmp_path / "c.txt.part").write_text("x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.txt").write_text("x")
    assert [f.name for f in scan(tmp_path)] == ["a.txt", "b.txt", "sub/d.txt"]
    assert scan(tmp_path / "missing") == []
    assert not is_capture("x.tmp") and is_capture("003_7798add9aa6a74df.txt")
