"""SQL on a store behind its back, as another program would, on either engine."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import NullPool


def _engine(where: Path | str) -> sa.Engine:
    url = f"sqlite:///{where}" if isinstance(where, Path) else where
    return sa.create_engine(url, poolclass=NullPool)


def rows(where: Path | str, query: str, **params: Any) -> list[tuple[Any, ...]]:
    engine = _engine(where)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(query), params)]
    finally:
        engine.dispose()


def sql(where: Path | str, *statements: str, **params: Any) -> None:
    """Change the store behind its back, in one transaction; `params` are bound by name
    (`:title`) in each statement."""
    engine = _engine(where)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement), params)
    finally:
        engine.dispose()


@contextlib.contextmanager
def polling(where: Path | str) -> Iterator[Callable[..., list[tuple[Any, ...]]]]:
    """`rows` over one connection kept open, for a query asked again and again in a tight
    loop: no connection made per look (PostgreSQL takes milliseconds to make one)."""
    engine = _engine(where)
    try:
        with engine.connect() as conn:

            def query(text: str, **params: Any) -> list[tuple[Any, ...]]:
                try:
                    return [tuple(r) for r in conn.execute(sa.text(text), params)]
                finally:
                    conn.rollback()  # the next look sees what was committed since

            yield query
    finally:
        engine.dispose()
