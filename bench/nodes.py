"""`make bench`, several daemons: digests per second with 1, 2 and 3 daemons on one
PostgreSQL beside one daemon on SQLite, and how long a capture takes to be served by a node
that did not ingest it. Not part of `make test`.

    .venv/bin/python bench/nodes.py

The PostgreSQL server is the test suite's own (tests/pg.py: a temporary folder, a free port).
Every run delivers the same 3,000 daily digests of the seed captures to the same SMTP sink;
the rate is timed from the first claim to the last row settled, read from the outbox every
20 ms, so the daemons' start-up is not counted.
"""

from __future__ import annotations

import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
from mail.mailworld import subscribed_days_ago  # noqa: E402
from pg import PostgresServer, require_bindir  # noqa: E402
from raw import rows  # noqa: E402

from bench.run import PY, WORK, free_port, start_sink  # noqa: E402

SEEDS = ROOT / "tests" / "data" / "seeds"
SUBSCRIBERS = 3000
CHANGES = 10
_UNSETTLED = "select count(*) from outbox where state in ('pending', 'sending', 'failed')"
_STARTED = "select count(*) from outbox where state <> 'pending'"


def node(root: Path, name: str, url: str | None, sink: int) -> tuple[Path, int]:
    """A daemon's folder and config: the shared seeds, its own public folder and port."""
    folder = root / name
    folder.mkdir(parents=True)
    port = free_port()
    store = f'[store]\nurl = "{url}"\n[node]\nname = "{name}"\n' if url else ""
    (folder / "config.toml").write_text(
        f'[paths]\nseeds = "../seeds"\ntemplates = "{ROOT / "templates"}"\n'
        f'[site]\nbase_url = "https://tin.example.org/"\n{store}'
        f"[server]\nport = {port}\n[watch]\npoll = true\n"
        f'[smtp]\nhost = "127.0.0.1"\nport = {sink}\nsecurity = "none"\n',
        encoding="utf-8",
    )
    return folder, port


def start(folder: Path) -> subprocess.Popen[bytes]:
    log = (folder / "daemon.log").open("ab")
    command = [PY, "-m", "digest", "--config", "config.toml", "run"]
    return subprocess.Popen(command, cwd=folder, stdout=log, stderr=log, start_new_session=True)


def stop(daemons: list[subprocess.Popen[bytes]]) -> None:
    for daemon in daemons:
        daemon.send_signal(signal.SIGTERM)
    for daemon in daemons:
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()


def fetch(port: int, path: str) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return str(answer.read().decode())
    except OSError:
        return ""


def wait(condition: Any, timeout: float, every: float = 0.02) -> float:
    """Seconds until `condition()` holds (it must, within `timeout`)."""
    started = time.perf_counter()
    while not condition():
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"not within {timeout} s: {condition}")
        time.sleep(every)
    return time.perf_counter() - started


def deliver(root: Path, count: int, where: str | None, sink: int) -> float:
    """Digests per second of `count` daemons delivering SUBSCRIBERS digests at once."""
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(SEEDS, root / "seeds")
    folders = [node(root, f"n{i}", where, sink)[0] for i in range(1, count + 1)]
    digest = [PY, "-m", "digest", "--config", "config.toml"]
    subprocess.run([*digest, "build"], cwd=folders[0], check=True, capture_output=True)
    store = where or folders[0] / "var" / "digest.sqlite"
    emails = [f"s{i:05d}@example.org" for i in range(SUBSCRIBERS)]
    subscribed_days_ago(folders[0], 1, emails, where=store, source="cli")
    daemons = [start(f) for f in folders]
    try:
        wait(lambda: rows(store, _STARTED)[0][0] > 0, timeout=120)
        elapsed = wait(lambda: rows(store, _UNSETTLED) == [(0,)], timeout=600)
    finally:
        stop(daemons)
    sent = rows(store, "select count(*) from outbox where state = 'sent'")[0][0]
    assert sent == SUBSCRIBERS, f"{sent} of {SUBSCRIBERS} digests sent ({root})"
    return float(sent / elapsed)


def served_elsewhere(root: Path, url: str, sink: int) -> list[float]:
    """Seconds from a capture landing in the seeds folder to the node that did not ingest
    it serving it, CHANGES times."""
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(SEEDS, root / "seeds")
    nodes = [node(root, name, url, sink) for name in ("a", "b")]
    daemons = [start(folder) for folder, _ in nodes]
    try:
        wait(lambda: all(fetch(port, "/healthz") for _, port in nodes), timeout=60)
        wait(lambda: '"ingest_lease": "' in fetch(nodes[0][1], "/healthz"), timeout=30)
        holder = fetch(nodes[0][1], "/healthz").split('"ingest_lease": "')[1].split('"')[0]
        port = next(p for folder, p in nodes if folder.name != holder)
        times = []
        for i in range(CHANGES):
            title = f"Bộ trưởng làm việc với đoàn công tác số {i}"
            (root / "seeds" / f"zz-{i:02d}.txt").write_text(
                f"HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ\n{title}\n"
                f"Thứ Hai, ngày 30/11/2026 {8 + i % 9:02d}:00Sáng nay, Bộ trưởng làm việc.\n",
                encoding="utf-8",
            )
            times.append(wait(lambda t=title: t in fetch(port, "/index.html"), timeout=30))
    finally:
        stop(daemons)
    return times


def bench_nodes() -> dict[str, Any]:
    sink_port = free_port()
    sink = start_sink(sink_port)
    server = PostgresServer(require_bindir())
    server.start()
    result: dict[str, Any] = {}
    try:
        result["sqlite_1_per_s"] = deliver(WORK / "nodes" / "sqlite", 1, None, sink_port)
        for count in (1, 2, 3):
            url = server.create_database()
            rate = deliver(WORK / "nodes" / f"pg-{count}", count, url, sink_port)
            result[f"postgresql_{count}_per_s"] = rate
            server.drop_database(url)
        url = server.create_database()
        times = sorted(served_elsewhere(WORK / "nodes" / "latency", url, sink_port))
        result["served_elsewhere_median_s"] = statistics.median(times)
        result["served_elsewhere_max_s"] = times[-1]
    finally:
        server.stop()
        sink.send_signal(signal.SIGTERM)
        sink.wait()
    return result


def table(result: dict[str, Any]) -> str:
    base = result["sqlite_1_per_s"]
    lines = [f"digests/s, 1 daemon on SQLite: {base:.0f}"]
    for count in (1, 2, 3):
        rate = result[f"postgresql_{count}_per_s"]
        lines.append(f"digests/s, {count} on PostgreSQL: {rate:.0f} ({rate / base:.2f}× SQLite)")
    lines.append(
        "capture → served by the other node: "
        f"median {result['served_elsewhere_median_s']:.2f} s, "
        f"max {result['served_elsewhere_max_s']:.2f} s"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(bench_nodes()))
