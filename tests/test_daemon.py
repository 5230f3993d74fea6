"""The real daemon as a subprocess: serving, watching, HTTP semantics, signals and the lock."""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import feedparser
import pytest
from support import Daemon, copy_seeds, toml

NEW = (
    "HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ\n"
    "Thứ trưởng Bộ Y tế Lê Đức Luận thăm Bệnh viện Bạch Mai\n"
    "Thứ Hai, ngày 16/11/2026 02:00Sáng 16/11/2026, Thứ trưởng...\n"
)

SUBSCRIBER = toml("[subscribers]", email="ban-bien-tap@example.org", schedule="daily")


@pytest.fixture
def daemon(tmp_path: Path, spawn: Callable[..., Daemon]) -> Daemon:
    copy_seeds(tmp_path / "seeds")
    d = spawn()
    d.start()
    return d


@pytest.fixture
def with_workers(tmp_path: Path, spawn: Callable[..., Daemon]) -> Callable[[int], Daemon]:
    """A started daemon with serving workers, and one subscriber."""

    def start(workers: int) -> Daemon:
        copy_seeds(tmp_path / "seeds")
        d = spawn(workers=workers, extra=SUBSCRIBER)
        d.start()
        return d

    return start


def in_feed(d: Daemon, text: str) -> bool:
    return text in d.request("/feeds/all.atom")[2].decode()


def test_serves_pages_and_feeds_with_their_types(daemon: Daemon) -> None:
    expected = {
        "/": "text/html; charset=utf-8",
        "/index.html": "text/html; charset=utf-8",
        "/feeds/all.atom": "application/atom+xml; charset=utf-8",
        "/feeds/all.rss": "application/rss+xml; charset=utf-8",
        "/feeds/all.json": "application/feed+json; charset=utf-8",
        "/feeds/officials/dao-hong-lan.atom": "application/atom+xml; charset=utf-8",
        "/feeds.opml": "text/x-opml; charset=utf-8",
        "/style.css": "text/css; charset=utf-8",
    }
    for path, content_type in expected.items():
        status, headers, body = daemon.request(path)
        assert status == 200, path
        assert headers["content-type"] == content_type
        assert headers["etag"].startswith('W/"') and headers["last-modified"].endswith("GMT")
        assert headers["cache-control"] == "public, max-age=60"
        assert int(headers["content-length"]) == len(body) > 0
    assert not feedparser.parse(daemon.request("/feeds/all.atom")[2]).bozo


def test_conditional_get_on_both_validators_head_and_gzip(daemon: Daemon) -> None:
    _, headers, body = daemon.request("/feeds/all.atom")
    etag, modified = headers["etag"], headers["last-modified"]
    assert daemon.request("/feeds/all.atom", headers={"If-None-Match": etag})[0] == 304
    assert (
        daemon.request("/feeds/all.atom", headers={"If-None-Match": etag.removeprefix("W/")})[0]
        == 304
    )
    assert daemon.request("/feeds/all.atom", headers={"If-None-Match": '"other"'})[0] == 200
    assert daemon.request("/feeds/all.atom", headers={"If-Modified-Since": modified})[0] == 304
    later = "Fri, 01 Jan 2100 00:00:00 GMT"
    assert daemon.request("/feeds/all.atom", headers={"If-Modified-Since": later})[0] == 304
    earlier = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert daemon.request("/feeds/all.atom", headers={"If-Modified-Since": earlier})[0] == 200
    head_status, head_headers, head_body = daemon.request("/feeds/all.atom", method="HEAD")
    assert head_status == 200 and head_body == b""
    assert head_headers["content-length"] == headers["content-length"]
    gz_status, gz_headers, gz_body = daemon.request(
        "/feeds/all.atom", headers={"Accept-Encoding": "br;q=1, gzip;q=0.8"}
    )
    assert gz_status == 200 and gz_headers["content-encoding"] == "gzip"
    assert gzip.decompress(gz_body) == body and len(gz_body) < len(body) / 2
    assert gz_headers["vary"] == "accept-encoding"
    no = daemon.request("/feeds/all.atom", headers={"Accept-Encoding": "gzip;q=0"})[1]
    assert "content-encoding" not in no
    assert daemon.request("/feeds/all.atom", method="POST")[0] == 405


