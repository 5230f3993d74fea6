"""Fixtures: a project folder of the test's own, every process a test starts killed at its
end, passed or failed (tests/support.py has the classes behind them), and a PostgreSQL server
of the session's own with a fresh database per test (tests/pg.py)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pg import PostgresServer, require_bindir
from support import Daemon, Project, base_config, copy_seeds, kill_group


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """An empty project: config and seeds folder, no store yet."""
    p = Project(tmp_path)
    p.seeds.mkdir()
    p.config.write_text(base_config(), encoding="utf-8")
    return p


@pytest.fixture
def seeded(project: Project) -> Project:
    """A project holding the five real seed files."""
    copy_seeds(project.seeds)
    return project


@pytest.fixture
def make_project(tmp_path: Path) -> Callable[..., Project]:
    counter = iter(range(1000))

    def make(extra: str = "") -> Project:
        p = Project(tmp_path / f"p{next(counter)}")
        (p.seeds).mkdir(parents=True)
        p.config.write_text(base_config(extra), encoding="utf-8")
        return p

    return make


@pytest.fixture
def launch() -> Iterator[Callable[..., subprocess.Popen[Any]]]:
    """subprocess.Popen in a process group of its own, killed with all it started when the
    test ends, passed or failed."""
    started: list[subprocess.Popen[Any]] = []

    def popen(*args: Any, **options: Any) -> subprocess.Popen[Any]:
        process = subprocess.Popen(*args, start_new_session=True, **options)
        started.append(process)
        return process

    yield popen
    for process in started:
        kill_group(process)


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """Makes daemons (root defaults to the test's folder); every one is killed at the end."""
    made: list[Daemon] = []

    def make(root: Path | None = None, **options: Any) -> Daemon:
        d = Daemon(root or tmp_path, **options)
        made.append(d)
        return d

    yield make
    for d in made:
        d.kill()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server of this session's own, in a temporary folder, on a free port of
    127.0.0.1; stopped and removed at the end, whatever happened. Skipped when PostgreSQL is not
    installed, failed instead when $CI is set."""
    server = PostgresServer(require_bindir())
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(postgres: PostgresServer) -> Iterator[str]:
    """The SQLAlchemy URL (postgresql+psycopg://…) of a fresh database of the test's own,
    dropped at its end, connections left open or not."""
    url = postgres.create_database()
    yield url
    postgres.drop_database(url)
