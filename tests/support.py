"""What tests share: a project folder of a test's own (config, seeds, store), the real daemon
in a child process, and small helpers. The fixtures that hand them out are in conftest.py."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from digest.merge import entry_id, merge
from digest.model import Entry, Item, Location

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
# The five seed captures, the tests' own copies: a user's captures in seeds/ never change a test.
SEEDS = DATA / "seeds"
TEMPLATES = ROOT / "templates"


def copy_seeds(folder: Path) -> None:
    """The five seed captures into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in sorted(SEEDS.glob("*.txt")):
        shutil.copy2(f, folder / f.name)


def toml(section: str, **keys: object) -> str:
    """One TOML table of simple values (strings, numbers, booleans, lists of strings);
    `toml("[subscribers]", ...)` is one element of an array of tables."""
    lines = [f"[{section}]"]
    for key, value in keys.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int | float):
            text = str(value)
        elif isinstance(value, list):
            text = "[" + ", ".join(json.dumps(v, ensure_ascii=False) for v in value) + "]"
        else:
            text = json.dumps(str(value), ensure_ascii=False)
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


def store_at(root: Path, url: str | None) -> Path | str:
    """Where the store of the project in `root` is, as tests/raw.py and open_store take it:
    its PostgreSQL database's `url`, or (None) its SQLite file."""
    return url or root / "var" / "digest.sqlite"


