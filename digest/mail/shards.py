"""Delivery from several processes: which process sends whose digests, and the lock that
lets a run settle a dead process's claims but never a live neighbour's."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import zlib
from collections.abc import Iterator
from pathlib import Path

from ..config import Config
from ..locks import FileLock

# Fewer due digests are delivered by one process: starting another (a second or so of CPU,
# with thousands of subscribers to read) costs more than it saves.
SHARDED_FROM = 200


def shard(subscriber: str, shards: int) -> int:
    """Which of `shards` delivering processes sends this subscriber's digests: stable, and
    even enough over many subscribers."""
    return zlib.crc32(subscriber.encode()) % shards


def new_owner() -> int:
    """A delivering process's number on the rows it claims (store/outbox.py)."""
    return secrets.randbelow(2**31 - 2) + 1


def shard_command(
    config: Config, index: int, shards: int, at: str, schedule: str | None, owner: int
) -> list[str]:
    """The command line of the process that delivers shard `index` of a run planned `at`,
    claiming as `owner` (its starter knows the number, to settle its rows if it dies)."""
    args = ["send-shard", "--shard", str(index), "--of", str(shards), "--at", at]
    args += ["--owner", str(owner)]
    return config.command(*args, *(("--period", schedule) if schedule else ()))


async def terminate_on(stop: asyncio.Event, processes: list[asyncio.subprocess.Process]) -> None:
    """Stopping a run stops its helpers: they finish what they have in flight."""
    await stop.wait()
    for process in processes:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()


def delivery_lock_path(config: Config) -> Path:
    return config.paths.store.with_name(config.paths.store.name + ".send.lock")


class DeliveryLock:
    """Held shared by every process that may have claims in flight; settling rows left
    `sending` takes it alone, so only a dead process's claims are ever settled."""

    def __init__(self, config: Config) -> None:
        self.lock = FileLock(delivery_lock_path(config))

    def __enter__(self) -> DeliveryLock:
        self.lock.take(alone=False, wait=True)
        return self

    def __exit__(self, *_: object) -> None:
        self.lock.release()

    @contextlib.contextmanager
    def alone(self) -> Iterator[bool]:
        """Exclusive for the block if no other process holds the lock; shared again after.
        Never hold it across an await: a neighbour's shared request would wait on it."""
        alone = self.lock.take(alone=True, wait=False)
        try:
            yield alone
        finally:
            self.lock.take(alone=False, wait=True)  # a refused upgrade drops the shared lock too
