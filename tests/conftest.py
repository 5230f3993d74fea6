"""Shared fixtures: a real project folder (config, seeds, store) in a temporary directory."""

from __future__ import annotations

import http.client
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
DATA = Path(__file__).resolve().parent / "data"


@dataclass
class Project:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def seeds(self) -> Path:
        return self.root / "seeds"

    @property
    def store(self) -> Path:
        return self.root / "var" / "digest.sqlite"

    @property
    def public(self) -> Path:
        return self.root / "public"

    def minimal_config(self, extra: str = "") -> str:
        """A config of this project's own: its folders, the repository's templates, the
        shipped taxonomy, and `extra`."""
        return base_config(extra)

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


def base_config(extra: str = "") -> str:
    templates = ROOT / "templates"
    return (
        "[paths]\n"
        'seeds = "seeds"\n'
        'store = "var/digest.sqlite"\n'
        'public = "public"\n'
        f'templates = "{templates.as_posix()}"\n' + extra
    )


def real_config() -> str:
    """The shipped config.toml, with its templates found from anywhere."""
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    return text.replace(
        'templates = "templates"', f'templates = "{(ROOT / "templates").as_posix()}"'
    )


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """An empty project: config and seeds folder, no store yet."""
    p = Project(tmp_path)
    p.seeds.mkdir()
    p.config.write_text(base_config(), encoding="utf-8")
    return p


@pytest.fixture
def seeded(project: Project) -> Project:
    """A project holding the five real seed files."""
    for f in sorted(SEEDS.iterdir()):
        shutil.copy2(f, project.seeds / f.name)
    return project


@pytest.fixture
def make_project(tmp_path: Path) -> Callable[[str], Project]:
    counter = iter(range(1000))

    def make(extra: str = "") -> Project:
        p = Project(tmp_path / f"p{next(counter)}")
        (p.seeds).mkdir(parents=True)
        p.config.write_text(base_config(extra), encoding="utf-8")
        return p

    return make


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Daemon:
    def __init__(self, root: Path, *, workers: int = 1, limits: int | None = None) -> None:
        self.root = root
        self.port = free_port()
        config = real_config().replace("port = 8080", f"port = {self.port}")
        config = config.replace("settle_ms = 50", "settle_ms = 400")
        config = config.replace("workers = 1", f"workers = {workers}")
        if limits is not None:  # seconds for the header and keep-alive timeouts
            config = config.replace("header_timeout = 10", f"header_timeout = {limits}")
            config = config.replace("keepalive_timeout = 5", f"keepalive_timeout = {limits}")
        (root / "config.toml").write_text(config, encoding="utf-8")
        self.log = (root / "daemon.log").open("w+", encoding="utf-8")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "digest",
                "--config",
                "config.toml",
                "--log-format",
                "json",
                "run",
            ],
            cwd=self.root,
            stdout=self.log,
            stderr=self.log,
        )
        self.process = process
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

    def health(self) -> tuple[int, dict[str, object]]:
        try:
            status, _, body = self.request("/healthz")
        except OSError:
            return 0, {}
        return status, json.loads(body)

    def wait_for(self, condition, *, what: str, timeout: float = 20) -> None:  # type: ignore[no-untyped-def]
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
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=10)
