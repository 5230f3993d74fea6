"""The store tests' fixtures: a store file of the test's own, closed at the end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from digest.store import Store, open_store


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "var" / "digest.sqlite"


@pytest.fixture
def store(path: Path) -> Iterator[Store]:
    s = open_store(path)
    yield s
    s.close()
