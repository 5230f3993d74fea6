"""Seconds from a new seed file being closed to its entry being served in feeds/all.atom.

    .venv/bin/python bench/latency.py [--runs 20]

Starts the real daemon on a free port over a copy of seeds/, drops one new file at a time,
and polls the served feed (every 5 ms) until the entry is there.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure(runs: int, seeds: Path = ROOT / "tests" / "data" / "seeds") -> list[float]:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        shutil.copytree(seeds, root / "seeds")
        port = free_port()
        config = f'[paths]\ntemplates = "{ROOT / "templates"}"\n\n[server]\nport = {port}\n'
        (root / "config.toml").write_text(config, encoding="utf-8")
        log = (root / "daemon.log").open("w")
        daemon = subprocess.Popen(
            [sys.executable, "-m", "digest", "--config", "config.toml", "run"],
            cwd=root,
            stdout=log,
            stderr=log,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(6000):
                try:
                    with urllib.request.urlopen(f"{url}/healthz") as r:
                        if json.load(r)["status"] == "ok":
                            break
                except OSError:
                    pass
                time.sleep(0.05)
            figures = []
            for i in range(runs):
                title = f"Thứ trưởng Bộ Y tế Lê Đức Luận làm việc với đoàn số {i}"
                text = (
                    "HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ\n"
                    f"{title}\nThứ Hai, ngày 16/11/2026 {i // 60:02d}:{i % 60:02d}Sáng nay...\n"
                )
                path = root / "seeds" / f"latency-{i}.txt"
                with path.open("w", encoding="utf-8") as f:
                    f.write(text)
                closed = time.perf_counter()
                while True:
                    with urllib.request.urlopen(f"{url}/feeds/all.atom") as r:
                        if title in r.read().decode():
                            break
                    time.sleep(0.005)
                figures.append(time.perf_counter() - closed)
                time.sleep(0.3)
            return figures
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    figures = measure(parser.parse_args().runs)
    figures.sort()
    p95 = figures[max(0, int(len(figures) * 0.95) - 1)]
    print(
        f"new file -> served feed: median {statistics.median(figures):.3f} s, "
        f"p95 {p95:.3f} s, max {figures[-1]:.3f} s over {len(figures)} files"
    )


if __name__ == "__main__":
    main()
