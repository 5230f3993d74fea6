"""The PostgreSQL fixtures (tests/pg.py, conftest.py): a real server of the session's own, a
fresh database per test, nothing of either left behind."""

from __future__ import annotations

import errno
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pg
import psycopg
import pytest
from pg import NOT_INSTALLED, PostgresServer, find_bindir, libpq_url, require_bindir
from support import free_port

TESTS = Path(__file__).resolve().parent


def connect(url: str) -> psycopg.Connection[tuple[Any, ...]]:
    return psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=10)


def postmaster(server: PostgresServer) -> int:
    return int((server.data / "postmaster.pid").read_text().split()[0])


def running(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not: a container's init may never reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def family(pid: int) -> set[int]:
    """`pid` and its children: the postmaster and its checkpointer, walwriter, backends…"""
    found = {pid}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def taken() -> Iterator[int]:
    """A port of 127.0.0.1 held by a listening socket for the length of the test."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_a_table_written_and_read_back(pg_url: str) -> None:
    assert pg_url.startswith("postgresql+psycopg://digest@127.0.0.1:")
    with connect(pg_url) as conn:
        conn.execute("CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL)")
        conn.execute("INSERT INTO notes (body) VALUES (%s), (%s)", ["Bộ trưởng", "Thứ trưởng"])
        rows = conn.execute("SELECT id, body FROM notes ORDER BY id").fetchall()
        assert rows == [(1, "Bộ trưởng"), (2, "Thứ trưởng")]
        assert conn.execute("SHOW server_encoding").fetchone() == ("UTF8",)


def test_two_databases_are_different_and_isolated(postgres: PostgresServer, pg_url: str) -> None:
    other = postgres.create_database()
    try:
        assert other != pg_url
        with connect(pg_url) as a, connect(other) as b:
            a.execute("CREATE TABLE notes (body text)")
            a.execute("INSERT INTO notes VALUES ('only here')")
            assert b.execute("SELECT to_regclass('notes')").fetchone() == (None,)
            name_a = a.execute("SELECT current_database()").fetchone()
            name_b = b.execute("SELECT current_database()").fetchone()
            assert name_a != name_b
    finally:
        postgres.drop_database(other)
    with postgres.connect() as conn:
        names = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
    assert other.rsplit("/", 1)[1] not in names


seen: list[str] = []  # the databases earlier runs of the test below were given
left_open: list[psycopg.Connection[tuple[Any, ...]]] = []


@pytest.mark.parametrize("run", [1, 2])
def test_each_test_a_fresh_database_dropped_after_it(
    postgres: PostgresServer, pg_url: str, run: int
) -> None:
    name = pg_url.rsplit("/", 1)[1]
    with postgres.connect() as conn:
        names = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
    assert name in names
    assert not names & set(seen), "an earlier test's database was not dropped"
    for earlier in left_open:  # dropped all the same: its connection was terminated
        with pytest.raises(psycopg.OperationalError):
            earlier.execute("SELECT 1")
        earlier.close()
    left_open.clear()
    conn = connect(pg_url)
    assert conn.execute("SELECT to_regclass('notes')").fetchone() == (None,)
    conn.execute("CREATE TABLE notes (body text)")
    seen.append(name)
    left_open.append(conn)  # open across the fixture's DROP DATABASE, which must not mind


def test_listens_on_127_0_0_1_alone(postgres: PostgresServer, pg_url: str) -> None:
    with connect(pg_url) as conn:
        settings = {
            name: conn.execute(f"SHOW {name}").fetchone()
            for name in ("listen_addresses", "unix_socket_directories", "data_directory")
        }
        address = conn.execute("SELECT host(inet_server_addr())").fetchone()
    assert settings == {
        "listen_addresses": ("127.0.0.1",),
        "unix_socket_directories": (str(postgres.folder),),  # not /var/run/postgresql
        "data_directory": (str(postgres.data),),  # not the system cluster's
    }
    assert address == ("127.0.0.1",)
    with socket.create_connection(("127.0.0.1", postgres.port), timeout=5):
        pass
    others = [(socket.AF_INET, "127.0.0.2")]  # loopback too, but not the address it binds
    if socket.has_ipv6:
        others.append((socket.AF_INET6, "::1"))
    for family_, host in others:
        with socket.socket(family_) as s:
            s.settimeout(5)
            result = s.connect_ex((host, postgres.port))
        assert result in (errno.ECONNREFUSED, errno.EADDRNOTAVAIL, errno.ENETUNREACH), host


def test_server_version_at_least_13(pg_url: str) -> None:
    with connect(pg_url) as conn:
        assert conn.info.server_version >= 130000
        row = conn.execute("SELECT current_setting('server_version_num')::int").fetchone()
        assert row is not None and row[0] >= 130000


def test_stop_leaves_no_process_and_no_folder() -> None:
    server = PostgresServer(require_bindir())
    try:
        server.start()
        folder = server.folder
        assert folder is not None
        with server.connect() as conn:
            conn.execute("SELECT 1")
            processes = family(postmaster(server))
    finally:
        server.stop()
    assert not folder.exists()
    assert not [pid for pid in processes if running(pid)]
    server.stop()  # twice is fine


def test_stop_after_a_start_failed_half_way(monkeypatch: pytest.MonkeyPatch, taken: int) -> None:
    """initdb done, then every port tried is taken: start fails, stop still cleans up."""
    monkeypatch.setattr(pg, "free_port", lambda: taken)
    server = PostgresServer(require_bindir())
    with pytest.raises(RuntimeError, match="already in use"):
        server.start()
    folder = server.folder
    assert folder is not None and (folder / "data" / "PG_VERSION").exists()
    server.stop()
    assert not folder.exists()


def test_start_tries_another_port_when_one_is_taken(
    monkeypatch: pytest.MonkeyPatch, taken: int
) -> None:
    ports = iter([taken, free_port()])
    monkeypatch.setattr(pg, "free_port", lambda: next(ports))
    server = PostgresServer(require_bindir())
    try:
        server.start()
        assert server.port != taken
        with server.connect() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        server.stop()


def test_nothing_left_when_the_test_process_dies() -> None:
    """SIGKILL runs no teardown: the watchdog stops the server and removes its folder."""
    require_bindir()
    script = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from pg import PostgresServer, find_bindir\n"
        "s = PostgresServer(find_bindir()); s.start()\n"
        "print(s.folder, int((s.data / 'postmaster.pid').read_text().split()[0]), flush=True)\n"
        "sys.stdin.read()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(TESTS)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stderr is not None
        line = child.stdout.readline()
        assert line, f"the child exited: {child.stderr.read()}"
        folder, pid = line.split()
        processes = family(int(pid))
        assert running(int(pid))
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate()
    wait_until(lambda: not Path(folder).exists(), "the folder removed")
    wait_until(lambda: not [p for p in processes if running(p)], "the server gone")


def test_skipped_without_postgresql_but_failed_on_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pg, "find_bindir", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=re.escape(NOT_INSTALLED)):
        require_bindir()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=re.escape(NOT_INSTALLED)):
        require_bindir()


def test_bindir_from_the_environment_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_PG_BINDIR", "/opt/pg/bin")
    assert find_bindir() == Path("/opt/pg/bin")
    monkeypatch.delenv("DIGEST_PG_BINDIR")
    found = find_bindir()
    if found is None:
        pytest.skip(NOT_INSTALLED)
    assert all(os.access(found / name, os.X_OK) for name in ("initdb", "pg_ctl", "postgres"))
