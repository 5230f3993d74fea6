"""SQL on a store behind its back, as another program would, on either engine."""

from __future__ import annotations

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


def sql(where: Path | str, *statements: str) -> None:
    """Change the store behind its back, in one transaction."""
    engine = _engine(where)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
    finally:
        engine.dispose()
