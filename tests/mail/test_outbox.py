"""outbox.py: each digest exactly once — one per period, none for an empty one, missed periods
caught up, retries with backoff, several connections, and recovery after a process is killed
before or during DATA."""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from support import copy_seeds, store_at

from digest.mail import make_sender
from mail.mailworld import (
    DIGEST,
    Smtp,
    World,
    add_capture,
    assert_each_sent_once,
    body,
    daily_subscribers,
    outbox_rows,
    subscribed_days_ago,
    vn,
    wait_for_rows,
    wait_until,
    write_config,
)

Launch = Callable[..., subprocess.Popen[Any]]

# Claims, recovery and each digest once: the store's work, so on every engine.
pytestmark = pytest.mark.both_engines


def test_no_mail_for_an_empty_period_and_one_message_per_period(world: World, smtp: Smtp) -> None:
    handler, _ = smtp
    world.at(vn(2026, 11, 21, 7, 0, 5))
    world.run()
    world.run()  # the same period again: nothing more
    assert len(handler.messages) == 2
    world.at(vn(2026, 11, 22, 7, 1))
    world.run()
    assert len(handler.messages) == 2  # nothing new since yesterday's digest
    assert world.states()[("all@example.org", "daily:2026-11-22")] == "empty"


def test_downtime_of_two_periods_is_caught_up_once_each(world: World, smtp: Smtp) -> None:
    handler, _ = smtp
    world.at(vn(2026, 11, 21, 7, 0, 5))
    world.run()
    world.at(vn(2026, 11, 21, 12, 0))
    add_capture(world, "a.txt", "Bộ trưởng Bộ Y tế Đào Hồng Lan thăm Huế", "21/11/2026 03:00")
    world.at(vn(2026, 11, 22, 12, 0))  # the daemon is down through the 22nd and 23rd
    add_capture(world, "b.txt", "Bộ trưởng Bộ Y tế Đào Hồng Lan thăm Hà Giang", "22/11/2026 03:00")
    handler.messages.clear()
    world.at(vn(2026, 11, 23, 9, 30))
    world.run()
    lan = [m for m in handler.messages if m["To"].addresses[0].addr_spec == "lan@example.org"]
    assert [m["Subject"] for m in lan] == [
        "Bản tin hoạt động lãnh đạo Bộ Y tế — 22/11/2026 (1 tin)",
        "Bản tin hoạt động lãnh đạo Bộ Y tế — 23/11/2026 (1 tin)",
    ]
    assert "thăm Huế" in body(lan[0], "plain")
    assert "thăm Hà Giang" in body(lan[1], "plain")
    world.run()
    assert len([m for m in handler.messages if "lan@" in str(m["To"])]) == 2


def test_4xx_is_retried_with_backoff_then_sent_once(world: World, smtp: Smtp) -> None:
    handler, _ = smtp
    handler.refuse["lan@example.org"] = ("451 4.3.0 try again later", 1)
    world.at(vn(2026, 11, 21, 7, 0, 5))
    world.run()
    assert world.states()[("lan@example.org", "daily:2026-11-21")] == "failed"
    assert [m["To"].addresses[0].addr_spec for m in handler.messages] == ["all@example.org"]
    world.at(vn(2026, 11, 21, 7, 0, 30))
    world.run()  # too early for the retry
    assert len(handler.messages) == 1
    world.at(vn(2026, 11, 21, 7, 2))
    world.run()
    assert world.states()[("lan@example.org", "daily:2026-11-21")] == "sent"
    assert sorted(m["To"].addresses[0].addr_spec for m in handler.messages) == [
        "all@example.org",
        "lan@example.org",
    ]


def test_several_connections_deliver_each_digest_exactly_once(
    tmp_path: Path, smtp: Smtp, store_url: str | None
) -> None:
    handler, controller = smtp
    world = World(tmp_path, controller.port, daily_subscribers(30), store=store_url)
    assert world.config.smtp.connections == 4  # the shipped setting
    world.at(vn(2026, 11, 21, 7, 0, 5))
    assert_each_sent_once(world, handler, world.run(), 32)
    assert len(handler.sessions) == 4


def test_a_claim_a_dead_process_left_before_data_is_sent_by_the_run_that_recovers_it(
    world: World, smtp: Smtp
) -> None:
    """The recovering run's clock started before recovery read it: the digest must be due
    for that same run, not a second later (time moves on at every reading here)."""
    handler, _ = smtp
    world.at(vn(2026, 11, 21, 7, 0, 5))
    world.sender.plan(world.clock.now())
    due = world.sender.outbox.due(world.clock.now())
    assert due, "nothing is due to claim"
    left = due[0]
    dead = make_sender(world.config, world.app.store, world.clock.now)  # another process's
    assert dead.owner != world.sender.owner
    assert world.sender.outbox.claim(
        left.subscriber, left.period, world.clock.now(), owner=dead.owner
    )
    world.clock.tick = timedelta(seconds=1)
    outcomes = world.run()
    assert (left.subscriber, left.period, "sent") in {
        (o.subscriber, o.period, o.state) for o in outcomes
    }
    assert set(world.states().values()) <= {"sent", "empty"}
    delivered = [m["To"].addresses[0].addr_spec for m in handler.messages]
    assert delivered.count(left.subscriber) == 1


