"""A real PostgreSQL server of the test session's own: `initdb` into a fresh temporary folder,
started on a free port of 127.0.0.1 with its socket in that folder, stopped and removed at the
end. Never the system cluster. The fixtures that hand it out (`postgres`, `pg_url`) are in
conftest.py."""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql
from support import free_port

USER = "digest"  # the cluster's superuser: trust authentication, no password
NOT_INSTALLED = "PostgreSQL is not installed: apt-get install postgresql, or set DIGEST_PG_BINDIR"
# Durability is worth nothing in a folder deleted at the end; the speed is worth a lot.
SETTINGS = (
    "listen_addresses=127.0.0.1",
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "max_connections=200",
)

# A backstop outliving nothing: its stdin is a pipe only the test process holds, so it reads
# end of file when that process is gone, however it ended (a crash, SIGKILL), and then stops
# the server and removes the folder. A normal `stop()` does the work itself and kills it.
_WATCHDOG = """\
import shutil, subprocess, sys
sys.stdin.buffer.read()
subprocess.run(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
shutil.rmtree(sys.argv[1], ignore_errors=True)
"""


def find_bindir() -> Path | None:
    """The folder holding `initdb` and `pg_ctl`: $DIGEST_PG_BINDIR if set (taken as is), else
    `pg_config --bindir`, else the highest /usr/lib/postgresql/*/bin, else `initdb`'s on PATH.
    A candidate without the server's programs (libpq-dev's pg_config) is passed over."""
    explicit = os.environ.get("DIGEST_PG_BINDIR")
    if explicit:
        return Path(explicit)
    candidates: list[Path] = []
    if shutil.which("pg_config"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            result = subprocess.run(
                ["pg_config", "--bindir"], capture_output=True, text=True, timeout=30, check=True
            )
            if result.stdout.strip():
                candidates.append(Path(result.stdout.strip()))
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version, reverse=True)
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)  # through /usr/local/bin's symlinks
    return next((d for d in candidates if _has_server(d)), None)


