"""shards.py: several processes delivering one run, each digest once — a process killed
mid-run leaves its share to the first, a stopped run stops them all after what is in flight,
and the delivery lock leaves a live process's claims alone.

On every engine. A process's share differs between them: on SQLite the subscribers of its
shard, on PostgreSQL whatever it claims first (FOR UPDATE SKIP LOCKED). What a process did
is told by the owner on the rows it claimed, on both; the shard is checked on SQLite.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from raw import polling, rows

from digest.mail import Outcome
from digest.mail.shards import shard
from digest.store.schema import OWNERS
from mail.mailworld import (
    Smtp,
    World,
    assert_each_sent_once,
    delivering_children,
    sharded_world,
    vn,
    wait_until,
    write_config,
)

Launch = Callable[..., subprocess.Popen[Any]]
pytestmark = pytest.mark.both_engines


def owners(world: World, state: str, *, in_data: bool = False) -> dict[str, int]:
    """{subscriber: the owner of their claim} of the rows in `state` (and in DATA)."""
    query = "select subscriber, owner from outbox where state = :state"
    query += " and message_id is not null" if in_data else ""
    return dict(rows(world.where, query, state=state))


def test_two_processes_deliver_each_digest_exactly_once(
    tmp_path: Path, smtp: Smtp, store_url: str | None
) -> None:
    handler, controller = smtp
    world = sharded_world(tmp_path, controller.port, 250, store=store_url)
    world.at(vn(2026, 11, 21, 7, 0, 5))
    assert_each_sent_once(world, handler, world.run(), 252)
    # Four connections from each of the two processes.
    assert len(handler.sessions) == 8
    assert len(set(owners(world, "sent").values())) == 2
    assert delivering_children() == []


def test_a_delivering_process_killed_mid_run_leaves_its_share_to_the_first(
    tmp_path: Path, smtp: Smtp, caplog: pytest.LogCaptureFixture, store_url: str | None
) -> None:
    handler, controller = smtp
    handler.delay = 0.02  # a slow server: a run long enough to kill the other process in it
    world = sharded_world(tmp_path, controller.port, 250, store=store_url)
    world.at(vn(2026, 11, 21, 7, 0, 5))
    killed: list[int] = []
    ours = world.sender.owner
    of_theirs = "select subscriber from outbox where owner != :ours and state = :state"

    def kill_after_its_first_messages() -> None:
        """Once the second process sent its first messages, the server holds every message
        at the end of DATA; the process is killed with one of its own held there."""
        children = wait_until(delivering_children, timeout=30, every=0.01)
        with polling(world.where) as query:

            def sent_some() -> bool:
                return len(query(of_theirs, ours=ours, state="sent")) >= 10

            def one_held() -> bool:
                in_data = query(
                    f"{of_theirs} and message_id is not null", ours=ours, state="sending"
                )
                arrived = {m["To"].addresses[0].addr_spec for m in list(handler.messages)}
                return bool({who for (who,) in in_data} - arrived)

            started = wait_until(sent_some, timeout=30, every=0.01) if children else False
            if started:
                handler.gate.clear()
                time.sleep(0.05)  # a message past the gate when it closed has arrived
                try:
                    if wait_until(one_held, timeout=30, every=0.01):
                        os.kill(children[0], signal.SIGKILL)
                        killed.append(children[0])
                finally:
                    handler.gate.set()

    killer = threading.Thread(target=kill_after_its_first_messages)
    killer.start()
    with caplog.at_level(logging.INFO, logger="digest.mail"):
        world.run()
    killer.join()
    assert killed, "the second delivering process was never seen"
    assert f"delivering process {killed[0]} (shard 1 of 2) exited with -9" in caplog.text
    states = world.states()
    daily = {who: state for (who, period), state in states.items() if period.startswith("daily")}
    assert len(daily) == 252 and "sending" not in daily.values()
    # What the killed process had handed to the server is unknown, never sent again; the
    # rest of its share was delivered by the first process.
    unknown = {who for who, state in daily.items() if state == "unknown"}
    assert 1 <= len(unknown) <= world.config.smtp.connections
    (theirs,) = set(owners(world, "unknown").values())  # the killed process's claims alone
    assert theirs != ours
    if store_url is None:  # SQLite: its share is a shard
        assert all(shard(who, 2) == 1 for who in unknown)
    assert set(daily.values()) == {"sent", "unknown"}
    delivered = [m["To"].addresses[0].addr_spec for m in handler.messages]
    assert len(delivered) == len(set(delivered))
    assert {who for who, state in daily.items() if state == "sent"} <= set(delivered)


def test_a_stopped_run_finishes_what_is_in_flight_in_every_process(
    tmp_path: Path, smtp: Smtp, caplog: pytest.LogCaptureFixture, store_url: str | None
) -> None:
    handler, controller = smtp
    handler.delay = 0.02  # a slow server: the run is still going when it is stopped
    world = sharded_world(tmp_path, controller.port, 250, store=store_url)
    world.at(vn(2026, 11, 21, 7, 0, 5))
    ours = world.sender.owner
    sent_by = "select owner from outbox where state = 'sent'"

    def shares(owners: list[tuple[Any, ...]]) -> tuple[int, int]:
        """Digests sent (by this process, by the other), from the owners of the sent rows."""
        mine = sum(o == ours for (o,) in owners)
        return mine, len(owners) - mine

    async def stopped_part_way() -> list[Outcome]:
        stop = asyncio.Event()  # what SIGTERM sets in the daemon or in `digest send`

        async def stop_once_both_deliver() -> None:
            # Polled in the run's loop, on one connection: a look holds the loop a moment.
            with polling(world.where) as query:
                while min(shares(query(sent_by))) < 10:  # cancelled if the run ends first
                    await asyncio.sleep(0.01)
            stop.set()

        stopper = asyncio.create_task(stop_once_both_deliver())
        outcomes = await world.sender.run(recover=True, stop=stop)
        stopper.cancel()
        return outcomes

    with caplog.at_level(logging.INFO, logger="digest.mail"):
        outcomes = asyncio.run(stopped_part_way())
    daily = {who: s for (who, period), s in world.states().items() if period.startswith("daily")}
    # In flight when it stopped: finished, in both processes; nothing left in between (on
    # PostgreSQL, what a process had claimed and not begun is given back).
    assert set(daily.values()) == {"sent", "pending"}
    assert min(shares(rows(world.where, sent_by))) >= 10
    if store_url is None:  # SQLite: each process left part of its shard
        for k in (0, 1):
            assert "pending" in {s for who, s in daily.items() if shard(who, 2) == k}
    assert len(outcomes) == sum(s == "sent" for s in daily.values())
    assert f"stopped with {len(outcomes)} of 252 digests delivered" in caplog.text
    assert delivering_children() == []
    # The next run sends the rest, each digest once in all.
    world.run()
    assert {s for (_, period), s in world.states().items() if period.startswith("daily")} == {
        "sent"
    }
    delivered = [m["To"].addresses[0].addr_spec for m in handler.messages]
    assert len(delivered) == len(set(delivered)) == 252


def test_rows_a_live_process_is_sending_are_left_to_it(
    tmp_path: Path, smtp: Smtp, launch: Launch, store_url: str | None
) -> None:
    handler, controller = smtp
    world = World(tmp_path, controller.port, store=store_url)
    world.at(vn(2026, 11, 21, 7, 0, 5))
    world.sender.plan(world.clock.now())
    # Another process delivers to a server that accepts and never greets: it hangs, sending.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    write_config(tmp_path, silent.getsockname()[1], store=store_url)
    at = world.clock.now().isoformat()
    other = launch(
        world.config.command(
            "send-shard", "--shard", "0", "--of", "1", "--at", at, "--owner", "4242"
        ),
        stderr=subprocess.DEVNULL,
    )
    try:
        daily = {k for k in world.states() if k[1].startswith("daily:")}

        def sending_now() -> set[tuple[str, str]]:
            return {k for k, state in world.states().items() if state == "sending"}

        wait_until(lambda: sending_now() == daily)  # one claim per connection
        sending = sending_now()  # it hangs there: what it claimed stays claimed
        assert sending == daily, "the other process never claimed both periods"
        # A run that would recover finds the claims alive: it leaves them alone.
        world.run()
        assert {k for k, state in world.states().items() if state == "sending"} == sending
    finally:
        other.kill()
        other.wait()
        silent.close()
    if store_url is not None:
        # On PostgreSQL it is dead once the server has seen its session end (at once, for a
        # local process): its presence lock goes then.
        live = "select 1 from pg_locks where locktype = 'advisory' and classid = :space"
        assert wait_until(lambda: not rows(store_url, live, space=OWNERS))
    # Once that process is dead, its claims are settled: it never reached DATA, so they are
    # sent, once.
    world.run()
    assert all(world.states()[k] == "sent" for k in sending)
    delivered = [m["To"].addresses[0].addr_spec for m in handler.messages]
    assert sorted(delivered) == sorted({w for w, _ in sending})
