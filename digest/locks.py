"""File locks (`flock`) between digest processes on one machine: held while a process lives,
released by the kernel when it dies, so a crash never leaves a lock behind."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from .errors import LockedError


class FileLock:
    """A lock file: taken shared or alone, waiting or not; `note` is written into it so a
    refused process can say who holds it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1

    def take(self, *, alone: bool, wait: bool, note: str = "") -> bool:
        """Take (or change) the lock; False when `wait` is off and another process holds it
        in a way that conflicts."""
        if self.fd < 0:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        mode = (fcntl.LOCK_EX if alone else fcntl.LOCK_SH) | (0 if wait else fcntl.LOCK_NB)
        try:
            fcntl.flock(self.fd, mode)
        except BlockingIOError:
            return False
        if note:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, note.encode(), 0)  # at the start, wherever the offset was
        return True

    def holder(self) -> str:
        """What the holder wrote into the lock file."""
        os.lseek(self.fd, 0, os.SEEK_SET)
        return os.read(self.fd, 64).decode(errors="replace").strip() or "unknown"

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing releases the lock, also when the process dies
            self.fd = -1

    def __enter__(self) -> FileLock:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


@contextlib.contextmanager
def writer_lock(store: Path, public: Path) -> Iterator[None]:
    """Only one writer of a store and its public folder at a time: a daemon or a build."""
    path = store.with_name(store.name + ".lock")
    with FileLock(path) as lock:
        if not lock.take(alone=True, wait=False, note=str(os.getpid())):
            raise LockedError(
                f"{path}: another digest process (pid {lock.holder()}) is writing {store} and "
                f"{public}; stop it (a running `digest run` already rebuilds on every change) "
                "or wait for it to finish"
            )
        yield