def test_process_killed_before_data_leaves_nothing_unknown(
    tmp_path: Path, smtp: Smtp, launch: Launch, store_url: str | None
) -> None:
    """Claimed, but killed before the message's DATA began (here: a server that never
    greets): nothing left the process, so the next run sends those digests, once."""
    handler, controller = smtp
    copy_seeds(tmp_path / "seeds")
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(silent.accept()[0]), daemon=True).start()
    where = store_at(tmp_path, store_url)
    write_config(tmp_path, silent.getsockname()[1], store=store_url)
    subprocess.run([*DIGEST, "build"], cwd=tmp_path, check=True, capture_output=True)
    everyone = ["all@example.org", "lan@example.org", "weekly@example.org"]
    subscribed_days_ago(tmp_path, 3, everyone, where=where)
    sending = launch([*DIGEST, "send", "--period", "daily"], cwd=tmp_path, stderr=subprocess.PIPE)
    rows = wait_for_rows(where, "select subscriber from outbox where state = 'sending'")
    assert rows, "the sender never claimed a period"
    sending.send_signal(signal.SIGKILL)
    sending.wait()
    assert not outbox_rows(where, "select 1 from outbox where message_id is not null")
    silent.close()
    write_config(tmp_path, controller.port, store=store_url)
    again = subprocess.run(
        [*DIGEST, "send", "--period", "daily"], cwd=tmp_path, capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr
    states = dict(outbox_rows(where, "select subscriber, state from outbox"))
    assert "unknown" not in states.values() and "sending" not in states.values()
    delivered = [m["To"].addresses[0].addr_spec for m in handler.messages]
    assert len(delivered) == len(set(delivered))
    assert {who for (who,) in rows} <= set(delivered)


def test_a_send_killed_mid_run_loses_no_digest_that_never_left(
    tmp_path: Path, smtp: Smtp, launch: Launch, store_url: str | None
) -> None:
    """SIGKILL while some digests are in DATA and others only claimed: the next run sends
    the claimed ones, marks `unknown` only those whose DATA began, and exits non-zero; in the
    end every subscriber has the period exactly once (Message-IDs counted at the server)."""
    handler, controller = smtp
    handler.delay = 0.3  # in DATA (a slow server, so the kill finds digests there)
    handler.rcpt_delay = 0.2  # claimed, before DATA
    emails = [f"r{i}@example.org" for i in range(40)]
    copy_seeds(tmp_path / "seeds")
    where = store_at(tmp_path, store_url)
    write_config(tmp_path, controller.port, daily_subscribers(len(emails)), store=store_url)
    subprocess.run([*DIGEST, "build"], cwd=tmp_path, check=True, capture_output=True)
    everyone = ["all@example.org", "lan@example.org", *emails]
    subscribed_days_ago(tmp_path, 1, [*everyone, "weekly@example.org"], where=where)
    sending = launch([*DIGEST, "send", "--period", "daily"], cwd=tmp_path)
    both = (
        "select count(distinct message_id is null) from outbox where state = 'sending'"
        " and (select count(*) from outbox where state = 'sent') >= 4"
    )
    wait_until(lambda: outbox_rows(where, both) == [(2,)], timeout=30, every=0.005)
    sending.send_signal(signal.SIGKILL)
    sending.wait()
    claimed = "select subscriber, message_id from outbox where state = 'sending'"
    in_data = dict(outbox_rows(where, claimed + " and message_id is not null"))
    before_data = {w for w, _ in outbox_rows(where, claimed + " and message_id is null")}
    assert in_data and before_data, "the kill did not find digests both in and before DATA"
    # The server is done with what it had received: it has seen every connection of the
    # killed process close (aiosmtpd then cancels what its handler was doing for it), so
    # nothing more of that process can arrive.
    assert wait_until(lambda: handler.connections == 0), "the server kept a connection open"
    handler.delay = handler.rcpt_delay = 0
    again = subprocess.run(
        [*DIGEST, "send", "--period", "daily"], cwd=tmp_path, capture_output=True, text=True
    )
    assert again.returncode == 1, again.stdout  # some digests are unknown: the operator looks
    states = dict(
        outbox_rows(where, "select subscriber, state from outbox where period like 'daily:%'")
    )
    assert {w for w, s in states.items() if s == "unknown"} == set(in_data)
    assert {states[w] for w in before_data} <= {"sent", "empty"}
    assert "sending" not in states.values()
    received = Counter(m["To"].addresses[0].addr_spec for m in handler.messages)
    assert max(received.values()) == 1  # nobody got a period twice
    # Nobody silently lost: each got the period, or is `unknown` because its DATA began (the
    # server may have it, or not when the kill cut the transfer).
    sent = {w for w, s in states.items() if s == "sent"}
    assert sent <= set(received) <= sent | set(in_data)
    assert set(everyone) == sent | set(in_data) | {w for w, s in states.items() if s == "empty"}
