"""The mail fixtures: a real SMTP server on 127.0.0.1 and a project sending to it (the
classes behind them are in mailworld.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support import free_port

from mail.mailworld import Handler, Server, Smtp, World


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    """(handler, server): the handler records what arrives and can misbehave on request."""
    handler = Handler()
    server = Server(handler, free_port())
    server.start()
    yield handler, server
    server.stop()


@pytest.fixture
def world(tmp_path: Path, smtp: Smtp, store_url: str | None) -> World:
    """A project sending to the `smtp` server, with the seeds ingested on a fake clock, on
    the test's engine (tests/conftest.py)."""
    return World(tmp_path, smtp[1].port, store=store_url)
