"""Search at scale: latency through HTTP against the running daemon, beside the database alone.

    .venv/bin/python bench/search.py STORE PORT   # a store, and a daemon on it at PORT

One-word and three-word queries, each with and without tone marks, asked one at a time over
one keep-alive connection (the page is not cached: every request runs the search); p95 per
kind. The floor is SQLite answering the same count and ranked page alone, in-process. Then
the index's size (dbstat) and what writing it costs: every entry indexed again inside a
transaction that is rolled back (what a cold build spends on search).
"""

from __future__ import annotations

import http.client
import sqlite3
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digest.model import Search  # noqa: E402
from digest.search.query import read_query  # noqa: E402
from digest.store import open_store  # noqa: E402
from digest.store.search import (  # noqa: E402
    COUNT_CAP,
    MATCHED,
    WINDOW,
    index_all,
    match_expression,
)

# Words of the corpus's own subjects, common and rare; each pair: with marks, without.
QUERIES = {
    "one word": [
        ("vắc", "vac"),
        ("sởi", "soi"),
        ("lao", "lao"),
        ("Huế", "hue"),
        ("bệnh", "benh"),
        ("ASEAN", "asean"),
    ],
    "three words": [
        ("chuyển đổi số", "chuyen doi so"),
        ("sốt xuất huyết", "sot xuat huyet"),
        ("khám chữa bệnh", "kham chua benh"),
        ("Trần Văn Thuấn", "tran van thuan"),
        ("an toàn thực", "an toan thuc"),
        ("y tế cơ", "y te co"),
    ],
}
ROUNDS = 20


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


def over_http(port: int, target: str, conn: http.client.HTTPConnection) -> float:
    started = time.perf_counter()
    conn.request("GET", target)
    response = conn.getresponse()
    response.read()
    if response.status != 200:
        raise RuntimeError(f"{target}: {response.status}")
    return time.perf_counter() - started


_SQLITE = MATCHED["sqlite"]
_COUNT = _SQLITE["count"].format(where=_SQLITE["match"])
_RANKED = _SQLITE["ranked"].format(where=_SQLITE["match"])


def in_sqlite(db: sqlite3.Connection, search: Search) -> float:
    """The floor: the store's own statements for the page (count, ranked page), alone."""
    params = {
        "match": match_expression(search.phrases, "sqlite"),
        "cap": COUNT_CAP + 1,
        "window": WINDOW,
        "limit": 20,
        "offset": 0,
    }
    started = time.perf_counter()
    db.execute(_COUNT, params).fetchone()
    db.execute(_RANKED, params).fetchall()
    return time.perf_counter() - started


def bench_search(store: Path, port: int) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    db = sqlite3.connect(store)
    result: dict[str, Any] = {}
    everything: list[float] = []
    for kind, pairs in QUERIES.items():
        for marks, index in (("marked", 0), ("unmarked", 1)):
            ours: list[float] = []
            floor: list[float] = []
            for pair in pairs:
                q = pair[index]
                search = read_query({"q": [q]}, officials=(), topics=()).search
                target = "/search?q=" + quote(q)
                over_http(port, target, conn)  # warm: the first of a query reads pages in
                for _ in range(ROUNDS):
                    ours.append(over_http(port, target, conn))
                    floor.append(in_sqlite(db, search))
            key = f"search_{kind.replace(' ', '_')}_{marks}"
            result[f"{key}_p95_ms"] = 1000 * p95(ours)
            result[f"{key}_floor_p95_ms"] = 1000 * p95(floor)
            everything += ours
    result["search_p95_ms"] = 1000 * p95(everything)
    rows = db.execute(
        "SELECT name, sum(pgsize) FROM dbstat WHERE name LIKE 'search%' "
        "OR name = 'sqlite_autoindex_search_docs_1' GROUP BY name"
    ).fetchall()
    result["search_index_mb"] = sum(size for _, size in rows) / 1e6
    result["store_mb"] = store.stat().st_size / 1e6
    db.close()
    conn.close()
    result["search_index_s"] = index_cost(store)
    return result


def index_cost(store: Path) -> float:
    """Seconds to index every entry, in a transaction that is rolled back."""
    opened = open_store(store)
    try:
        engine = opened.search.engine  # type: ignore[attr-defined]
        with engine.connect() as conn:
            conn.begin()
            started = time.perf_counter()
            index_all(conn)
            spent = time.perf_counter() - started
            conn.rollback()
        return spent
    finally:
        opened.close()


if __name__ == "__main__":
    figures = bench_search(Path(sys.argv[1]), int(sys.argv[2]))
    for name, value in figures.items():
        print(f"{name:40} {value:10.1f}")
