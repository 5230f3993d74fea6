"""`make bench`: scale benchmarks with a floor beside every figure. Not part of `make test`.

    BENCH_SIZES="100 1000 10000" .venv/bin/python bench/run.py

For each corpus size (made by bench/corpus.py, fixed seed): cold build time and peak RSS
beside a minimal floor (bench/floor.py), a no-change rebuild, 20+ incremental changes through
the running daemon's watcher, 10,000 subscribers' digests delivered to an SMTP sink on
127.0.0.1 beside the same sink fed pre-rendered messages, and HTTP with wrk beside nginx
serving the same folder, and search p95 through HTTP beside SQLite alone (bench/search.py);
then several daemons on one PostgreSQL (bench/nodes.py). Prints
the tables and writes bench/results.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work"
PY = sys.executable
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
from mail.mailworld import subscribed_days_ago  # noqa: E402

from bench.corpus import generate  # noqa: E402
from bench.floor import pack  # noqa: E402
from bench.search import bench_search  # noqa: E402

# Debian installs nginx and smtp-sink in /usr/sbin, often not on a user's PATH.
SEARCH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
NGINX = shutil.which("nginx", path=SEARCH) or "nginx"
SINK = shutil.which("smtp-sink", path=SEARCH)
VIETNAM_OFFSET = timedelta(hours=7)
SUBSCRIBERS = 10_000
CHANGES = 20
FLOOR_RUNS = 3  # a floor is the fastest of these
TRASH = WORK / ".trash"  # trees set aside during a run, deleted when it ends (set_aside)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Measured:
    seconds: float
    cpu: float  # user and system seconds, the processes it waited for included
    peak_mb: float  # RSS of its largest process
    out: str


def measured(cmd: list[str], cwd: Path) -> Measured:
    """Wall and CPU time, peak RSS and stdout of one child process. The disk's pending
    writes are done first: what an earlier step wrote (a packed copy of the site, a deleted
    tree) is not flushed on this one's time."""
    os.sync()
    started = time.perf_counter()
    errors = cwd / "last-stderr.txt"
    with errors.open("wb") as stderr:
        child = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=stderr)
        assert child.stdout is not None
        out = child.stdout.read().decode()
        _, status, usage = os.wait4(child.pid, 0)
    if status != 0:
        raise RuntimeError(f"{cmd} failed ({status}): {errors.read_text()[-2000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    return Measured(time.perf_counter() - started, cpu, usage.ru_maxrss / 1024, out)


def best_of(runs: int, cmd: list[str], cwd: Path, *, out: Path) -> float:
    """The fastest of `runs` runs of a floor, each writing into a new folder (`out`-1, …, set
    aside after): a floor is what the machine can do."""
    times = []
    for n in range(1, runs + 1):
        folder = out.with_name(f"{out.name}-{n}")
        set_aside(folder)
        times.append(measured([*cmd, str(folder)], cwd).seconds)
        set_aside(folder)
    return min(times)


def set_aside(path: Path) -> None:
    """Move `path` out of the way; it is deleted when the run ends. On ext4, creating files
    in the minutes after many were deleted is slow: the allocator looks at each recently
    freed inode and skips it (writing the 1,000-capture site's 23,358 files took 1.3 s on a
    disk with no recent deletion, 5-11 s just after deleting as many). A timed step right
    after a deletion would time the deletion too: the build and its floors follow none."""
    if path.exists():
        TRASH.mkdir(parents=True, exist_ok=True)
        path.rename(TRASH / f"{time.time_ns()}-{path.name}")


def write_config(
    root: Path,
    *,
    port: int,
    extra: str = "",
    smtp_port: int | None = None,
    daily_at: str = "07:00",
) -> None:
    """A config of the benchmark's own (never the working copy's): every other key at its
    default, so a user's config.toml changes no figure."""
    config = f"""[paths]
templates = "{ROOT / "templates"}"

[server]
port = {port}
workers = 2  # two serving processes, as nginx beside it gets two workers

[digests]
daily_at = "{daily_at}"
processes = 2  # and two delivering processes, one a core
"""
    if smtp_port is not None:
        config += f'\n[smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\nsecurity = "none"\n'
    (root / "config.toml").write_text(config + extra, encoding="utf-8")


def digest(root: Path, *args: str) -> list[str]:
    return [PY, "-m", "digest", "--config", str(root / "config.toml"), *args]


def feed_sizes(public: Path) -> list[int]:
    sizes = []
    for path in sorted((public / "feeds").rglob("*")):
        data = path.read_bytes() if path.is_file() else b""
        if path.suffix == ".atom":
            sizes.append(data.count(b"<entry>"))
        elif path.suffix == ".rss":
            sizes.append(data.count(b"<item>"))
        elif path.suffix == ".json":
            sizes.append(len(json.loads(data)["items"]))
    return sizes


# -- build ---------------------------------------------------------------------------------------


def bench_build(root: Path) -> dict[str, Any]:
    for folder in ("var", "public"):
        set_aside(root / folder)
    cold = measured(digest(root, "build"), root)
    nochange = measured(digest(root, "build"), root).seconds
    entries = int(re.search(r"(\d+) total", cold.out).group(1))  # type: ignore[union-attr]
    sizes = feed_sizes(root / "public")
    (root / "manifest.json").write_text(json.dumps(sizes))
    floor = best_of(
        FLOOR_RUNS,
        [
            PY,
            str(ROOT / "bench" / "floor.py"),
            str(root / "seeds"),
            str(root / "manifest.json"),
        ],
        root,
        out=root / "floor",
    )
    packed = root / "public.pack"
    files = pack(root / "public", packed)
    files_floor = best_of(
        FLOOR_RUNS,
        [
            PY,
            str(ROOT / "bench" / "floor.py"),
            "--files",
            str(root / "seeds"),
            str(packed),
        ],
        root,
        out=root / "floor-files",
    )
    packed.unlink()
    parts_out = root / "parts"
    set_aside(parts_out)
    parts = json.loads(
        measured(
            [PY, str(ROOT / "bench" / "parts.py"), str(root / "config.toml"), str(parts_out)], root
        ).out
    )
    set_aside(parts_out)
    return {
        **parts,
        "entries": entries,
        "public_files": files,
        "feeds": len(sizes),
        "cold_s": cold.seconds,
        "cold_cpu_s": cold.cpu,
        "cores": os.cpu_count() or 1,
        "cold_floor_s": floor,
        "cold_files_floor_s": files_floor,
        "peak_rss_mb": cold.peak_mb,
        "nochange_s": nochange,
    }


# -- incremental, through the daemon ------------------------------------------------------------


class Daemon:
    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.log = root / "daemon.log"
        self.process = subprocess.Popen(
            digest(root, "--log-format", "json", "run"),
            cwd=root,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 3600
        while time.monotonic() < deadline:
            if self.builds():
                return
            time.sleep(0.2)
        raise RuntimeError("the daemon did not build")

    def builds(self) -> list[dict[str, Any]]:
        found = []
        for line in self.log.read_text(encoding="utf-8").splitlines():
            if '"event": "build"' in line:
                found.append(json.loads(line))
        return found

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=120)


def bench_incremental(root: Path, daemon: Daemon, edited: dict[Path, bytes]) -> dict[str, Any]:
    """One change at a time through the daemon; the captures it edits are kept in `edited`
    as they were, to be put back (each run then starts from the generated corpus)."""
    seeds = sorted((root / "seeds").iterdir())
    latencies = []
    for i in range(CHANGES):
        before = len(daemon.builds())
        if i % 2 == 0:  # change one existing capture: a longer teaser for its first item
            path = seeds[(i * 7919) % len(seeds)]
            edited.setdefault(path, path.read_bytes())
            text = path.read_text(encoding="utf-8")
            text = text.replace("...\n", f" (cập nhật {i})...\n", 1)
        else:  # add one new capture of the newest items
            path = root / "seeds" / f"new-{i:03d}.txt"
            when = datetime(2026, 11, 2, tzinfo=UTC) + timedelta(hours=i)
            local = when + VIETNAM_OFFSET
            days = ("Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bẩy", "Chủ Nhật")
            text = "HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ\n" + "".join(
                f"Thứ trưởng Bộ Y tế Lê Đức Luận làm việc tại điểm {i}-{k}\n"
                f"{days[local.weekday()]}, ngày {when:%d/%m/%Y} {when.hour:02d}:{k:02d}"
                f"Sáng nay, Thứ trưởng làm việc...\n"
                for k in range(5)
            )
        with path.open("w", encoding="utf-8") as f:
            f.write(text)
        closed = time.time()
        deadline = time.monotonic() + 600
        while len(daemon.builds()) <= before and time.monotonic() < deadline:
            time.sleep(0.005)
        event = daemon.builds()[before]
        done = datetime.fromisoformat(event["time"]).timestamp()
        latencies.append(done - closed)
        time.sleep(0.3)
    latencies.sort()
    return {
        "incremental_median_s": statistics.median(latencies),
        "incremental_p95_s": latencies[max(0, int(len(latencies) * 0.95) - 1)],
    }


# -- HTTP ----------------------------------------------------------------------------------------


def wrk(url: str, header: str | None) -> tuple[float, float]:
    cmd = ["wrk", "-t2", "-c50", "-d8s", "--latency", url]
    if header:
        cmd[1:1] = ["-H", header]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    assert p99 is not None
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    return rps, float(p99.group(1)) * scale


def etag(url: str) -> str:
    with urllib.request.urlopen(url) as response:
        return str(response.headers["ETag"])


def bench_http(root: Path, port: int) -> dict[str, Any]:
    nginx_port = free_port()
    conf = root / "nginx.conf"
    conf.write_text(
        f"""worker_processes 2; pid {root}/nginx.pid; error_log {root}/nginx.err;
events {{ worker_connections 1024; }}
http {{ access_log off; types {{ application/atom+xml atom; }} default_type text/html;
  server {{ listen 127.0.0.1:{nginx_port}; root {root / "public"}; }} }}
"""
    )
    nginx = subprocess.Popen([NGINX, "-c", str(conf), "-g", "daemon off;"])
    time.sleep(0.5)
    try:
        results: dict[str, Any] = {}
        for name, base in (
            ("ours", f"http://127.0.0.1:{port}"),
            ("nginx", f"http://127.0.0.1:{nginx_port}"),
        ):
            url = f"{base}/feeds/all.atom"
            results[f"{name}_304"] = wrk(url, f"If-None-Match: {etag(url)}")
            results[f"{name}_full"] = wrk(url, None)
        return {
            "http_304_rps": results["ours_304"][0],
            "http_304_p99_ms": results["ours_304"][1],
            "nginx_304_rps": results["nginx_304"][0],
            "nginx_304_p99_ms": results["nginx_304"][1],
            "http_full_rps": results["ours_full"][0],
            "http_full_p99_ms": results["ours_full"][1],
            "nginx_full_rps": results["nginx_full"][0],
            "nginx_full_p99_ms": results["nginx_full"][1],
        }
    finally:
        nginx.send_signal(signal.SIGQUIT)
        nginx.wait(timeout=30)


# -- digests -------------------------------------------------------------------------------------


def subscribers_toml() -> str:
    officials = [
        "dao-hong-lan",
        "vu-manh-ha",
        "do-xuan-tuyen",
        "tran-van-thuan",
        "nguyen-thi-lien-huong",
        "nguyen-tri-thuc",
        "le-duc-luan",
    ]
    topics = [
        "chuyen-doi-so",
        "hop-tac-quoc-te",
        "bao-hiem-y-te",
        "to-chuc-can-bo",
        "phong-chong-dich-benh",
        "the-che-chinh-sach",
        "kham-chua-benh",
        "y-te-co-so",
        "duoc-thuc-pham",
        "thien-tai-khan-cap",
        "dan-so",
        "nhan-luc-dao-tao",
    ]
    blocks = []
    for i in range(SUBSCRIBERS):
        o = [officials[i % 7]] if i % 3 else []
        t = [topics[i % 12]] if i % 4 == 1 else []
        blocks.append(
            f'[[subscribers]]\nemail = "s{i}@example.org"\nname = "Người đọc {i}"\n'
            f'schedule = "daily"\nofficials = {json.dumps(o)}\ntopics = {json.dumps(t)}\n'
        )
    return "\n".join(blocks)


async def floor_send(port: int, message: bytes, count: int) -> float:
    import aiosmtplib

    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
    await smtp.connect()
    started = time.perf_counter()
    for i in range(count):
        await smtp.sendmail("digest@localhost", [f"s{i}@example.org"], message)
    elapsed = time.perf_counter() - started
    await smtp.quit()
    return elapsed


def start_sink(port: int) -> subprocess.Popen[str]:
    """postfix's smtp-sink (C) when installed, else an aiosmtpd sink (Python: much slower
    with large messages, as it handles every line in Python)."""
    if SINK:
        sink = subprocess.Popen(
            [SINK, "-u", "nobody", f"127.0.0.1:{port}", "256"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        return sink
    sink = subprocess.Popen(
        [PY, str(ROOT / "bench" / "sink.py"), str(port)], stdout=subprocess.PIPE, text=True
    )
    assert sink.stdout is not None
    sink.stdout.readline()
    return sink


def message_size(root: Path) -> int:
    """The mean size of our digests, from 200 of them rendered in-process."""
    from digest.app import SystemClock
    from digest.config import load
    from digest.mail import make_sender
    from digest.store import open_store

    config = load(root / "config.toml")
    store = open_store(config.paths.store)
    sender = make_sender(config, store, SystemClock().now)
    sizes = []
    for letter in sender.dry_run():
        if letter.parcel is not None:
            sizes.append(len(letter.parcel.data))
        if len(sizes) >= 200:
            break
    return int(statistics.mean(sizes)) if sizes else 30_000


def bench_digests(root: Path, port: int) -> dict[str, Any]:
    sink_port = free_port()
    sink = start_sink(sink_port)
    now = datetime.now(UTC)
    slot = (now - timedelta(minutes=1) + VIETNAM_OFFSET).strftime("%H:%M:%S")
    write_config(root, port=port, extra=subscribers_toml(), smtp_port=sink_port, daily_at=slot)
    store = root / "var" / "digest.sqlite"
    with sqlite3.connect(store) as db:
        db.execute("delete from outbox")
        db.execute("delete from subscribers")
    # Stored as config.toml's would be, there a day already (their choices come from config).
    subscribed_days_ago(root, 1, [f"s{i}@example.org" for i in range(SUBSCRIBERS)], where=store)
    with sqlite3.connect(store) as db:
        # The newest 300 entries became new since the previous digest; the cold build just
        # stored all the others, so they are moved back to before the subscribers arrived.
        db.execute(
            "update entries set seen_at = ?, changed_at = null",
            (int((now - timedelta(days=30)).timestamp()),),
        )
        db.execute(
            "update entries set seen_at = ? where id in "
            "(select id from entries order by published desc limit 300)",
            (int((now - timedelta(hours=2)).timestamp()),),
        )
    size = message_size(root)
    try:
        render = measured(digest(root, "send", "--dry-run"), root).seconds
        send = digest(root, "send")
        profile = os.environ.get("BENCH_PROFILE")  # py-spy's folded stacks of this send
        if profile:
            spy = shutil.which("py-spy", path=str(Path(PY).parent)) or "py-spy"
            record = [spy, "record", "--subprocesses", "-r", "200", "-f", "raw", "-o", profile]
            send = [*record, "--", *send]  # both delivering processes
        delivered = measured(send, root)
        total, out = delivered.seconds, delivered.out
    finally:
        sink.send_signal(signal.SIGTERM)
        sink.wait()
    sent = out.count(" sent ")
    # The floor: the same number of pre-rendered messages of our mean size, one connection.
    lines = max(1, size // 78)
    sample = b"Subject: x\r\nFrom: a@b.c\r\nTo: d@e.f\r\n\r\n" + (b"x" * 76 + b"\r\n") * lines
    floor_sink = start_sink(sink_port)
    try:
        floor = asyncio.run(floor_send(sink_port, sample, max(sent, 1)))
    finally:
        floor_sink.send_signal(signal.SIGTERM)
        floor_sink.wait()
    return {
        "digest_sink": "smtp-sink" if SINK else "aiosmtpd",
        "digest_mean_bytes": size,
        "digests_sent": sent,
        "digests_per_s": sent / total if total else 0.0,
        "digest_floor_per_s": max(sent, 1) / floor,
        "render_ms_per_message": 1000 * render / max(sent, 1),
        "send_ms_per_message": 1000 * max(total - render, 0) / max(sent, 1),
    }


# -- the table ------------------------------------------------------------------------------------


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b else "-"


def search_rows(size: str, r: dict[str, Any]) -> list[tuple[str, ...]]:
    """Search p95 through HTTP beside SQLite alone; the index's size and writing cost."""
    rows: list[tuple[str, ...]] = []
    for kind in ("one_word", "three_words"):
        for marks in ("marked", "unmarked"):
            key = f"search_{kind}_{marks}"
            ours, floor = r[f"{key}_p95_ms"], r[f"{key}_floor_p95_ms"]
            label = f"search p95, {kind.replace('_', ' ')}, {marks} (ms)"
            rows.append(
                (
                    size,
                    label,
                    f"{ours:.1f}",
                    f"{floor:.1f}",
                    ratio(ours, floor),
                    "≤ 50 ms (10k)",
                    str(ours <= 50),
                )
            )
    rows.append(
        (
            size,
            "search index (MB of store)",
            f"{r['search_index_mb']:.0f}",
            f"{r['store_mb']:.0f}",
            f"{100 * r['search_index_mb'] / r['store_mb']:.0f}%",
            "-",
            "-",
        )
    )
    rows.append(
        (
            size,
            "search index writing (s of cold)",
            f"{r['search_index_s']:.1f}",
            f"{r['cold_s']:.1f}",
            f"{100 * r['search_index_s'] / r['cold_s']:.0f}%",
            "-",
            "-",
        )
    )
    return rows


def parts_rows(size: str, r: dict[str, Any]) -> list[tuple[str, ...]]:
    """What the cold build cannot leave out, each alone on one core (bench/parts.py), and the
    least time they allow: writing the same files (the floor), then their CPU shared
    perfectly among the cores."""
    if "render_cpu_s" not in r:
        return []
    floor, cores = r["cold_files_floor_s"], r["cores"]
    parts = [
        ("rendering every file", "rendering", r["render_cpu_s"]),
        ("tagging every entry", "tagging", r["tag_cpu_s"]),
    ]
    if "store_cpu_s" in r:  # measured since 3/12/2026
        parts.append(("storing every row (SQLite)", "storing", r["store_cpu_s"]))
    rows = [
        (
            size,
            f"  {label} alone, one core (s CPU)",
            f"{s:.1f}",
            f"{floor:.1f}",
            ratio(s, floor),
            *"--",
        )
        for label, _, s in parts
    ]
    everything = " + ".join(short for _, short, _ in parts)
    for label, least in (
        (f"  least it allows: files + rendering ÷ {cores} cores (s)", parts[0][2] / cores),
        (f"  least: files + ({everything}) ÷ {cores} cores (s)", sum(p[2] for p in parts) / cores),
    ):
        least += floor
        fits = str(least <= 3 * floor)
        rows.append((size, label, f"{least:.1f}", f"{floor:.1f}", ratio(least, floor), "-", fits))
    return rows


def table(results: dict[str, dict[str, Any]]) -> str:
    rows: list[tuple[str, ...]] = [("size", "metric", "ours", "floor", "ratio", "target", "met")]
    base = results.get(min(results, key=int), {}).get("incremental_median_s", 0)
    for size, r in results.items():
        rows += [
            (
                size,
                "cold build vs the feeds floor (s)",
                f"{r['cold_s']:.1f}",
                f"{r['cold_floor_s']:.1f}",
                ratio(r["cold_s"], r["cold_floor_s"]),
                "-",
                "-",
            ),
            (
                size,
                "cold build vs the same files (s)",
                f"{r['cold_s']:.1f}",
                f"{r.get('cold_files_floor_s', float('nan')):.1f}",
                ratio(r["cold_s"], r.get("cold_files_floor_s", float("nan"))),
                "≤ 3× files",
                str(r["cold_s"] <= 3 * r.get("cold_files_floor_s", 0)),
            ),
            (  # the wall time no sharing of the work among the cores could beat
                size,
                f"  its CPU ÷ {r.get('cores', '?')} cores vs the same files (s)",
                f"{r.get('cold_cpu_s', float('nan')) / r.get('cores', 1):.1f}",
                f"{r.get('cold_files_floor_s', float('nan')):.1f}",
                ratio(
                    r.get("cold_cpu_s", float("nan")) / r.get("cores", 1),
                    r.get("cold_files_floor_s", float("nan")),
                ),
                "-",
                "-",
            ),
            *parts_rows(size, r),
            (
                size,
                "peak RSS (MB)",
                f"{r['peak_rss_mb']:.0f}",
                "-",
                "-",
                "≤ 300",
                str(r["peak_rss_mb"] <= 300),
            ),
            (
                size,
                "no-change rebuild (s)",
                f"{r['nochange_s']:.2f}",
                f"{r['cold_s']:.1f}",
                f"{100 * r['nochange_s'] / r['cold_s']:.1f}%",
                "≤ 5% of cold",
                str(r["nochange_s"] <= 0.05 * r["cold_s"]),
            ),
            (
                size,
                "one change → disk, median (s)",
                f"{r['incremental_median_s']:.3f}",
                f"{base:.3f}",
                ratio(r["incremental_median_s"], base),
                "≤ 0.3 s, ≤ 1.5× 100",
                str(r["incremental_median_s"] <= 0.3 and r["incremental_median_s"] <= 1.5 * base),
            ),
            (
                size,
                "one change → disk, p95 (s)",
                f"{r['incremental_p95_s']:.3f}",
                "-",
                "-",
                "-",
                "-",
            ),
            (
                size,
                "digests per second",
                f"{r['digests_per_s']:.0f}",
                f"{r['digest_floor_per_s']:.0f}",
                ratio(r["digests_per_s"], r["digest_floor_per_s"]),
                "≥ 500",
                str(r["digests_per_s"] >= 500),
            ),
            (
                size,
                "  render / send per message (ms)",
                f"{r['render_ms_per_message']:.2f} / {r['send_ms_per_message']:.2f}",
                "-",
                "-",
                "-",
                "-",
            ),
            (
                size,
                "HTTP 304 (req/s, p99 ms)",
                f"{r['http_304_rps']:.0f}, {r['http_304_p99_ms']:.1f}",
                f"{r['nginx_304_rps']:.0f}, {r['nginx_304_p99_ms']:.1f}",
                ratio(r["http_304_rps"], r["nginx_304_rps"]),
                "≥ 0.3× nginx",
                str(r["http_304_rps"] >= 0.3 * r["nginx_304_rps"]),
            ),
            (
                size,
                "HTTP full feed (req/s, p99 ms)",
                f"{r['http_full_rps']:.0f}, {r['http_full_p99_ms']:.1f}",
                f"{r['nginx_full_rps']:.0f}, {r['nginx_full_p99_ms']:.1f}",
                ratio(r["http_full_rps"], r["nginx_full_rps"]),
                "-",
                "-",
            ),
        ]
        if "search_p95_ms" in r:
            rows += search_rows(size, r)
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows
    )


def bench_size(size: int) -> dict[str, Any]:
    root = WORK / str(size)
    if not (root / "seeds").is_dir():
        generate(root / "seeds", size)
    shutil.rmtree(root / "seeds-new", ignore_errors=True)
    for extra in (root / "seeds").glob("new-*.txt"):
        extra.unlink()
    port = free_port()
    write_config(root, port=port)
    print(f"[{size} files] build …", flush=True)
    result = bench_build(root)
    print(f"[{size} files] incremental and HTTP through the daemon …", flush=True)
    os.sync()  # the build's files on disk first: the daemon's changes are timed alone
    daemon = Daemon(root, port)
    edited: dict[Path, bytes] = {}
    try:
        result |= bench_incremental(root, daemon, edited)
        result |= bench_http(root, port)
        print(f"[{size} files] search …", flush=True)
        result |= bench_search(root / "var" / "digest.sqlite", port)
    finally:
        daemon.stop()
        for path, data in edited.items():
            path.write_bytes(data)
    print(f"[{size} files] digests …", flush=True)
    result |= bench_digests(root, port)
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    sizes = [int(s) for s in os.environ.get("BENCH_SIZES", "100 1000 10000").split()]
    shutil.rmtree(TRASH, ignore_errors=True)  # what an interrupted run set aside
    try:
        results = {str(size): bench_size(size) for size in sizes}
    finally:
        shutil.rmtree(TRASH, ignore_errors=True)
    from bench.nodes import bench_nodes  # it builds on this module
    from bench.nodes import table as nodes_table

    print("[nodes] 1, 2 and 3 daemons on PostgreSQL …", flush=True)
    nodes = bench_nodes()
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    previous = ROOT / "bench" / "results.json"
    if previous.exists():  # keep the sizes not run this time
        earlier = json.loads(previous.read_text()).get("results", {})
        results = {**{k: v for k, v in earlier.items() if k not in results}, **results}
        results = dict(sorted(results.items(), key=lambda kv: int(kv[0])))
    output = {
        "machine": machine,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "results": results,
        "nodes": nodes,
    }
    (ROOT / "bench" / "results.json").write_text(json.dumps(output, indent=2) + "\n")
    print()
    print(machine)
    print(table(results))
    print(nodes_table(nodes))


if __name__ == "__main__":
    main()
