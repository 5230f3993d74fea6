"""run_loop and stop_on_signals in a real child process: SIGTERM and SIGINT end it cleanly;
helper processes run below their parent."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import Talker, base_config, toml

from digest.config import load
from digest.process import (
    HELPER_NICENESS,
    Helpers,
    collect_less,
    helper_config,
    helpers,
    run_loop,
    stop_on_signals,
)

Launch = Callable[..., subprocess.Popen[Any]]

# Waits on the stop event `rounds` times (clearing it in between), then returns `code`.
CHILD = """
import asyncio, sys
from digest.process import HELPER_NICENESS, collect_less, helpers, run_loop, stop_on_signals

async def main(rounds: int, code: int) -> int:
    stop = stop_on_signals()
    loop = type(asyncio.get_running_loop())
    print(loop.__module__.split(".")[0], flush=True)
    for _ in range(rounds):
        await stop.wait()
        stop.clear()
        print("stopping", flush=True)
    await asyncio.sleep(0.05)  # what is in flight finishes
    print("done", flush=True)
    return code

sys.exit(run_loop(main(int(sys.argv[1]), int(sys.argv[2]))))
"""


def looping(launch: Launch, *, rounds: int, code: int) -> Talker:
    return Talker(launch, CHILD, str(rounds), str(code))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_sets_the_stop_event_and_main_returns_its_code(
    launch: Launch, sig: signal.Signals
) -> None:
    child = looping(launch, rounds=1, code=7)
    assert child.line() == "uvloop"  # installed with uvicorn[standard]: run_loop uses it
    started = time.monotonic()
    child.signal(sig)
    assert child.line() == "stopping"
    assert child.line() == "done"
    assert child.process.wait(timeout=10) == 7  # main's return, not death by the signal
    assert time.monotonic() - started < 5
    assert child.process.stderr is not None
    assert b"Traceback" not in child.process.stderr.read()  # no KeyboardInterrupt


def test_the_handlers_stay_for_the_whole_run(launch: Launch) -> None:
    """A second signal while stopping does not kill the process: it sets the event again."""
    child = looping(launch, rounds=2, code=0)
    assert child.line() == "uvloop"
    child.signal(signal.SIGTERM)
    assert child.line() == "stopping"
    assert child.process.poll() is None
    child.signal(signal.SIGINT)
    assert child.line() == "stopping"
    assert child.line() == "done"
    assert child.process.wait(timeout=10) == 0


def test_without_a_signal_the_process_keeps_running(launch: Launch) -> None:
    child = looping(launch, rounds=1, code=0)
    assert child.line() == "uvloop"
    with pytest.raises(subprocess.TimeoutExpired):
        child.process.wait(timeout=0.3)
    child.signal(signal.SIGTERM)
    assert child.process.wait(timeout=10) == 0


def test_stop_on_signals_needs_a_running_loop() -> None:
    with pytest.raises(RuntimeError, match="no running event loop"):
        stop_on_signals()


def test_run_loop_returns_what_main_returns_and_raises_what_it_raises() -> None:
    async def answer() -> int:
        await asyncio.sleep(0)
        return 3

    async def fail() -> int:
        await asyncio.sleep(0)
        raise ValueError("hỏng")

    assert run_loop(answer()) == 3
    with pytest.raises(ValueError, match="hỏng"):
        run_loop(fail())


def test_helpers_run_below_the_process_that_hands_out_their_work() -> None:
    """The parent's serial part (storing batches in order, planning) never waits for a core
    the helpers hold; the helpers take what it leaves."""
    pool = helpers(1, collect_less)
    try:
        assert pool.submit(os.nice, 0).result(timeout=60) == min(os.nice(0) + HELPER_NICENESS, 19)
    finally:
        pool.shutdown()


def test_a_builds_helpers_start_once_serve_every_stage_and_stop_when_closed(
    tmp_path: Path,
) -> None:
    """The ingest and the publish after it share one set of helpers: started at the first
    task, the same processes for every task after it, each holding the build's config, and
    gone once closed (the next task starts new ones)."""
    path = tmp_path / "config.toml"
    path.write_text(base_config(toml("build", workers=2)), encoding="utf-8")
    config = load(path)
    shared = Helpers(config)
    try:
        ingest = {shared.submit(os.getpid).result(timeout=60) for _ in range(12)}
        assert shared.submit(helper_config).result(timeout=60) == config
        publish = {shared.submit(os.getpid).result(timeout=60) for _ in range(12)}
        assert os.getpid() not in ingest | publish
        assert len(ingest | publish) <= 2
        shared.close()
        later = shared.submit(os.getpid).result(timeout=60)
        assert later not in ingest | publish
    finally:
        shared.close()
