"""Three daemons on one PostgreSQL store, under faults: the real `digest run` processes, a real
PostgreSQL server (tests/pg.py) and a real aiosmtpd sink on 127.0.0.1.

3,000 subscribers are due when the three start. The node holding the ingest lease is killed
with SIGKILL mid-run and restarted, another is stopped with SIGTERM and restarted: every
subscriber gets their digest once (Message-IDs counted at the sink), no row is left
`sending`, the lease moves within seconds, a capture added afterwards is served by every node,
and the three public folders end byte-identical.
"""

from __future__ import annotations

import asyncio
import email
import hashlib
import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from email import policy
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.smtp import SMTP, Envelope, Session
from mail.mailworld import Handler, Server, subscribed_days_ago, wait_until
from raw import rows
from support import TEMPLATES, copy_seeds, free_port, toml

SUBSCRIBERS = 3000
Launch = Callable[..., subprocess.Popen[Any]]


class RecordingFirst(Handler):
    """A slow sink that keeps each message as soon as its data has arrived, then takes its
    time to answer: a client killed while waiting for the reply has still delivered."""

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        await asyncio.sleep(self.delay)
        return "250 Message accepted"


PORTS: dict[Path, int] = {}


def node_config(root: Path, name: str, url: str, smtp_port: int) -> Path:
    folder = root / name
    folder.mkdir()
    PORTS[folder] = free_port()
    config = (
        "[paths]\n"
        'seeds = "../seeds"\n'  # the folder every node reaches
        'store = "var/digest.sqlite"\n'  # this node's own locks and health snapshot
        'public = "public"\n'
        f'templates = "{TEMPLATES.as_posix()}"\n'
        + toml("site", base_url="https://tin.example.org/")  # nginx in front of every node
        + toml("store", url=url)
        + toml("node", name=name)
        + toml("server", host="127.0.0.1", port=PORTS[folder])
        + toml("smtp", host="127.0.0.1", port=smtp_port, security="none", connections=4)
        + toml("watch", poll=True)
    )
    (folder / "config.toml").write_text(config, encoding="utf-8")
    return folder


def health(folder: Path) -> dict[str, Any]:
    url = f"http://127.0.0.1:{PORTS[folder]}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            found: dict[str, Any] = json.loads(answer.read())
            return found
    except OSError:
        return {}


