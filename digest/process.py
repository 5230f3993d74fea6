"""What every long-running digest process shares: stopping on SIGINT or SIGTERM, its event
loop (uvloop where installed), and the processes that share a large build's work."""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import signal
from collections.abc import Callable, Coroutine
from concurrent.futures import Future, ProcessPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from .config import Config

R = TypeVar("R")

# How much lower a helper's priority is than its parent's. The parent hands out the work and
# does the part that cannot be shared (storing a build's batches in order, planning a
# publish): with as many helpers as cores it shared a core with them, and they then waited
# for the batches it had not handed out yet. Yielding to it, they still take every core it
# leaves idle (10,000-capture cold ingest: 8-12% less wall time in two pairs run in turn).
HELPER_NICENESS = 5


class Helpers:
    """The helper processes of one build: the ingest reads and tags on them, then the publish
    renders and writes on the same ones. Starting a helper imports the program (0.4-0.6 s of
    CPU), which a second set for the publish paid again. They start when a stage first has
    work large enough to share, and stop with `close`: when the publish after the ingest
    ends, or when something fails (the next stage that needs helpers starts new ones)."""

    def __init__(self, config: Config) -> None:
        self.count = config.build.workers
        self._config = config
        self._pool: ProcessPoolExecutor | None = None

    def submit(self, fn: Callable[..., R], /, *args: Any) -> Future[R]:
        """Run `fn(*args)` on a helper, starting them if need be; raises if they cannot
        start. `fn` reads the build's config with `helper_config()`."""
        if self._pool is None:
            self._pool = helpers(self.count, _keep_config, self._config)
        return self._pool.submit(fn, *args)

    def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.shutdown(wait=True, cancel_futures=True)


_config: Config | None = None  # in a helper process: the build's config


def _keep_config(config: Config) -> None:
    global _config
    _config = config


def helper_config() -> Config:
    """In a helper process: the config of the build it works for."""
    assert _config is not None, "started by Helpers"
    return _config


def helpers(count: int, start: Callable[..., None], *args: Any) -> ProcessPoolExecutor:
    """`count` processes that take a share of a large build (tagging, rendering), each made
    ready by `start(*args)`, at a lower priority than their parent. Spawned, not forked: the
    daemon has threads, and a fork copies their locks mid-use. Their log lines go to stderr,
    as the daemon's own do."""
    return ProcessPoolExecutor(
        count,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_ready,
        initargs=(start, *args),
    )


def _ready(start: Callable[..., None], *args: Any) -> None:
    os.nice(HELPER_NICENESS)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    start(*args)
    collect_less()


def collect_less() -> None:
    """Fewer cyclic garbage collections. A build allocates millions of short-lived objects
    (parsed items, rows, template contexts) and few cycles; at Python's default threshold
    (700) the collector ran every few hundred of them and took ~5% of a cold build's CPU.
    What is loaded by then (modules, templates) is frozen out of every later collection."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def stop_on_signals() -> asyncio.Event:
    """An event that SIGINT or SIGTERM sets: the process finishes what is in flight and
    stops; called from inside the running loop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def run_loop(main: Coroutine[Any, Any, int]) -> int:
    """Run `main` to completion on uvloop (asyncio's own loop where uvloop is missing)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] installs it on Linux
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
