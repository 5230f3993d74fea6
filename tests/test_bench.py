"""The benchmark's lower bound of a cold build (bench/parts.py) times the same work the build
does: every file the build published rendered once, every stored entry tagged once, every
stored row stored again in an empty store, nothing else written and the store's record of
what it published left as it was."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from support import ROOT, Project, base_config, copy_seeds


def test_the_parts_render_every_file_tag_every_entry_and_store_every_row(tmp_path: Path) -> None:
    copy_seeds(tmp_path / "seeds")
    (tmp_path / "config.toml").write_text(base_config(), encoding="utf-8")
    Project(tmp_path).digest("build")
    published = [
        p for p in (tmp_path / "public").rglob("*") if p.is_file() and ".tmp" not in p.parts
    ]
    store = tmp_path / "var" / "digest.sqlite"
    with sqlite3.connect(store) as db:
        stored = db.execute("SELECT count(*) FROM entries").fetchone()[0]
        record = db.execute("SELECT path, signature FROM published ORDER BY path").fetchall()

    out = tmp_path / "parts"
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "parts.py"), str(tmp_path / "config.toml"), str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    parts = json.loads(run.stdout)

    assert parts["rendered"] == len(published) > 0
    assert parts["tagged"] == stored > 0
    assert parts["render_cpu_s"] > 0 and parts["tag_cpu_s"] > 0 and parts["store_cpu_s"] > 0
    copies = {"store.sqlite", "empty.sqlite"}
    assert not [p for p in out.rglob("*") if p.is_file() and p.name not in copies]
    counted = "SELECT count(*) FROM {}"
    with sqlite3.connect(store) as built, sqlite3.connect(out / "empty.sqlite") as copy:
        for table in ("entries", "listing", "titles", "provenance", "search_text"):
            rows = built.execute(counted.format(table)).fetchone()[0]
            assert copy.execute(counted.format(table)).fetchone()[0] == rows > 0, table
        words = "SELECT count(*) FROM search_text WHERE search_text MATCH 'bo'"
        assert copy.execute(words).fetchone() == built.execute(words).fetchone() != (0,)
    assert parts["stored_rows"] > 4 * stored
    with sqlite3.connect(store) as db:
        assert (
            db.execute("SELECT path, signature FROM published ORDER BY path").fetchall() == record
        )