def test_every_way_out_of_the_public_folder_is_404(daemon: Daemon) -> None:
    public = daemon.root / "public"
    os.symlink("/etc/passwd", public / "link-out.txt")
    os.symlink("/etc", public / "dir-out")
    os.symlink(daemon.root / "config.toml", public / "config.html")
    # Dot-names are never served: a writer's temporaries, anything hidden.
    (public / ".tmp").mkdir(exist_ok=True)
    (public / ".tmp" / "1-index.html").write_text("half", encoding="utf-8")
    (public / "entries" / ".x.html.1.tmp").write_text("half", encoding="utf-8")
    (public / ".hidden.html").write_text("hidden", encoding="utf-8")
    attempts = [
        "/.tmp/1-index.html",
        "/entries/.x.html.1.tmp",
        "/.hidden.html",
        "/%2Ehidden.html",
        "/../config.toml",
        "/%2e%2e/config.toml",
        "/%2E%2E%2Fconfig.toml",
        "/feeds/../../config.toml",
        "/feeds/%2e%2e/%2e%2e/config.toml",
        "//etc/passwd",
        "/./index.html",
        "/index.html%00",
        "/..%5Cconfig.toml",
        "/link-out.txt",
        "/dir-out/passwd",
        "/config.html",
        "/feeds/",
        "/missing.html",
        "/var/digest.sqlite",
    ]
    for path in attempts:
        status, _, body = daemon.request(path)
        assert status == 404, path
        assert b"root:" not in body and b"[paths]" not in body
    requests = daemon.events("request")
    assert len(requests) >= len(attempts)


def test_healthz_reports_the_last_build(daemon: Daemon) -> None:
    status, body = daemon.health()
    assert status == 200
    assert body["status"] == "ok"
    assert body["entries"] == 100 and body["problems"] == 0
    assert body["last_build"]["result"] == "ok"


def test_new_file_appears_in_served_feed_and_broken_one_is_reported(daemon: Daemon) -> None:
    (daemon.root / "seeds" / "005_new.txt").write_text(NEW, encoding="utf-8")
    daemon.wait_for(
        lambda: in_feed(daemon, "Lê Đức Luận thăm Bệnh viện Bạch Mai"), what="new entry"
    )
    assert "Lê Đức Luận thăm" in daemon.request("/feeds/officials/le-duc-luan.atom")[2].decode()
    (daemon.root / "seeds" / "006_broken.txt").write_bytes(b"\x00\x01binary")
    daemon.wait_for(lambda: daemon.health()[1].get("problems") == 1, what="problem counted")
    problems = daemon.events("problem")
    assert problems[-1]["file"] == "006_broken.txt"
    assert "binary file" in str(problems[-1]["message"])
    assert daemon.health()[0] == 200 and in_feed(daemon, "Lê Đức Luận thăm")


