"""Writing the public folder: atomic, minimal, and only inside it."""

from __future__ import annotations

import os
from pathlib import Path


class PublicDir:
    """The public folder; every write is atomic and skipped when the bytes are the same.

    Files are written in `.tmp/` and renamed into place, so a process killed mid-write leaves
    its half file there, where the next publish deletes it, and nowhere a reader looks (the
    server never answers a name starting with a dot)."""

    TEMPORARY = ".tmp"

    def __init__(self, root: Path) -> None:
        self.root = root
        self._root = str(root)
        self._scratch = root / self.TEMPORARY
        self._scratch_made = False

    def path(self, relative: str) -> Path:
        # Names come from slugs and ids, checked here as text: cheaper than resolving every
        # path, and as strict (no absolute path, no `..`, no empty or hidden segment).
        parts = relative.split("/")
        if relative.startswith("/") or any(p in ("", ".", "..") or p[0] == "." for p in parts):
            raise ValueError(f"refusing to write outside the public folder: {relative}")
        return self.root.joinpath(*parts)

    def exists(self, relative: str) -> bool:
        # Plain strings: this runs for every published file on every no-change build.
        return os.path.isfile(os.path.join(self._root, relative))  # noqa: PTH113, PTH118

    def clear_scratch(self, *, everywhere: bool = False) -> int:
        """Delete what killed writers left behind; `everywhere` also sweeps the whole folder
        for the `.<name>.<pid>.tmp` files that earlier versions wrote beside their targets.
        How many were deleted."""
        found = list(self._scratch.glob("*")) if self._scratch.is_dir() else []
        if everywhere and self.root.is_dir():
            found += [p for p in self.root.rglob(".*.tmp") if self.TEMPORARY not in p.parts]
        for leftover in found:
            leftover.unlink(missing_ok=True)
        self._scratch_made = False  # the folder may be gone (cleaned by hand) by next time
        return len(found)

    def write(self, relative: str, data: bytes) -> bool:
        path = self.path(relative)
        try:
            if path.read_bytes() == data:
                return False
        except OSError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        if not self._scratch_made:
            self._scratch.mkdir(exist_ok=True)
            self._scratch_made = True
        temporary = self._scratch / f"{os.getpid()}-{relative.replace('/', '~')}"
        try:
            temporary.write_bytes(data)
            temporary.replace(path)
        finally:
            temporary.unlink(missing_ok=True)
        return True

    def remove(self, relative: str) -> None:
        self.path(relative).unlink(missing_ok=True)