@dataclass
class Project:
    root: Path
    url: str | None = None  # its store's PostgreSQL database; None: its SQLite file

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def seeds(self) -> Path:
        return self.root / "seeds"

    @property
    def store(self) -> Path:
        """Its SQLite file (on PostgreSQL, this node's locks and health snapshot sit by it)."""
        return self.root / "var" / "digest.sqlite"

    @property
    def where(self) -> Path | str:
        """Its store, on either engine, as tests/raw.py and open_store take it."""
        return store_at(self.root, self.url)

    def write_config(self, extra: str = "") -> None:
        """Its config: base_config with `extra`, on its store."""
        self.config.write_text(base_config(extra, store=self.url), encoding="utf-8")

    @property
    def public(self) -> Path:
        return self.root / "public"

    def write_seed(self, name: str, text: str | bytes) -> Path:
        path = self.seeds / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, str):
            path.write_text(text, encoding="utf-8")
        else:
            path.write_bytes(text)
        return path

    def digest(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the real `digest` command in a child process."""
        result = subprocess.run(
            [sys.executable, "-m", "digest", "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            cwd=self.root,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"digest {args} exited {result.returncode}:\n{result.stderr}")
        return result

    def entries(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = json.loads(self.digest("entries", "--json").stdout)
        return result


def base_config(extra: str = "", *, store: str | None = None) -> str:
    """A config of a test's own: its folders, the repository's templates, the shipped
    taxonomy, every other key at its default, and `extra` (whole TOML tables); its store
    the PostgreSQL database at `store`, or (None) the SQLite file in its folder."""
    return (
        "[paths]\n"
        'seeds = "seeds"\n'
        'store = "var/digest.sqlite"\n'
        'public = "public"\n'
        f'templates = "{TEMPLATES.as_posix()}"\n'
        + (toml("store", url=store) if store else "")
        + extra
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Daemon:
    """The real `digest run` in a child process, on a free port, with a config of its own.
    Made through the `spawn` fixture, which kills it (and its workers) even when a test fails."""

    def __init__(
        self,
        root: Path,
        *,
        workers: int = 1,
        limits: int | None = None,
        extra: str = "",
        store: str | None = None,
    ) -> None:
        self.root = root
        self.store = store  # a PostgreSQL database's URL; None: the SQLite file in `root`
        self.port = free_port()
        self.server: dict[str, object] = {
            "host": "127.0.0.1",
            "port": self.port,
            "workers": workers,
        }
        if limits is not None:  # seconds for the header and keep-alive timeouts
            self.server |= {"header_timeout": limits, "keepalive_timeout": limits}
        self.configure(extra)
        self.log = (root / "daemon.log").open("a+", encoding="utf-8")
        self.process: subprocess.Popen[bytes] | None = None
        self.started: list[subprocess.Popen[bytes]] = []

    def configure(self, extra: str = "") -> None:
        """Write this daemon's config: its port and watcher settings, plus `extra`."""
        tables = toml("server", **self.server) + toml("watch", settle_ms=400) + extra
        config = base_config(tables, store=self.store)
        (self.root / "config.toml").write_text(config, encoding="utf-8")

    def start(self) -> subprocess.Popen[bytes]:
        command = ["-m", "digest", "--config", "config.toml", "--log-format", "json", "run"]
        process = subprocess.Popen(
            [sys.executable, *command],
            cwd=self.root,
            stdout=self.log,
            stderr=self.log,
            start_new_session=True,  # its own process group: `kill` reaches its workers too
        )
        self.process = process
        self.started.append(process)
        self.wait_for(lambda: self.health()[0] == 200, what="first build")
        return process

    def events(self, name: str) -> list[dict[str, object]]:
        lines = (self.root / "daemon.log").read_text(encoding="utf-8").splitlines()
        found = []
        for line in lines:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("event") == name:
                found.append(record)
        return found

    def request(
        self,
        path: str,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        *,
        timeout: float = 10,
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            for k, v in (headers or {}).items():
                conn.putheader(k, v)
            conn.endheaders()
            response = conn.getresponse()
            body = response.read()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, body
        finally:
            conn.close()

    def health(self) -> tuple[int, dict[str, Any]]:
        try:
            status, _, body = self.request("/healthz")
        except OSError:
            return 0, {}
        return status, json.loads(body)

    def wait_for(self, condition: Callable[[], object], *, what: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"daemon exited {self.process.returncode}: {self.tail()}")
            if condition():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}: {self.tail()}")

    def tail(self) -> str:
        return (self.root / "daemon.log").read_text(encoding="utf-8")[-3000:]

    def stop(self) -> int:
        """SIGTERM, as systemd stops it; its exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=10)

    def kill(self) -> None:
        """Whatever is left of it and its workers, gone."""
        for process in self.started:
            kill_group(process)
        self.log.close()


def kill_group(process: subprocess.Popen[Any]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


class Talker:
    """A child Python process (`python -c script args…`) talking one line at a time, started
    through the `launch` fixture, so killed at the end of the test whatever happens."""

    def __init__(
        self, launch: Callable[..., subprocess.Popen[bytes]], script: str, *args: str
    ) -> None:
        self.process = launch(
            [sys.executable, "-c", script, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
        )
        self.pid = self.process.pid

    def line(self, timeout: float = 10) -> str:
        """Its next line of output, waited for at most `timeout` seconds."""
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        got = b""
        deadline = time.monotonic() + timeout
        while not got.endswith(b"\n"):
            left = deadline - time.monotonic()
            assert left > 0, f"no line from the child within {timeout}s (got {got!r})"
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 1)
                if not chunk:
                    raise AssertionError(f"child exited {self.process.wait()}: {self.stderr()}")
                got += chunk
        return got.decode().strip()

    def expect(self, line: str, timeout: float = 10) -> None:
        assert self.line(timeout) == line

    def tell(self, line: str = "go") -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")

    def signal(self, sig: signal.Signals) -> None:
        os.kill(self.pid, sig)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        assert self.process.wait(timeout=10) == -signal.SIGKILL

    def stderr(self) -> str:
        assert self.process.stderr is not None
        return self.process.stderr.read().decode(errors="replace")


def stored_entry(
    title: str,
    published: datetime,
    *,
    seen_at: datetime,
    officials: tuple[str, ...] = (),
    topics: tuple[str, ...] = (),
    related: tuple[str, ...] = (),
) -> Entry:
    """An entry made the way ingest makes one: a listing item merged into nothing, tagged."""
    item = Item(
        kind="listing",
        title=title,
        published=published,
        summary=f"Tóm tắt: {title}",
        summary_truncated=False,
        content=None,
        related=related,
        source=Location("capture.txt", 1),
    )
    entry = merge(entry_id(title, published), None, [item], now=seen_at).entry
    return replace(entry, officials=officials, topics=topics)


# -- an in-process ASGI driver, as uvicorn's httptools protocol calls the app ----------------

Asgi = Callable[[Any, Any, Any], Awaitable[None]]


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


async def _call(
    app: Asgi,
    method: str,
    target: str,
    headers: dict[str, str],
    body: list[bytes],
    client: str,
) -> tuple[Response, list[bytes]]:
    """One request as uvicorn's httptools protocol hands it over: `path` percent-decoded,
    `raw_path` and `query_string` as sent; the body in `body`'s chunks."""
    raw_path, _, query = target.partition("?")
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(raw_path) if "%" in raw_path else raw_path,
        "raw_path": raw_path.encode("ascii"),
        "query_string": query.encode("ascii"),
        "root_path": "",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
        "client": (client, 40000),
        "server": ("127.0.0.1", 8000),
    }
    pending = list(body)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if pending:
            chunk = pending.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(pending)}
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        assert not sent or sent[-1]["type"] != "http.response.body" or sent[-1].get("more_body")
        sent.append(dict(message))

    await app(scope, receive, send)
    assert sent, "no response"
    start, *rest = sent
    assert start["type"] == "http.response.start"
    assert rest and all(m["type"] == "http.response.body" for m in rest)
    raw: list[tuple[bytes, bytes]] = start["headers"]
    assert all(k == k.lower() for k, _ in raw)
    names = [k for k, _ in raw]
    assert len(names) == len(set(names)), f"a header twice: {names}"
    response = Response(
        status=start["status"],
        headers={k.decode("latin-1"): v.decode("latin-1") for k, v in raw},
        body=b"".join(m.get("body", b"") for m in rest),
    )
    return response, pending


def call(
    app: Asgi,
    target: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: list[bytes] | None = None,
    *,
    reads_body: bool = False,
    client: str = "127.0.0.1",
) -> Response:
    """One request through the ASGI `app`, in-process; the response, checked for the
    framing uvicorn relies on."""
    response, unread = asyncio.run(_call(app, method, target, headers or {}, body or [b""], client))
    if reads_body:
        assert not unread, "the request body was not read to its end"
    if "content-length" in response.headers and method != "HEAD" and response.status != 304:
        assert int(response.headers["content-length"]) == len(response.body)
    return response