def tree(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_three_nodes_deliver_once_and_serve_the_same_bytes_through_kills(
    tmp_path: Path, pg_url: str, launch: Launch
) -> None:
    handler = RecordingFirst()
    handler.delay = 0.02  # each node's 4 connections wait on the sink: the run lasts seconds
    sink = Server(handler, free_port())
    sink.start()
    try:
        copy_seeds(tmp_path / "seeds")
        nodes = [node_config(tmp_path, f"n{i}", pg_url, sink.port) for i in (1, 2, 3)]
        digest = [sys.executable, "-m", "digest", "--config", "config.toml"]
        subprocess.run([*digest, "build"], cwd=nodes[0], check=True, capture_output=True)
        emails = [f"n{i:04d}@example.org" for i in range(SUBSCRIBERS)]
        subscribed_days_ago(tmp_path, 1, emails, where=pg_url, source="cli")  # all due

        def start(folder: Path) -> subprocess.Popen[Any]:
            log = (folder / "daemon.log").open("ab")
            return launch([*digest, "run"], cwd=folder, stdout=log, stderr=log)

        running = {f.name: start(f) for f in nodes}
        assert wait_until(lambda: all(health(f).get("status") for f in nodes), timeout=60)
        holder = wait_until(lambda: health(nodes[1]).get("cluster", {}).get("ingest_lease"))
        assert holder in ("n1", "n2", "n3")

        # The lease holder is killed mid-run; the lease moves to a live node within seconds.
        assert wait_until(lambda: len(handler.messages) >= 300, timeout=60)
        victim = next(f for f in nodes if f.name == holder)
        running[holder].send_signal(signal.SIGKILL)
        running[holder].wait()
        killed_at = time.monotonic()
        other = next(f for f in nodes if f.name != holder)

        def new_holder() -> str | None:
            found = health(other).get("cluster", {}).get("ingest_lease")
            return found if found not in (None, holder) else None

        moved_to = wait_until(new_holder, timeout=15, every=0.1)
        assert moved_to, "the ingest lease did not move after its holder was killed"
        moved_in = time.monotonic() - killed_at
        running[holder] = start(victim)

        # Another node is stopped politely: it finishes what it has begun and gives back the rest.
        assert wait_until(lambda: len(handler.messages) >= 1500, timeout=120)
        polite = next(f for f in nodes if f.name not in (holder,))
        running[polite.name].send_signal(signal.SIGTERM)
        assert running[polite.name].wait(timeout=60) == 0

        unfinished = "select count(*) from outbox where state in ('pending', 'sending', 'failed')"
        assert wait_until(lambda: rows(pg_url, unfinished) == [(0,)], timeout=180, every=0.5)
        running[polite.name] = start(polite)

        # Delivery: each subscriber's digest arrived once; none twice.
        arrived = Counter(m["To"].addresses[0].addr_spec for m in handler.messages)
        twice = {a for a, n in arrived.items() if n > 1}
        assert not twice, f"digests delivered twice: {sorted(twice)[:5]}"
        ids = Counter(m["Message-ID"] for m in handler.messages)
        assert max(ids.values()) == 1
        states = dict(rows(pg_url, "select subscriber, state from outbox"))
        assert set(states.values()) <= {"sent", "empty", "unknown"}
        missing = {e for e in emails if e not in arrived}
        # Only a message the killed node was writing when it died may be missing, and its
        # row says it may not have arrived (`unknown`, never sent again).
        assert all(states[e] == "unknown" for e in missing) and len(missing) <= 4
        sent = {e for e, s in states.items() if s == "sent"}
        assert sent <= set(arrived)

        # A capture added now is ingested by the lease holder and published by every node.
        (tmp_path / "seeds" / "zz-new.txt").write_text(
            "HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ\nBộ trưởng thăm Bệnh viện Nhiệt đới\n"
            "Thứ Hai, ngày 30/11/2026 09:00Sáng nay, Bộ trưởng thăm bệnh viện.\n",
            encoding="utf-8",
        )

        def everywhere() -> bool:
            return all(
                "Nhiệt đới" in (f / "public" / "index.html").read_text(encoding="utf-8")
                and all(n["behind"] == 0 for n in health(f).get("cluster", {}).get("publish", []))
                for f in nodes
            )

        assert wait_until(everywhere, timeout=60, every=0.2)
        trees = [tree(f / "public") for f in nodes]
        assert trees[0] == trees[1] == trees[2] and len(trees[0]) > 100
        print(
            f"lease moved from {holder} to {moved_to} in {moved_in:.1f} s; "
            f"{len(handler.messages)} digests; missing (unknown) {len(missing)}"
        )
    finally:
        sink.stop()


def test_a_store_url_with_a_password_is_refused_and_the_password_comes_from_the_environment(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from digest.config import load
    from digest.errors import ConfigError

    with_password = sa.engine.make_url(pg_url).set(password="hunter2")
    (tmp_path / "config.toml").write_text(
        f'[paths]\ntemplates = "{TEMPLATES.as_posix()}"\n'
        + toml("store", url=with_password.render_as_string(hide_password=False)),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"store\.url: has a password") as caught:
        load(tmp_path / "config.toml")
    assert "hunter2" not in str(caught.value)
    (tmp_path / "config.toml").write_text(
        f'[paths]\ntemplates = "{TEMPLATES.as_posix()}"\n' + toml("store", url=pg_url),
        encoding="utf-8",
    )
    monkeypatch.setenv("DIGEST_STORE_PASSWORD", "not-needed-with-trust")
    config = load(tmp_path / "config.toml")
    assert config.store.shared and config.store.password() == "not-needed-with-trust"
    assert config.store.node  # the host name when not set
