"""`digest run`: one asyncio process that serves, builds, watches and schedules.

Order at start: take the writer lock, start serving what is already published (a restart
never leaves readers without feeds), build once, then watch. Builds run in a worker thread so
requests are answered while one runs, and never two at once. SIGINT/SIGTERM stop the watcher,
let a build in progress finish its writes, stop the server, and exit 0.

With `[server] workers` above 1 the daemon binds that many sockets to the port (SO_REUSEPORT:
the kernel spreads connections evenly, where one shared socket leaves nearly all of them to
whichever process accepts first) and starts a serving process for each socket but its own
(`digest serve-worker`). The workers answer files and the readers' pages (sign-up, manage,
unsubscribe) like the daemon, read /healthz from the snapshot the daemon writes next to the
store, and exit when the daemon does, or when it dies.

On a shared store (PostgreSQL) several daemons run at once, each with its own public folder:
the one holding the ingest lease builds from the seeds folder (which every node reaches), and
every node publishes its own public folder from the store's change log, looking for new
changes twice a second (`follow`). A node that finds the lease free takes it and builds the
whole folder at once: captures that arrived while nobody held it are not missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn

from .app import Digest
from .config import Config, Server
from .errors import ServeError
from .ingest import BuildReport
from .model import rfc3339
from .process import run_loop, stop_on_signals
from .server import Forms, GuardedHttp, Pages, PublicApp
from .site import PublishReport
from .watch import watch

log = logging.getLogger("digest.daemon")

_FOLLOW = 0.5  # seconds between looks at the change log and the lease (shared stores)

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
    snapshot: Path | None = None  # where serving workers read the state from

    _SAVED = ("building", "last_ok", "last_error", "last_seconds", "entries", "problems")

    def save(self) -> None:
        """Write the state for the serving workers, whole (renamed into place)."""
        if self.snapshot is None:
            return
        state = {k: getattr(self, k) for k in self._SAVED}
        state["started"] = self.started.isoformat()
        state["last_build"] = self.last_build.isoformat() if self.last_build else None
        partial = self.snapshot.with_name(self.snapshot.name + ".tmp")
        partial.write_text(json.dumps(state), encoding="utf-8")
        partial.replace(self.snapshot)

    @classmethod
    def load(cls, snapshot: Path, extra: Callable[[], dict[str, Any]] | None) -> Health:
        """The daemon's last saved state; "starting" until it has saved one."""
        try:
            state = json.loads(snapshot.read_text(encoding="utf-8"))
            last_build = state["last_build"]
            return cls(
                started=datetime.fromisoformat(state["started"]),
                last_build=datetime.fromisoformat(last_build) if last_build else None,
                extra=extra,
                **{k: state[k] for k in cls._SAVED},
            )
        except (OSError, ValueError, KeyError, TypeError):
            return cls(started=datetime.now(UTC), extra=extra)

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
        forms: Sequence[Forms] = (),
    ) -> None:
        self.app = app
        self.services = services
        # The snapshot is for serving workers alone: without them nothing is written.
        snapshot = health_snapshot(app.config) if app.config.server.workers > 1 else None
        self.health = Health(started=datetime.now(UTC), extra=health_extra, snapshot=snapshot)
        self.forms = forms
        self._building = asyncio.Lock()
        self._verified = False
        # This node holds the ingest lease (a SQLite store's one daemon always does).
        self._leading = not app.store.shared
        self._published = -1  # the change log's head the last publish covered

    def _build(self, changed: frozenset[str] | None) -> tuple[BuildReport, PublishReport]:
        # The first publish checks every published file is on disk (the folder may have been
        # cleaned while the daemon was down); later ones look only at what changed.
        leading = self.app.store.nodes.take_lease()
        if leading != self._leading:
            self._leading = leading
            log.info(
                "this node %s the seeds folder",
                "now ingests" if leading else "no longer ingests",
                extra={"event": "lease", "holder": leading},
            )
            changed = None  # a new holder reads the whole folder
        if leading:
            built = self.app.build(only=changed)
        else:
            built = BuildReport(entries_total=self.app.store.entries.count_entries())
        published = self.app.publish(verify=not self._verified)
        self._verified = True
        self._published = published.upto
        return built, published  # the daemon logs each build once

    async def follow(self, stop: asyncio.Event) -> None:
        """Shared stores: publish what other nodes ingested, and take the lease when it is
        free. Every look is one small query; a failed one is retried at the next."""
        index, nodes = self.app.store.index, self.app.store.nodes
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), _FOLLOW)
            if stop.is_set():
                return
            try:
                head = await asyncio.to_thread(index.head)
                lease = await asyncio.to_thread(nodes.take_lease)
            except Exception as exc:  # the database is away: keep serving, look again
                log.warning("cannot reach the store: %s", exc, extra={"event": "follow"})
                continue
            if head != self._published or lease != self._leading:
                await self.rebuild()

    async def rebuild(self, changed: frozenset[str] | None = None) -> None:
        """Build and publish: only the `changed` seed names (as the watcher saw them), or the
        whole folder."""
        async with self._building:
            self.health.building = True
            self.health.save()
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
                self.health.problems = built.problems_total
                log.info(
                    "build: %d parsed, %d new, %d updated, %d total, %d problems; "
                    "published %d written, %d removed",
                    built.files_parsed,
                    built.entries_new,
                    built.entries_updated,
                    built.entries_total,
                    built.problems_total,
                    published.written,
                    published.removed,
                    extra={
                        "event": "build",
                        "ok": True,
                        "files_parsed": built.files_parsed,
                        "entries_new": built.entries_new,
                        "entries_updated": built.entries_updated,
                        "entries_total": built.entries_total,
                        "problems": built.problems_total,
                        "written": published.written,
                        "seconds": round(time.perf_counter() - started, 3),
                    },
                )
            finally:
                self.health.building = False
                self.health.last_build = datetime.now(UTC)
                self.health.last_seconds = time.perf_counter() - started
                self.health.save()

    async def run(self) -> int:
        config = self.app.config
        stop = stop_on_signals()
        try:
            sock, *others = listen(config)
        except OSError as exc:
            log.error("%s", exc, extra={"event": "serve", "ok": False})
            return 1
        self.health.save()  # workers must not report a previous run's state
        server = _server(
            PublicApp(config.paths.public, self.health.report, self.forms, pages=pages(config)),
            config.server,
        )
        serving = asyncio.create_task(server.serve(sockets=[sock]), name="http")
        while not server.started and not serving.done():
            await asyncio.sleep(0.01)
        if serving.done():
            serving.result()
            return 1
        workers = Workers(config, others)
        await workers.start()
        port = sock.getsockname()[1]
        log.info(
            "serving %s on http://%s:%d/ (%d processes)",
            config.paths.public,
            config.server.host,
            port,
            config.server.workers,
            extra={"event": "serve", "host": config.server.host, "port": port},
        )
        # Watch before the first build: a capture arriving while it runs is then seen (its
        # build waits for this one). watchfiles registers its watches when the watch task
        # first runs, before its first wait; yielding once lets it, so the build's own scan
        # and the watches leave no gap and one build at start is enough.
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
        for _ in range(2):  # the task's first step, then the watches' registration
            await asyncio.sleep(0)
        await self.rebuild()
        tasks = [watching, *(asyncio.create_task(service(stop)) for service in self.services)]
        if self.app.store.shared:
            tasks.append(asyncio.create_task(self.follow(stop), name="follow"))
        sd_notify("READY=1")
        await stop.wait()
        sd_notify("STOPPING=1")
        log.info("stopping", extra={"event": "stop"})
        await asyncio.gather(*tasks, return_exceptions=True)  # a build in progress finishes
        async with self._building:
            await workers.stop()
            server.should_exit = True
            await serving
        return 0