def test_every_count_of_problems_agrees_with_digest_problems(daemon: Daemon) -> None:
    """A build, the daemon's log, /healthz and `digest problems` all count the problems there
    are now, not those of the last file read."""
    seeds = daemon.root / "seeds"
    (seeds / "bad-1.txt").write_bytes(b"\x00binary")
    daemon.wait_for(lambda: daemon.health()[1].get("problems") == 1, what="first problem")
    (seeds / "bad-2.txt").write_text("HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ\nMồ côi\n", encoding="utf-8")
    daemon.wait_for(lambda: daemon.health()[1].get("problems") == 2, what="second problem")
    (seeds / "005_new.txt").write_text(NEW, encoding="utf-8")  # a good file: still 2
    daemon.wait_for(lambda: in_feed(daemon, "Lê Đức Luận thăm"), what="good file")
    assert daemon.health()[1]["problems"] == 2
    assert daemon.events("build")[-1]["problems"] == 2
    listed = subprocess.run(
        [sys.executable, "-m", "digest", "--config", "config.toml", "problems"],
        cwd=daemon.root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert listed[-1] == "problems: 2"
    assert [line.split(":")[0] for line in listed[:-1]] == ["seeds/bad-1.txt", "seeds/bad-2.txt"]


def test_file_written_in_chunks_is_parsed_once_complete(daemon: Daemon) -> None:
    builds_before = len(daemon.events("build"))
    lines = NEW.splitlines(keepends=True)
    second = (
        "Thứ trưởng Bộ Y tế Đỗ Xuân Tuyên làm việc tại Huế\n"
        "Thứ Ba, ngày 17/11/2026 03:00Sáng 17/11/2026, Thứ trưởng...\n"
    )
    path = daemon.root / "seeds" / "007_chunked.txt"
    with path.open("w", encoding="utf-8") as f:
        for chunk in ("".join(lines[:2]), lines[2] + second[:40], second[40:]):
            f.write(chunk)
            f.flush()
            time.sleep(0.15)
    daemon.wait_for(lambda: in_feed(daemon, "Đỗ Xuân Tuyên làm việc tại Huế"), what="chunked file")
    time.sleep(0.5)  # longer than settle_ms: a second build of the same file would have begun
    builds = [b for b in daemon.events("build")[builds_before:] if b["files_parsed"]]
    assert len(builds) == 1, builds
    assert builds[0]["entries_new"] == 2 and builds[0]["problems"] == 0


def test_rename_changes_nothing_and_delete_keeps_entries(daemon: Daemon) -> None:
    seeds = daemon.root / "seeds"
    before = daemon.request("/feeds/all.atom")[2]
    builds = len(daemon.events("build"))
    (seeds / "001_21f9db5134b92a1d.txt").rename(seeds / "renamed.txt")
    daemon.wait_for(lambda: len(daemon.events("build")) > builds, what="rename build")
    last = daemon.events("build")[-1]
    assert last["files_parsed"] == 0 and last["written"] == 0
    (seeds / "renamed.txt").unlink()
    daemon.wait_for(lambda: len(daemon.events("build")) > builds + 1, what="delete build")
    assert daemon.request("/feeds/all.atom")[2] == before


def test_sigterm_mid_build_exits_zero_and_leaves_whole_files(daemon: Daemon) -> None:
    seen = len(daemon.events("watch"))
    for i in range(20):
        text = NEW.replace("Bạch Mai", f"số {i}").replace("02:00", f"02:{i:02d}")
        (daemon.root / "seeds" / f"bulk-{i}.txt").write_text(text, encoding="utf-8")
    # The watcher has seen the burst: a build is about to run or running.
    daemon.wait_for(lambda: len(daemon.events("watch")) > seen, what="the watcher")
    started = time.monotonic()
    assert daemon.stop() == 0
    assert time.monotonic() - started < 5
    public = daemon.root / "public"
    assert not [p for p in public.rglob("*") if p.is_file() and ".tmp" in p.name]
    for feed in public.rglob("*.atom"):
        assert not feedparser.parse(feed.read_bytes()).bozo, feed
    assert daemon.events("stop")


def test_a_second_writer_is_refused(daemon: Daemon) -> None:
    second = subprocess.run(
        [sys.executable, "-m", "digest", "--config", "config.toml", "run"],
        cwd=daemon.root,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert second.returncode == 4
    assert "another digest process (pid" in second.stderr and "is writing" in second.stderr
    build = subprocess.run(
        [sys.executable, "-m", "digest", "--config", "config.toml", "build"],
        cwd=daemon.root,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert build.returncode == 4 and "another digest process" in build.stderr
    assert daemon.health()[0] == 200


def test_tells_systemd_it_is_ready_and_stopping(
    tmp_path: Path, spawn: Callable[..., Daemon]
) -> None:
    copy_seeds(tmp_path / "seeds")
    sock_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(sock_path))
        sock.settimeout(30)
        d = spawn()
        os.environ["NOTIFY_SOCKET"] = str(sock_path)
        try:
            d.start()
        finally:
            del os.environ["NOTIFY_SOCKET"]
        assert sock.recv(100) == b"READY=1"
        assert d.stop() == 0
        assert sock.recv(100) == b"STOPPING=1"


def test_dropped_file_reaches_the_next_scheduled_digest_once(
    tmp_path: Path, spawn: Callable[..., Daemon]
) -> None:
    """The scheduler fires for real: the send time is set a few seconds ahead."""
    import email
    import sqlite3
    import urllib.parse
    from datetime import datetime, timedelta
    from email import policy

    from digest.model import VIETNAM

    copy_seeds(tmp_path / "seeds")
    d = spawn(extra=SUBSCRIBER)
    d.start()  # the subscriber is first seen now
    assert d.stop() == 0
    send_at = datetime.now(VIETNAM) + timedelta(seconds=8)
    d.configure(toml("digests", daily_at=f"{send_at:%H:%M:%S}") + SUBSCRIBER)
    d.start()
    (tmp_path / "seeds" / "005_new.txt").write_text(NEW, encoding="utf-8")
    d.wait_for(lambda: in_feed(d, "Lê Đức Luận thăm Bệnh viện Bạch Mai"), what="new entry")
    inbox = tmp_path / "var" / "outbox" / "new"

    def ran() -> bool:
        return any(e.get("state") == "run" for e in d.events("mail"))

    d.wait_for(ran, what="the scheduled run", timeout=30)
    assert [e for e in d.events("mail") if e.get("state") == "run" and e.get("sent") == 1]
    (message_file,) = list(inbox.iterdir())
    message = email.message_from_bytes(message_file.read_bytes(), policy=policy.default)
    assert message["Subject"].endswith("(1 tin)")
    plain = message.get_body(("plain",))
    assert plain is not None and "Lê Đức Luận thăm Bệnh viện Bạch Mai" in plain.get_content()
    status, health = d.health()
    assert status == 200 and health["digests"] == {
        "dead": 0,
        "failed": 0,
        "pending": 0,
        "unknown": 0,
    }
    # One-click unsubscribe with the link from the message (RFC 8058: POST).
    link = next(u.strip(" <>") for u in message["List-Unsubscribe"].split(",") if "http" in u)
    parts = urllib.parse.urlsplit(link)
    path = f"{parts.path}?{parts.query}"
    assert d.request(path)[0] == 200  # GET only shows the button
    with sqlite3.connect(tmp_path / "var" / "digest.sqlite") as db:
        assert db.execute(
            "select count(*) from subscribers where unsubscribed is not null"
        ).fetchone() == (0,)
    status, _, body = d.request(path, method="POST", headers={"Content-Length": "0"})
    assert status == 200 and "Đã hủy đăng ký".encode() in body
    forged = path.replace(
        urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)["token"][0], "0" * 32
    )
    assert d.request(forged, method="POST", headers={"Content-Length": "0"})[0] == 400
    with sqlite3.connect(tmp_path / "var" / "digest.sqlite") as db:
        assert db.execute(
            "select email from subscribers where unsubscribed is not null"
        ).fetchall() == [("ban-bien-tap@example.org",)]
    assert d.stop() == 0


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_serving_workers_answer_beside_the_daemon_and_end_with_it(
    tmp_path: Path, with_workers: Callable[[int], Daemon]
) -> None:
    import sqlite3
    import urllib.parse

    from digest.store import open_store
    from digest.tokens import unsubscribe as unsubscribe_token

    d = with_workers(2)
    daemon = d.process
    assert daemon is not None
    (worker,) = children(daemon.pid)
    assert b"serve-worker" in Path(f"/proc/{worker}/cmdline").read_bytes()
    feed = d.request("/feeds/all.atom")[2]
    store = open_store(tmp_path / "var" / "digest.sqlite")
    secret = store.outbox.secret()  # what the daemon signs its links with
    store.close()
    email = "ban-bien-tap@example.org"
    query = urllib.parse.urlencode({"email": email, "token": unsubscribe_token(secret, email)})

    # With the daemon stopped, the connections the kernel gives the worker's socket are
    # answered: files, /healthz from the daemon's snapshot, and one-click unsubscribe.
    os.kill(daemon.pid, signal.SIGSTOP)
    try:
        answered = []
        for _ in range(24):
            try:
                answered.append(d.request("/healthz", timeout=0.5))
            except OSError:
                continue  # given to the stopped daemon's socket
        assert answered
        for status, _, body in answered:
            health = json.loads(body)
            assert status == 200 and health["status"] == "ok" and health["entries"] == 100
            assert health["last_build"]["result"] == "ok"
        for _ in range(24):
            try:
                status, _, body = d.request("/feeds/all.atom", timeout=0.5)
            except OSError:
                continue
            assert status == 200 and body == feed
        for _ in range(24):
            try:
                status, _, body = d.request(
                    f"/unsubscribe?{query}",
                    method="POST",
                    headers={"Content-Length": "0"},
                    timeout=0.5,
                )
            except OSError:
                continue
            assert status == 200 and "Đã hủy đăng ký".encode() in body
            break
        else:
            raise AssertionError("no unsubscribe reached the worker")
    finally:
        os.kill(daemon.pid, signal.SIGCONT)
    with sqlite3.connect(tmp_path / "var" / "digest.sqlite") as db:
        assert db.execute(
            "select email from subscribers where unsubscribed is not null"
        ).fetchall() == [(email,)]

    # A worker that dies is replaced; a daemon killed outright takes its workers with it.
    os.kill(worker, signal.SIGKILL)

    def replaced() -> bool:
        now = children(daemon.pid)  # one reading: the killed one may be reaped between two
        return len(now) == 1 and worker not in now

    d.wait_for(replaced, what="a new worker")
    assert [e for e in d.events("serve") if e.get("ok") is False and e.get("code") == -9]
    (replacement,) = children(daemon.pid)
    daemon.kill()
    daemon.wait()
    deadline = time.monotonic() + 5
    while alive(replacement) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(replacement)


def test_sigterm_stops_the_workers_too(with_workers: Callable[[int], Daemon]) -> None:
    d = with_workers(3)
    assert d.process is not None
    workers = children(d.process.pid)
    assert len(workers) == 2
    assert d.stop() == 0
    assert not [pid for pid in workers if alive(pid)]


def test_a_taken_port_is_one_clear_line_and_exit_1(
    tmp_path: Path, spawn: Callable[..., Daemon]
) -> None:
    copy_seeds(tmp_path / "seeds")
    d = spawn()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", d.port))
        taken.listen()
        result = subprocess.run(
            [sys.executable, "-m", "digest", "--config", "config.toml", "run"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert f"cannot serve on 127.0.0.1:{d.port}: Address already in use" in result.stderr
    assert "set [server] port in" in result.stderr


def _read_until_closed(sock: socket.socket, limit: float) -> tuple[bytes, float]:
    """What the server sends until it closes the connection, and how long that took."""
    started = time.monotonic()
    sock.settimeout(limit)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return received, time.monotonic() - started


def test_http_closes_idle_slow_and_oversized_requests(
    tmp_path: Path, spawn: Callable[..., Daemon]
) -> None:
    copy_seeds(tmp_path / "seeds")
    d = spawn(limits=1)
    d.start()
    # A connection that never sends anything is answered 408 and closed.
    with socket.create_connection(("127.0.0.1", d.port)) as idle:
        received, took = _read_until_closed(idle, 10)
    assert received.startswith(b"HTTP/1.1 408 ") and took < 5
    # Headers trickling in a byte at a time never complete: closed at the header timeout.
    with socket.create_connection(("127.0.0.1", d.port)) as slow:
        slow.sendall(b"GET /index.html HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        try:
            while time.monotonic() - started < 5:
                slow.sendall(b"X")
                time.sleep(0.2)
        except OSError:
            pass  # closed by the server
        received, _ = _read_until_closed(slow, 5)
    assert received.startswith(b"HTTP/1.1 408 ") and time.monotonic() - started < 5
    # A header over the size cap is refused with 431 long before it is all sent.
    with socket.create_connection(("127.0.0.1", d.port)) as huge:
        huge.sendall(b"GET /index.html HTTP/1.1\r\nHost: x\r\nX-Big: ")
        try:
            for _ in range(32 * 16):  # up to 32 MB
                huge.sendall(b"a" * 65536)
        except OSError:
            pass
        received, _ = _read_until_closed(huge, 5)
    assert received.startswith(b"HTTP/1.1 431 ")
    # After a response, an idle keep-alive connection is closed.
    with socket.create_connection(("127.0.0.1", d.port)) as kept:
        kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        received, took = _read_until_closed(kept, 10)
    assert received.startswith(b"HTTP/1.1 200 ") and 0.5 < took < 5
    assert d.health()[0] == 200  # and normal requests are served all along
    assert d.stop() == 0
