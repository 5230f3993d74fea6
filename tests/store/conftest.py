"""The store tests' fixtures: a store of the test's own, on every engine, closed at the end.

Each test runs on SQLite and on a real PostgreSQL server (tests/pg.py): every module is marked
`both_engines` (tests/conftest.py), except for tests marked `sqlite_only`: they read or damage
the SQLite file itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from digest.store import Store, open_store


@pytest.fixture
def path(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> Path | str:
    """Where the store is: a SQLite file, or a fresh PostgreSQL database's URL."""
    if engine == "sqlite":
        return tmp_path / "var" / "digest.sqlite"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def store(path: Path | str) -> Iterator[Store]:
    s = open_store(path)
    yield s
    s.close()
