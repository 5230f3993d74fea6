"""settle and watch on real files: bursts of writes, settled captures, the watchfiles watcher."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from digest.watch import settle, watch

WATCHFILES = "watchfiles.main"  # its logger

# --- settle ----------------------------------------------------------------------------------


def fingerprint(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def test_settle_returns_only_after_the_writes_stop(tmp_path: Path) -> None:
    path = tmp_path / "capture.txt"
    path.write_text("HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ\n", encoding="utf-8")
    interval, pacing, chunks = 0.2, 0.02, 20

    async def scenario() -> tuple[list[float], float, bool, tuple[int, int]]:
        writes: list[float] = []

        async def writer() -> None:
            with path.open("a", encoding="utf-8") as f:
                for i in range(chunks):
                    f.write(f"dòng {i}\n")
                    f.flush()
                    writes.append(time.monotonic())
                    await asyncio.sleep(pacing)

        writing = asyncio.create_task(writer())
        await asyncio.sleep(0)  # the first chunk is written before settle looks
        assert writes
        await settle({path}, interval)
        returned = time.monotonic()
        done = writing.done()
        at_return = fingerprint(path)
        await writing
        return writes, returned, done, at_return

    writes, returned, writer_done, at_return = asyncio.run(scenario())
    assert len(writes) == chunks
    assert writer_done  # not while the file was still being written
    assert at_return == fingerprint(path)
    # A whole interval without a change after the last write, and not much more.
    assert returned - writes[-1] >= interval - 0.01
    assert returned - writes[-1] < 3 * interval + 1


def test_settle_sees_a_deleted_file_and_an_empty_set_as_settled(tmp_path: Path) -> None:
    gone = tmp_path / "gone.txt"
    never = tmp_path / "never.txt"
    gone.write_text("x", encoding="utf-8")

    async def scenario() -> float:
        async def delete() -> None:
            await asyncio.sleep(0.05)
            gone.unlink()

        deleting = asyncio.create_task(delete())
        started = time.monotonic()
        await settle({gone, never}, 0.1)
        await settle(set(), 0.1)
        await deleting
        return time.monotonic() - started

    took = asyncio.run(scenario())
    assert not gone.exists()
    assert 0.3 - 0.01 <= took < 5  # a change, then one quiet interval; one for the empty set


def test_settle_gives_up_on_a_file_written_for_ever(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "endless.txt"
    path.write_text("", encoding="utf-8")
    interval = 0.005

    async def scenario() -> tuple[float, bool]:
        # In the same loop, paced faster than the interval: the loop's timers run in order,
        # so a write comes between any two of settle's looks, however loaded the machine.
        async def write_for_ever() -> None:
            with path.open("a", encoding="utf-8") as f:
                while True:
                    f.write("x")
                    f.flush()
                    await asyncio.sleep(interval / 5)

        writing = asyncio.create_task(write_for_ever())
        try:
            await asyncio.sleep(0)
            started = time.monotonic()
            await settle({path}, interval)
            return time.monotonic() - started, writing.done()
        finally:
            writing.cancel()
            await asyncio.gather(writing, return_exceptions=True)

    with caplog.at_level(logging.WARNING, logger="digest.watch"):
        took, writer_done = asyncio.run(scenario())
    assert not writer_done  # still writing: settle gave up rather than waited
    assert took >= 100 * interval - 0.01  # 100 rounds
    assert [r.getMessage() for r in caplog.records if r.name == "digest.watch"] == [
        "files still changing after 100 checks; building anyway"
    ]


# --- watch -----------------------------------------------------------------------------------


@dataclass
class Rebuilds:
    """The rebuild callback: every call's names, and what each named file held then."""

    folder: Path
    calls: list[frozenset[str] | None] = field(default_factory=list)
    seen: list[dict[str, bytes | None]] = field(default_factory=list)

    async def __call__(self, names: frozenset[str] | None) -> None:
        self.calls.append(names)
        held: dict[str, bytes | None] = {}
        for name in names or ():
            path = self.folder / name
            held[name] = path.read_bytes() if path.is_file() else None
        self.seen.append(held)

    def names(self) -> set[str]:
        return {n for call in self.calls for n in call or ()}


