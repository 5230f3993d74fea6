"""`digest send` end to end, in a child process: what it says is due and comes next, and
SIGTERM stopping it after the digests in flight."""

from __future__ import annotations

import re
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import copy_seeds, store_at

from mail.mailworld import (
    DIGEST,
    Smtp,
    daily_subscribers,
    outbox_rows,
    subscribed_days_ago,
    wait_until,
    write_config,
)

Launch = Callable[..., subprocess.Popen[Any]]
pytestmark = pytest.mark.both_engines


def test_sigterm_stops_digest_send_after_the_digests_in_flight(
    tmp_path: Path, smtp: Smtp, launch: Launch, store_url: str | None
) -> None:
    handler, controller = smtp
    handler.delay = 0.5  # a slow server: the send is still going when SIGTERM comes
    copy_seeds(tmp_path / "seeds")
    emails = [f"r{i}@example.org" for i in range(12)]
    where = store_at(tmp_path, store_url)
    write_config(tmp_path, controller.port, daily_subscribers(len(emails)), store=store_url)
    subprocess.run([*DIGEST, "build"], cwd=tmp_path, check=True, capture_output=True)
    # Subscribed four days ago, the entries an hour later: a digest a day since.
    subscribed_days_ago(tmp_path, 4, ["all@example.org", "lan@example.org", *emails], where=where)
    daily = "select state from outbox where period like 'daily:%'"
    sending = launch(
        [*DIGEST, "send", "--period", "daily"], cwd=tmp_path, stderr=subprocess.PIPE, text=True
    )
    assert wait_until(lambda: handler.messages, every=0.01), "no digest arrived"
    sending.send_signal(signal.SIGTERM)
    _, errors = sending.communicate(timeout=20)
    assert sending.returncode == 0, errors
    assert "stopped with" in errors
    states = [s for (s,) in outbox_rows(where, daily)]
    # What was in flight finished; nothing is left sending or unknown. (A period can be
    # empty, depending on the hour this runs at.)
    assert "pending" in states and set(states) <= {"sent", "pending", "empty"}
    assert states.count("sent") == len(handler.messages)
    again = subprocess.run([*DIGEST, "send"], cwd=tmp_path, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    states = [s for (s,) in outbox_rows(where, daily)]
    assert set(states) == {"sent", "empty"}  # later periods have nothing new
    delivered = [(m["To"].addresses[0].addr_spec, m["Message-ID"]) for m in handler.messages]
    assert len(delivered) == len(set(delivered)) == states.count("sent")


def test_send_and_dry_run_say_what_is_due_and_when_the_next_digest_comes(
    tmp_path: Path, store_url: str | None
) -> None:
    copy_seeds(tmp_path / "seeds")
    write_config(tmp_path, None, store=store_url)
    subprocess.run([*DIGEST, "build"], cwd=tmp_path, check=True, capture_output=True)
    dry = subprocess.run(
        [*DIGEST, "send", "--dry-run"], cwd=tmp_path, capture_output=True, text=True
    )
    lines = dry.stdout.splitlines()
    assert lines[0] == "would send: nothing is due now"
    day = r"\d\d/\d\d/\d{4} 07:00 Vietnam time"
    when = r"\w{3} " + day
    assert re.fullmatch(
        f"next daily digest: {when}, 2 subscribers \\(2 new: it will be their first digest\\)",
        lines[1],
    )
    assert re.fullmatch(f"next weekly digest: Mon {day}, 1 subscriber \\(1 new: .*\\)", lines[2])
    sent = subprocess.run([*DIGEST, "send"], cwd=tmp_path, capture_output=True, text=True)
    assert sent.returncode == 0
    lines = sent.stdout.splitlines()
    assert lines[0] == "digests: none due"
    # Stored now, and still new: nothing was sent to them yet, so the next is their first.
    assert re.fullmatch(
        f"next daily digest: {when}, 2 subscribers \\(2 new: it will be their first digest\\)",
        lines[1],
    )
    listed = subprocess.run(
        [*DIGEST, "subscribers", "list"], cwd=tmp_path, capture_output=True, text=True
    )
    assert listed.stdout.splitlines()[-1] == "subscribers: 3 active"
