"""Fixtures: a project folder of the test's own, every process a test starts killed at its
end, passed or failed (tests/support.py has the classes behind them), and a PostgreSQL server
of the session's own with a fresh database per test (tests/pg.py).

The store's engine: a test marked `both_engines` runs twice, its store a SQLite file and then
a PostgreSQL database of its own (the `engine` its fixtures build on: `store_url`,
`store_urls`, and the projects and worlds made from them); one marked `sqlite_only` runs on
SQLite alone, for a reason given beside the mark; any other test's store is a SQLite file.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pg import PostgresServer, require_bindir
from support import Daemon, Project, copy_seeds, kill_group

ENGINES = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marked = metafunc.definition.get_closest_marker
    if "engine" in metafunc.fixturenames:
        if marked("sqlite_only"):
            metafunc.parametrize("engine", ["sqlite"])
        elif marked("both_engines"):
            metafunc.parametrize("engine", ENGINES)


@pytest.fixture
def engine() -> str:
    """The engine of the test's store: SQLite, unless the test is marked `both_engines`
    (then `pytest_generate_tests` gives each engine in turn)."""
    return "sqlite"


@pytest.fixture
def store_urls(engine: str, request: pytest.FixtureRequest) -> Iterator[Callable[[], str | None]]:
    """Makes a store for a project on the test's engine, one per call: None on SQLite (the
    project's own file, config.toml's default), else a fresh PostgreSQL database's URL;
    every database dropped at the end of the test."""
    made: list[str] = []

    def new() -> str | None:
        if engine == "sqlite":
            return None
        server: PostgresServer = request.getfixturevalue("postgres")
        made.append(server.create_database())
        return made[-1]

    yield new
    for url in made:
        request.getfixturevalue("postgres").drop_database(url)


@pytest.fixture
def store_url(store_urls: Callable[[], str | None]) -> str | None:
    """The store of the test's project: None on SQLite, a PostgreSQL database's URL."""
    return store_urls()


@pytest.fixture
def project(tmp_path: Path, store_url: str | None) -> Project:
    """An empty project: config and seeds folder, no store yet."""
    p = Project(tmp_path, store_url)
    p.seeds.mkdir()
    p.write_config()
    return p


@pytest.fixture
def seeded(project: Project) -> Project:
    """A project holding the five real seed files."""
    copy_seeds(project.seeds)
    return project


@pytest.fixture
def make_project(tmp_path: Path, store_urls: Callable[[], str | None]) -> Callable[..., Project]:
    """Makes projects, each with a store of its own on the test's engine."""
    counter = iter(range(1000))

    def make(extra: str = "") -> Project:
        p = Project(tmp_path / f"p{next(counter)}", store_urls())
        (p.seeds).mkdir(parents=True)
        p.write_config(extra)
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
