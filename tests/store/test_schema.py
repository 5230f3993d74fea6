"""The schema on a real SQLite file: plain SQL anyone can read, and old stores upgraded in place."""

from __future__ import annotations

import hashlib
import sqlite3

from support import SEEDS, Project


def test_store_schema_is_plain_sql(seeded: Project) -> None:
    seeded.digest("build")
    with sqlite3.connect(seeded.store) as db:
        tables = {r[0] for r in db.execute("select name from sqlite_master where type='table'")}
        assert {"entries", "sources", "provenance", "problems"} <= tables
        hashes = dict(db.execute("select name, sha256 from sources"))
    for name, digest in hashes.items():
        assert hashlib.sha256((SEEDS / name).read_bytes()).hexdigest() == digest


def test_a_schema_2_store_is_upgraded_in_place_and_publishes_nothing_new(
    seeded: Project,
) -> None:
    seeded.digest("build")
    index = (seeded.public / "index.html").read_bytes()
    with sqlite3.connect(seeded.store) as db:
        listed = sorted(db.execute("select * from listing"))
        counted = sorted(db.execute("select * from months"))
        for table in ("listing", "months", "titles", "mentions", "dirty_months", "dirty_entries"):
            db.execute(f"drop table {table}")  # what a schema 2 store did not have
        db.execute("update meta set value = '2' where key = 'schema'")
    out = seeded.digest("build").stdout
    assert "published: 0 written" in out
    assert (seeded.public / "index.html").read_bytes() == index
    with sqlite3.connect(seeded.store) as db:
        assert sorted(db.execute("select * from listing")) == listed
        assert sorted(db.execute("select * from months")) == counted
        assert db.execute("select value from meta where key = 'schema'").fetchone() == ("4",)