def pages(config: Config) -> Pages:
    return Pages(config.paths.templates, config.site)


def health_snapshot(config: Config) -> Path:
    return config.paths.store.parent / "health.json"


def listen(config: Config) -> list[socket.socket]:
    """One listening socket per serving process, all on the configured port."""
    host, port = config.server.host, config.server.port
    count = config.server.workers
    sockets: list[socket.socket] = []
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = info[0]
        for _ in range(count):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if count > 1:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(address)
            address = sock.getsockname()  # port 0 (any free port): the others take the same
            sock.listen(2048)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise ServeError(
            f"cannot serve on {host}:{port}: {exc.strerror or exc}; stop what uses the port "
            f"or set [server] port in {config.source}"
        ) from exc
    return sockets


def _server(app: PublicApp, settings: Server) -> _Server:
    guarded = type(
        "Http",
        (GuardedHttp,),
        {
            "header_timeout": float(settings.header_timeout),
            "max_header_bytes": settings.max_header_bytes,
        },
    )
    return _Server(
        uvicorn.Config(
            app,
            http=guarded,
            timeout_keep_alive=settings.keepalive_timeout,
            lifespan="off",
            access_log=False,
            log_config=None,
            server_header=False,
        )
    )


class Workers:
    """The extra serving processes of `[server] workers`; one that dies is started again."""

    def __init__(self, config: Config, sockets: list[socket.socket]) -> None:
        self.command = config.command("serve-worker", "--parent", str(os.getpid()))
        self.sockets = sockets
        self.tasks: list[asyncio.Task[None]] = []
        self.processes: dict[int, asyncio.subprocess.Process] = {}
        self.stopping = False

    async def start(self) -> None:
        self.tasks = [asyncio.create_task(self._keep(s.fileno())) for s in self.sockets]
        while len(self.processes) < len(self.sockets) and not any(t.done() for t in self.tasks):
            await asyncio.sleep(0.01)

    async def _keep(self, fd: int) -> None:
        """Run a worker on socket `fd`, and another when it dies: connections the kernel
        gives that socket wait in its queue meanwhile."""
        while not self.stopping:
            process = await asyncio.create_subprocess_exec(
                *self.command, "--fd", str(fd), pass_fds=(fd,)
            )
            self.processes[fd] = process
            code = await process.wait()
            if self.stopping:
                return
            log.warning(
                "serving worker %d exited with %s; starting another",
                process.pid,
                code,
                extra={"event": "serve", "ok": False, "pid": process.pid, "code": code},
            )
            await asyncio.sleep(1)

    async def stop(self) -> None:
        self.stopping = True
        for process in self.processes.values():
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
        for process in self.processes.values():
            try:
                await asyncio.wait_for(process.wait(), 5)
            except TimeoutError:
                process.kill()
                await process.wait()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def _serve_worker(
    app: Digest,
    fd: int,
    parent: int,
    health_extra: Callable[[], dict[str, Any]] | None,
    forms: Sequence[Forms],
) -> int:
    snapshot = health_snapshot(app.config)

    def health() -> tuple[int, dict[str, Any]]:
        return Health.load(snapshot, health_extra).report()

    public = PublicApp(app.config.paths.public, health, forms, pages=pages(app.config))
    server = _server(public, app.config.server)
    stop = stop_on_signals()
    serving = asyncio.create_task(server.serve(sockets=[socket.socket(fileno=fd)]))
    # A daemon killed outright cannot stop its workers: they notice it is gone.
    while not stop.is_set() and not serving.done() and os.getppid() == parent:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)
    server.should_exit = True
    await serving
    return 0


def serve_worker(
    app: Digest,
    *,
    fd: int,
    parent: int,
    health_extra: Callable[[], dict[str, Any]] | None = None,
    forms: Sequence[Forms] = (),
) -> int:
    """`digest serve-worker`: one of the daemon's extra serving processes."""
    return run_loop(_serve_worker(app, fd, parent, health_extra, forms))


def run(
    app: Digest,
    services: tuple[Service, ...] = (),
    *,
    health_extra: Callable[[], dict[str, Any]] | None = None,
    forms: Sequence[Forms] = (),
) -> int:
    """The daemon, with `services` (the mail stage) beside its watcher."""
    daemon = Daemon(app, services, health_extra=health_extra, forms=forms)
    return run_loop(daemon.run())
