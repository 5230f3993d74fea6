"""Writing the public folder: atomic, minimal, and only inside it."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


class PublicDir:
    """The public folder; every write is atomic and skipped when the bytes are the same.

    Files are written in `.tmp/` and renamed into place, so a process killed mid-write leaves
    its half file there, where the next publish deletes it, and nowhere a reader looks (the
    server never answers a name starting with a dot)."""

    TEMPORARY = ".tmp"

    def __init__(self, root: Path, *, empty: bool = False) -> None:
        self.root = root
        self._root = str(root)
        self._scratch = root / self.TEMPORARY
        # Whether the folder held nothing when this publish began (a cold build): then no file
        # is there to compare with, as none is in a folder this publish made. Each file is
        # written once a publish, by one process; were one written twice, only the skip of
        # the second write would be lost, never bytes.
        self.empty = empty
        self._folders: dict[str, bool] = {}  # written into: made by this publish (one mkdir each)

    def path(self, relative: str) -> Path:
        return Path(self._inside(relative))

    def _inside(self, relative: str) -> str:
        # Names come from slugs and ids, checked here as text: cheaper than resolving every
        # path, and as strict (no absolute path, no `..`, no empty or hidden segment).
        parts = relative.split("/")
        if relative.startswith("/") or any(p in ("", ".", "..") or p[0] == "." for p in parts):
            raise ValueError(f"refusing to write outside the public folder: {relative}")
        return os.path.join(self._root, relative)

    def exists(self, relative: str) -> bool:
        # Plain strings: this runs for every published file on every no-change build.
        return os.path.isfile(os.path.join(self._root, relative))

    def begin_publish(self, *, everywhere: bool = False) -> int:
        """Note whether the folder is empty, and delete what killed writers left behind;
        `everywhere` also sweeps the whole folder for the `.<name>.<pid>.tmp` files that
        earlier versions wrote beside their targets. How many were deleted."""
        found = list(self._scratch.glob("*")) if self._scratch.is_dir() else []
        if everywhere and self.root.is_dir():
            found += [p for p in self.root.rglob(".*.tmp") if self.TEMPORARY not in p.parts]
        for leftover in found:
            leftover.unlink(missing_ok=True)
        self._folders.clear()  # folders may be gone (cleaned by hand) by the next publish
        self.empty = not self.root.is_dir() or all(
            p.name == self.TEMPORARY for p in self.root.iterdir()
        )
        return len(found)

    def write(self, relative: str, data: bytes) -> bool:
        """Write `relative` unless it holds `data` already; whether it was written."""
        target = self._inside(relative)
        # Plain strings and os calls: this runs for every file of a cold build, which creates
        # its files without first trying to read them.
        if not self._made(os.path.dirname(target)) and not self.empty:
            try:
                with open(target, "rb") as existing:
                    if existing.read() == data:
                        return False
            except OSError:
                pass
        self._made(str(self._scratch))
        temporary = os.path.join(self._scratch, f"{os.getpid()}-{relative.replace('/', '~')}")
        try:
            with open(temporary, "wb") as out:
                out.write(data)
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        return True

    def _made(self, folder: str) -> bool:
        """Make `folder` if missing; whether it was missing when this publish first wrote there."""
        made = self._folders.get(folder)
        if made is None:
            made = not os.path.isdir(folder)
            os.makedirs(folder, exist_ok=True)
            self._folders[folder] = made
        return made

    def remove(self, relative: str) -> None:
        self.path(relative).unlink(missing_ok=True)
