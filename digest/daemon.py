"""`digest run`: one asyncio process that serves, builds, watches and schedules.

Order at start: take the writer lock, start serving what is already published (a restart
never leaves readers without feeds), build once, then watch. Builds run in a worker thread so
requests are answered while one runs, and never two at once. SIGINT/SIGTERM stop the watcher,
let a build in progress finish its writes, stop the server, and exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import uvicorn

from .app import BuildReport, Digest
from .model import rfc3339
from .server import PublicApp
from .site import PublishReport
from .watch import watch

log = logging.getLogger("digest.daemon")

# A service runs beside the watcher and the server until `stop` is set: the digest scheduler
# of the mail stage plugs in here.
Service = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


@dataclass
class Health:
    """What /healthz reports; updated after every build."""

    started: datetime
    building: bool = False
    last_build: datetime | None = None
    last_ok: bool | None = None
    last_error: str | None = None
    last_seconds: float = 0.0
    entries: int = 0
    problems: int = 0
    extra: Callable[[], dict[str, Any]] | None = None  # e.g. digests pending/failed/unknown

    def report(self) -> tuple[int, dict[str, Any]]:
        body: dict[str, Any] = {
            "status": "ok" if self.last_ok else ("starting" if self.last_ok is None else "failing"),
            "started": rfc3339(self.started),
            "building": self.building,
            "last_build": {
                "time": rfc3339(self.last_build) if self.last_build else None,
                "result": {True: "ok", False: "failed", None: None}[self.last_ok],
                "error": self.last_error,
                "seconds": round(self.last_seconds, 3),
            },
            "entries": self.entries,
            "problems": self.problems,
        }
        if self.extra is not None:
            extra = self.extra()
            body.update(extra)
            if self.last_ok and extra.get("degraded"):
                body["status"] = "degraded"
        return (200 if self.last_ok else 503), body


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: it would re-raise SIGTERM after shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def sd_notify(state: str) -> None:
    """Tell systemd (Type=notify) about readiness and stopping; nothing without systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(state.encode(), address)


class Daemon:
    def __init__(
        self,
        app: Digest,
        services: tuple[Service, ...] = (),
        *,
        health_extra: Callable[[], dict[str, Any]] | None = None,
        unsubscribe: Callable[[str, str], bool] | None = None,
    ) -> None:
        self.app = app
        self.services = services
        self.health = Health(started=datetime.now(UTC), extra=health_extra)
        self.unsubscribe = unsubscribe
        self._building = asyncio.Lock()
        self._verified = False

    def _build(self, changed: frozenset[str] | None) -> tuple[BuildReport, PublishReport]:
        # The first publish checks every published file is on disk (the folder may have been
        # cleaned while the daemon was down); later ones look only at what changed.
        built = self.app.build(only=changed)
        published = self.app.publish(verify=not self._verified)
        self._verified = True
        return built, published  # the daemon logs each build once

    async def rebuild(self, changed: frozenset[str] | None = None) -> None:
        """Build and publish: only the `changed` seed names (as the watcher saw them), or the
        whole folder."""
        async with self._building:
            self.health.building = True
            started = time.perf_counter()
            try:
                built, published = await asyncio.to_thread(self._build, changed)
            except Exception as exc:  # the daemon keeps serving what was published
                self.health.last_ok = False
                self.health.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("build failed: %s", exc, extra={"event": "build", "ok": False})
            else:
                for problem in built.problems:
                    log.warning(
                        "%s",
                        problem,
                        extra={"event": "problem", "file": problem.file, "line": problem.line},
                    )
                self.health.last_ok = True
                self.health.last_error = None
                self.health.entries = built.entries_total
                self.health.problems = len(self.app.problems())
                log.info(
                    "build: %d parsed, %d new, %d updated, %d total, %d problems; "
                    "published %d written, %d removed",
                    built.files_parsed,
                    built.entries_new,
                    built.entries_updated,
                    built.entries_total,
                    len(built.problems),
                    published.written,
                    published.removed,
                    extra={
                        "event": "build",
                        "ok": True,
                        "files_parsed": built.files_parsed,
                        "entries_new": built.entries_new,
                        "entries_updated": built.entries_updated,
                        "entries_total": built.entries_total,
                        "problems": len(built.problems),
                        "written": published.written,
                        "seconds": round(time.perf_counter() - started, 3),
                    },
                )
            finally:
                self.health.building = False
                self.health.last_build = datetime.now(UTC)
                self.health.last_seconds = time.perf_counter() - started

    async def run(self) -> int:
        config = self.app.config
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        server = _Server(
            uvicorn.Config(
                PublicApp(config.paths.public, self.health.report, self.unsubscribe),
                host=config.server.host,
                port=config.server.port,
                lifespan="off",
                access_log=False,
                log_config=None,
                server_header=False,
            )
        )
        serving = asyncio.create_task(server.serve(), name="http")
        while not server.started and not serving.done():
            await asyncio.sleep(0.01)
        if serving.done():  # could not bind: the port is taken or not allowed
            serving.result()
            return 1
        log.info(
            "serving %s on http://%s:%d/",
            config.paths.public,
            config.server.host,
            config.server.port,
            extra={"event": "serve", "host": config.server.host, "port": config.server.port},
        )
        # Watch before the first build: a capture arriving while it runs is then seen (its
        # build waits for this one). The watcher's thread starts a moment later, so one more
        # (cheap, no-change) build afterwards covers a file that landed in between.
        watching = asyncio.create_task(
            watch(
                config.paths.seeds,
                self.rebuild,
                stop,
                poll=config.watch.poll,
                debounce_ms=config.watch.debounce_ms,
                settle_ms=config.watch.settle_ms,
            ),
            name="watch",
        )
        await asyncio.sleep(0)
        await self.rebuild()
        await self.rebuild()
        tasks = [watching, *(asyncio.create_task(service(stop)) for service in self.services)]
        sd_notify("READY=1")
        await stop.wait()
        sd_notify("STOPPING=1")
        log.info("stopping", extra={"event": "stop"})
        await asyncio.gather(*tasks, return_exceptions=True)  # a build in progress finishes
        async with self._building:
            server.should_exit = True
            await serving
        return 0


def run(app: Digest) -> int:
    """The daemon with the digest sender as its service."""
    sender = app.sender()
    daemon = Daemon(
        app, (sender.service,), health_extra=sender.health, unsubscribe=sender.unsubscribe
    )
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] installs it on Linux
        return asyncio.run(daemon.run())
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(daemon.run())
