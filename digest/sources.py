"""Source files: which captures exist in the seeds folder, and their decoded text."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .model import Problem
from .text import nfc

# Editors' and downloaders' scratch files are not captures; neither are hidden files.
_SCRATCH_SUFFIXES = (".tmp", ".part", ".crdownload", ".swp", "~")


@dataclass(frozen=True, slots=True)
class SourceFile:
    name: str  # relative to the seeds folder, with forward slashes
    location: str  # the file's path as found
    size: int
    mtime_ns: int

    @property
    def path(self) -> Path:
        return Path(self.location)


@dataclass(frozen=True, slots=True)
class Decoded:
    """A file's text as lines (1-based numbering is kept by position) and what was wrong."""

    lines: tuple[str, ...]
    ends_with_newline: bool
    problems: tuple[Problem, ...]
    usable: bool


def is_capture(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return not base.startswith(".") and not base.endswith(_SCRATCH_SUFFIXES)


def scan(folder: Path) -> list[SourceFile]:
    """Every capture below `folder`, sorted by name; a missing folder is an empty one."""
    found: list[SourceFile] = []
    if folder.is_dir():
        _scan_into(found, str(folder), "")
    found.sort(key=lambda s: s.name)
    return found


def stat_names(folder: Path, names: Iterable[str]) -> tuple[list[SourceFile], set[str]] | None:
    """(captures among `names` that are files, names that are not there), sorted; None when
    one of them is something else (a folder): only a full scan can say what it held."""
    found: list[SourceFile] = []
    missing: set[str] = set()
    for name in sorted(set(names)):
        if not is_capture(name):
            continue
        location = os.path.join(folder, name)  # noqa: PTH118
        try:
            st = os.stat(location)  # noqa: PTH116
        except FileNotFoundError:
            missing.add(name)
            continue
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        found.append(SourceFile(name, location, st.st_size, st.st_mtime_ns))
    return found, missing


def _scan_into(found: list[SourceFile], directory: str, prefix: str) -> None:
    # os.scandir and plain strings: the daemon scans on every change, and Path objects for
    # each of 10,000 files cost more than the stat calls themselves.
    with os.scandir(directory) as listing:
        for item in listing:
            name = prefix + item.name
            try:
                if item.is_dir(follow_symlinks=False):  # as os.walk: no loops
                    if not item.name.startswith("."):
                        _scan_into(found, item.path, name + "/")
                    continue
                if not is_capture(name) or not item.is_file(follow_symlinks=True):
                    continue
                st = item.stat(follow_symlinks=True)
            except OSError:
                continue  # vanished between listing and stat: the next scan sees the truth
            found.append(SourceFile(name, item.path, st.st_size, st.st_mtime_ns))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode(name: str, data: bytes) -> Decoded:
    """Bytes of a capture -> NFC lines; BOM, CRLF/CR and NFD are read as if they were not there.

    A binary or empty file is unusable as a whole. A line that is not valid UTF-8 is reported
    and left out, so one damaged byte does not cost the other entries of the file.
    """
    if not data.strip():
        return Decoded((), False, (Problem(name, 1, "empty file; skipped"),), False)
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        problem = Problem(name, line, f"binary file (NUL byte at offset {nul}); skipped")
        return Decoded((), False, (problem,), False)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    raw_lines = data.split(b"\n")
    ends_with_newline = data.endswith(b"\n")
    if ends_with_newline:
        raw_lines.pop()
    lines: list[str] = []
    problems: list[Problem] = []
    for number, raw in enumerate(raw_lines, start=1):
        try:
            lines.append(nfc(raw.decode("utf-8")))
        except UnicodeDecodeError as exc:
            problems.append(
                Problem(
                    name, number, f"invalid UTF-8 at byte {exc.start} of the line; line skipped"
                )
            )
            lines.append("")
    usable = any(line.strip() for line in lines)
    if not usable and not problems:
        problems.append(Problem(name, 1, "empty file; skipped"))
    return Decoded(tuple(lines), ends_with_newline, tuple(problems), usable)
