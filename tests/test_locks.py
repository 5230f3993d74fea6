"""FileLock and writer_lock across real processes: sharing, refusal, release on death."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import Talker

from digest.errors import DigestError, LockedError
from digest.locks import FileLock, writer_lock

Launch = Callable[..., subprocess.Popen[Any]]

# A child that takes a lock, says so, and keeps it until told to let go (or killed).
HOLD = """
import sys
from pathlib import Path
from digest.locks import FileLock
lock = FileLock(Path(sys.argv[1]))
if not lock.take(alone=sys.argv[2] == "alone", wait=False, note=sys.argv[3]):
    sys.exit("could not take the lock")
print("held", flush=True)
sys.stdin.readline()
lock.release()
print("released", flush=True)
sys.stdin.readline()
"""

WRITER = """
import sys
from pathlib import Path
from digest.locks import writer_lock
with writer_lock(Path(sys.argv[1]), Path(sys.argv[2])):
    print("held", flush=True)
    sys.stdin.readline()
"""


def holding(launch: Launch, path: Path, *, alone: bool, note: str = "") -> Talker:
    child = Talker(launch, HOLD, str(path), "alone" if alone else "shared", note)
    child.expect("held")
    return child


def test_shared_takers_coexist_and_keep_out_an_exclusive_one(tmp_path: Path) -> None:
    path = tmp_path / "locks" / "x.lock"  # the folder is made
    with FileLock(path) as a, FileLock(path) as b, FileLock(path) as c:
        assert a.take(alone=False, wait=False)
        assert b.take(alone=False, wait=False)
        assert not c.take(alone=True, wait=False)
        a.release()
        assert not c.take(alone=True, wait=False)
        b.release()
        assert c.take(alone=True, wait=False)
        assert not a.take(alone=False, wait=False)
        assert not b.take(alone=True, wait=False)
    with FileLock(path) as again:  # leaving the blocks released everything
        assert again.take(alone=True, wait=False)


def test_another_process_holding_it_alone_refuses_every_non_blocking_take(
    tmp_path: Path, launch: Launch
) -> None:
    path = tmp_path / "x.lock"
    child = holding(launch, path, alone=True, note="42 digest build")
    with FileLock(path) as lock:
        started = time.monotonic()
        assert not lock.take(alone=True, wait=False)
        assert not lock.take(alone=False, wait=False)
        assert time.monotonic() - started < 1  # refused, not waited for
        assert lock.holder() == "42 digest build"
        child.tell()
        child.expect("released")
        assert lock.take(alone=True, wait=False)
        with FileLock(path) as other:
            assert not other.take(alone=False, wait=False)


def test_another_process_holding_it_shared_lets_shared_takers_in(
    tmp_path: Path, launch: Launch
) -> None:
    path = tmp_path / "x.lock"
    holding(launch, path, alone=False)
    with FileLock(path) as lock:
        assert not lock.take(alone=True, wait=False)
        assert lock.take(alone=False, wait=False)
        with FileLock(path) as other:
            assert not other.take(alone=True, wait=False)


def test_holder_without_a_note_is_unknown(tmp_path: Path, launch: Launch) -> None:
    path = tmp_path / "x.lock"
    holding(launch, path, alone=True)
    with FileLock(path) as lock:
        assert not lock.take(alone=True, wait=False)
        assert lock.holder() == "unknown"


def test_the_kernel_releases_the_lock_of_a_killed_holder(tmp_path: Path, launch: Launch) -> None:
    path = tmp_path / "x.lock"
    child = holding(launch, path, alone=True, note=f"pid {os.getpid() + 1}")
    with FileLock(path) as lock:
        assert not lock.take(alone=True, wait=False)
        child.kill()  # no release, no exit handler: SIGKILL
        assert lock.take(alone=True, wait=False, note="after")
        assert lock.holder() == "after"


def test_a_waiting_take_gets_the_lock_once_the_holder_dies(tmp_path: Path, launch: Launch) -> None:
    path = tmp_path / "x.lock"
    child = holding(launch, path, alone=False)
    taken: list[bool] = []
    with FileLock(path) as lock:
        waiter = threading.Thread(
            target=lambda: taken.append(lock.take(alone=True, wait=True)), daemon=True
        )
        waiter.start()
        try:
            waiter.join(0.3)
            assert waiter.is_alive() and taken == []  # it waits while the child holds it
        finally:
            child.kill()
        waiter.join(10)
        assert not waiter.is_alive() and taken == [True]


@pytest.mark.parametrize("before", ["changed", "refused"])
def test_a_new_note_replaces_the_old_one(tmp_path: Path, launch: Launch, before: str) -> None:
    path = tmp_path / "x.lock"
    with FileLock(path) as lock, FileLock(path) as other:
        if before == "changed":  # shared, then alone: both with a note
            assert lock.take(alone=False, wait=False, note="first")
        else:  # refused, read who holds it, then taken once the holder is gone
            child = holding(launch, path, alone=True, note="first")
            assert not lock.take(alone=True, wait=False)
            assert lock.holder() == "first"
            child.kill()
        assert lock.take(alone=True, wait=False, note="second")
        assert not other.take(alone=False, wait=False)
        assert other.holder() == "second"


def test_writer_lock_refuses_a_second_writer_naming_the_first(
    tmp_path: Path, launch: Launch
) -> None:
    store, public = tmp_path / "var" / "digest.sqlite", tmp_path / "public"
    child = Talker(launch, WRITER, str(store), str(public))
    child.expect("held")
    assert (tmp_path / "var" / "digest.sqlite.lock").read_text() == str(child.pid)
    with pytest.raises(LockedError) as refused, writer_lock(store, public):
        raise AssertionError("a second writer got in")
    error = refused.value
    assert isinstance(error, DigestError) and isinstance(error, RuntimeError)
    assert error.exit_code == 4
    message = str(error)
    assert f"(pid {child.pid})" in message
    assert str(store) in message and str(public) in message
    assert message.startswith(f"{tmp_path / 'var' / 'digest.sqlite.lock'}: another digest")

    child.kill()
    with writer_lock(store, public):
        assert (tmp_path / "var" / "digest.sqlite.lock").read_text() == str(os.getpid())
        # The lock is the file's, not the process's: a second writer here is refused too.
        with (
            pytest.raises(LockedError, match=rf"\(pid {os.getpid()}\)"),
            writer_lock(store, public),
        ):
            raise AssertionError("a second writer got in")
    with writer_lock(store, public):  # released on leaving the block
        pass