async def watching(
    folder: Path,
    rebuilds: Rebuilds,
    act: Callable[[], Awaitable[None]],
    until: Callable[[], bool],
    *,
    poll: bool = False,
    settle_ms: int = 50,
    timeout: float = 10,
) -> None:
    """Run the real watcher over `folder`, `act`, wait for `until`, then stop the watcher
    (and check it stops) whatever happened."""
    stop = asyncio.Event()
    task = asyncio.create_task(
        watch(folder, rebuilds, stop, poll=poll, debounce_ms=50, settle_ms=settle_ms)
    )
    try:
        # As the daemon does: the task's first step, then the watches' registration.
        for _ in range(2):
            await asyncio.sleep(0)
        await act()
        deadline = time.monotonic() + timeout
        while not until():
            assert not task.done(), f"the watcher ended: {task.exception()!r}"
            assert time.monotonic() < deadline, f"timed out; rebuilds: {rebuilds.calls}"
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


@pytest.mark.parametrize("poll", [False, True], ids=["inotify", "polling"])
def test_watch_reports_dropped_captures_and_not_scratch_files(tmp_path: Path, poll: bool) -> None:
    folder = tmp_path / "seeds"
    (folder / "2026").mkdir(parents=True)
    (folder / "old.txt").write_text("already there", encoding="utf-8")
    rebuilds = Rebuilds(folder)
    expected = {"005_new.txt", "2026/11-16.txt"}

    async def drop() -> None:
        for scratch in (".hidden.txt", "a.txt.part", "b.tmp", "c.crdownload", "d.txt~"):
            (folder / scratch).write_text("scratch", encoding="utf-8")
        (folder / "2026" / ".swap.txt").write_text("scratch", encoding="utf-8")
        for name in sorted(expected):
            (folder / name).write_text(f"capture {name}", encoding="utf-8")

    asyncio.run(watching(folder, rebuilds, drop, lambda: rebuilds.names() >= expected, poll=poll))
    assert None not in rebuilds.calls
    assert rebuilds.names() == expected  # no scratch file, nothing that was there before
    for held in rebuilds.seen:
        for name, data in held.items():
            assert data == f"capture {name}".encode()


def test_watch_rebuilds_a_file_written_in_chunks_once_it_is_whole(tmp_path: Path) -> None:
    folder = tmp_path / "seeds"
    folder.mkdir()
    rebuilds = Rebuilds(folder)
    chunks = [f"phần {i}\n".encode() for i in range(5)]
    whole = b"".join(chunks)

    async def write_in_chunks() -> None:
        with (folder / "chunked.txt").open("wb") as f:
            for chunk in chunks:
                f.write(chunk)
                f.flush()
                await asyncio.sleep(0.03)

    asyncio.run(
        watching(folder, rebuilds, write_in_chunks, lambda: bool(rebuilds.calls), settle_ms=250)
    )
    assert rebuilds.calls[0] == frozenset({"chunked.txt"})
    assert rebuilds.seen[0] == {"chunked.txt": whole}
    assert all(held == {"chunked.txt": whole} for held in rebuilds.seen)


def test_watch_makes_its_folder_and_stops_when_told(tmp_path: Path) -> None:
    folder = tmp_path / "not" / "yet" / "seeds"
    rebuilds = Rebuilds(folder)

    async def scenario() -> float:
        stop = asyncio.Event()
        task = asyncio.create_task(
            watch(folder, rebuilds, stop, poll=False, debounce_ms=50, settle_ms=50)
        )
        try:
            deadline = time.monotonic() + 10
            while not folder.is_dir():
                assert time.monotonic() < deadline and not task.done()
                await asyncio.sleep(0.01)
        finally:
            stop.set()
            started = time.monotonic()
            await asyncio.wait_for(task, 10)
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 2
    assert rebuilds.calls == []


def test_a_stop_while_settling_builds_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "seeds"
    folder.mkdir()
    rebuilds = Rebuilds(folder)

    async def drop() -> None:
        (folder / "005_new.txt").write_text("capture", encoding="utf-8")

    def reported() -> bool:  # watchfiles logs a burst just before handing it over to settle
        return any("change" in r.getMessage() for r in caplog.records if r.name == WATCHFILES)

    with caplog.at_level(logging.INFO, logger=WATCHFILES):
        # settle_ms is long: the stop comes while the watcher waits for the file to settle.
        asyncio.run(watching(folder, rebuilds, drop, reported, settle_ms=400))
    assert reported()
    assert rebuilds.calls == []
