"""Watching the seeds folder: bursts of changes become one build, and only of settled files.

watchfiles reports changes (inotify, or polling where inotify does not work: network and
container file systems). A file being copied in is not read until its size and mtime stop
changing, so a capture written in several chunks is parsed once, complete.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from watchfiles import awatch

from .sources import is_capture

log = logging.getLogger("digest.watch")

_SETTLE_LIMIT = 100  # settle rounds before building anyway (a file written for ever)


def _fingerprint(path: Path) -> tuple[int, int] | None:
    # Size and mtime (nanoseconds) change with every write; the build reads and hashes the
    # file once, after it settled.
    try:
        st = path.stat()
    except OSError:
        return None  # gone (deleted, or renamed away): that is settled too
    return (st.st_size, st.st_mtime_ns)


async def settle(paths: set[Path], interval: float) -> None:
    """Return once none of `paths` changed during one `interval`."""
    before = {p: _fingerprint(p) for p in paths}
    for _ in range(_SETTLE_LIMIT):
        await asyncio.sleep(interval)
        after = {p: _fingerprint(p) for p in paths}
        if after == before:
            return
        before = after
    log.warning("files still changing after %d checks; building anyway", _SETTLE_LIMIT)


async def watch(
    folder: Path,
    rebuild: Callable[[frozenset[str] | None], Awaitable[None]],
    stop: asyncio.Event,
    *,
    poll: bool,
    debounce_ms: int,
    settle_ms: int,
) -> None:
    """Call `rebuild` with the names (relative to `folder`) of each settled burst of changes
    until `stop` is set."""
    folder.mkdir(parents=True, exist_ok=True)
    async for changes in awatch(
        folder,
        stop_event=stop,
        debounce=debounce_ms,
        step=max(10, debounce_ms // 2),
        force_polling=poll,
        poll_delay_ms=max(50, debounce_ms),
        recursive=True,
        watch_filter=lambda _change, path: is_capture(Path(path).name),
    ):
        paths = {Path(p) for _, p in changes}
        await settle(paths, settle_ms / 1000)
        if stop.is_set():
            return
        log.info(
            "seeds changed: %d file(s)", len(paths), extra={"event": "watch", "files": len(paths)}
        )
        names = frozenset(Path(os.path.relpath(p, folder)).as_posix() for p in paths)
        # A name outside the folder cannot be looked at alone: scan the whole folder.
        await rebuild(None if any(n.startswith("../") for n in names) else names)