def require_bindir() -> Path:
    """`find_bindir()`, or the test skipped, failed when $CI is set: CI must never skip."""
    bindir = find_bindir()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail(NOT_INSTALLED, pytrace=False)
        pytest.skip(NOT_INSTALLED)
    return bindir


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL (postgresql+psycopg://…) as psycopg.connect and libpq take it."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _version(bindir: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", bindir.parent.name))


def _has_server(bindir: Path) -> bool:
    return all(os.access(bindir / name, os.X_OK) for name in ("initdb", "pg_ctl", "postgres"))


class PostgresServer:
    """One throwaway cluster: `start()`, databases made and dropped, `stop()`. Run as root (a
    container), its programs run as the `postgres` user, since initdb refuses root."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.port = 0
        self.folder: Path | None = None  # data/, the log and the socket; None once stopped
        self._as_user: list[str] = []  # runuser's prefix when the tests run as root
        self._watchdog: subprocess.Popen[bytes] | None = None

    @property
    def data(self) -> Path:
        assert self.folder is not None, "not started"
        return self.folder / "data"

    @property
    def log(self) -> Path:
        assert self.folder is not None, "not started"
        return self.folder / "postgres.log"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        # mkdtemp, not pytest's tmp_path: that one is 0700 root's, closed to the postgres user.
        self.folder = Path(tempfile.mkdtemp(prefix="digest-pg-"))
        if os.geteuid() == 0:
            user = _service_user()
            account = pwd.getpwnam(user)
            os.chown(self.folder, account.pw_uid, account.pw_gid)
            self._as_user = _runas(user)
        backstop = [sys.executable, "-c", _WATCHDOG, str(self.folder)]
        self._watchdog = subprocess.Popen(
            [*backstop, *self._as_user, *self._stop_command()],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches the tests, not the backstop
        )
        self._initdb()
        for attempt in range(3):  # another process may take the free port before the server
            self.port = free_port()
            options = [f"-p {self.port}", f"-k {shlex.quote(str(self.folder))}"]
            options += [f"-c {setting}" for setting in SETTINGS]  # pg_ctl hands them to sh
            start = ["start", "-w", "-t", "60", "-l", str(self.log), "-o", " ".join(options)]
            started = self._run(self._pg_ctl(*start))
            if started.returncode == 0:
                return
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            if "already in use" not in log or attempt == 2:
                raise RuntimeError(f"pg_ctl start failed:\n{started.stdout}{started.stderr}{log}")

    def stop(self) -> None:
        """The server stopped, its folder removed; also after a start that failed half-way."""
        if self.folder is None:
            return
        pid_file = self.data / "postmaster.pid"
        if pid_file.exists():
            self._run(self._stop_command())
            if pid_file.exists():  # still there: pg_ctl could not stop it
                with contextlib.suppress(ValueError, OSError):
                    pid = int(pid_file.read_text().split()[0])
                    if str(self.data) in Path(f"/proc/{pid}/cmdline").read_text(errors="replace"):
                        os.kill(pid, signal.SIGKILL)  # our postmaster, not a reused pid
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None
        if self._watchdog is not None:
            self._watchdog.kill()
            self._watchdog.wait()
            assert self._watchdog.stdin is not None
            self._watchdog.stdin.close()
            self._watchdog = None

    def create_database(self) -> str:
        """A fresh, uniquely named database; its URL."""
        name = f"t_{uuid.uuid4().hex}"
        with self.connect() as conn:
            create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
            if conn.info.server_version >= 150000:  # twice as fast as 15's default, WAL_LOG
                create += sql.SQL(" STRATEGY FILE_COPY")
            conn.execute(create)
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """The database of `url` dropped, its connections terminated first."""
        name = urlsplit(url).path.lstrip("/")
        with self.connect() as conn:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            conn.execute(drop.format(sql.Identifier(name)))

    def connect(self, database: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        """A connection in autocommit mode (CREATE DATABASE refuses a transaction)."""
        return psycopg.connect(libpq_url(self.url(database)), autocommit=True, connect_timeout=10)

    def _initdb(self) -> None:
        command = [str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", USER]
        command += ["--encoding=UTF8", "--no-sync"]  # no fsync of a throwaway cluster
        result = self._run([*command, "--locale=C.UTF-8"])
        if result.returncode != 0 and "locale" in result.stderr:  # a system without C.UTF-8
            shutil.rmtree(self.data, ignore_errors=True)
            result = self._run([*command, "--no-locale"])
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{result.stdout}{result.stderr}")

    def _pg_ctl(self, *args: str) -> list[str]:
        return [str(self.bindir / "pg_ctl"), "-D", str(self.data), *args]

    def _stop_command(self) -> list[str]:
        return self._pg_ctl("stop", "-m", "immediate", "-w", "-t", "15")

    def _run(self, command: list[str]) -> subprocess.CompletedProcess[str]:
        """`command` as the cluster's owner, in its folder, none of the caller's PG* settings;
        in a session of its own, so the server it starts is out of reach of Ctrl-C."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        return subprocess.run(
            [*self._as_user, *command],
            cwd=self.folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            start_new_session=True,
        )


def _service_user() -> str:
    """The unprivileged user the cluster runs as under root: Debian's `postgres`, else one of
    our own, made once."""
    for name in ("postgres", "digestpg"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name).pw_name
    subprocess.run(["useradd", "--system", "--no-create-home", "digestpg"], capture_output=True)
    return pwd.getpwnam("digestpg").pw_name  # KeyError if useradd failed: nothing to run as


def _runas(user: str) -> list[str]:
    if shutil.which("runuser"):
        return ["runuser", "-u", user, "--"]
    account = pwd.getpwnam(user)
    return ["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--init-groups"]
