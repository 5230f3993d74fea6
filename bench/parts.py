"""What a cold build cannot leave out, each measured alone on one core, from the store it made:

    .venv/bin/python bench/parts.py CONFIG OUT_DIR

- rendering every file it published: the templates with Jinja2 and the feeds with feedgen (a
  one-core publish of a copy of the store in OUT_DIR that writes no file, only
  `Renderer.render` timed);
- tagging every stored entry with the rules of classify.py;
- storing every row the build stored: SQLite's own work, the rows copied with
  `INSERT … SELECT` into an empty store of the same schema in one transaction (the search
  index's text tokenised again, as the ingest does).

With the same-files floor they bound the cold build from below: no sharing among the cores
makes it faster than writing the files plus these parts' CPU over the cores (bench/run.py
`parts_rows`). Prints one JSON object (CPU seconds).
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digest.app import make_digest  # noqa: E402
from digest.classify import Classifier  # noqa: E402
from digest.config import Config, load  # noqa: E402
from digest.model import Entry  # noqa: E402
from digest.site.plan import Job, Names  # noqa: E402
from digest.site.render import Renderer, Reuse  # noqa: E402
from digest.site.write import PublicDir  # noqa: E402
from digest.store import open_store  # noqa: E402

_PAGE = 1000  # entries read and tagged at a time


class _Unwritten(PublicDir):
    """Writes nothing: the files are the floor's part, and gigabytes written here would
    still be flushing to disk while the benchmarks after this one run."""

    def write(self, relative: str, data: bytes) -> bool:
        return True


class _TimedRenderer(Renderer):
    """The publish's own renderer, counting the CPU of each kind of output."""

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.cpu: defaultdict[str, float] = defaultdict(float)
        self.rendered = 0

    def render(
        self, job: Job, full: Mapping[str, Entry], names: Names, reuse: Reuse | None = None
    ) -> bytes:
        started = time.process_time()
        try:
            return super().render(job, full, names, reuse)
        finally:
            self.rendered += 1
            kind = type(job).__name__.removesuffix("Job").lower()
            self.cpu[f"{kind} {getattr(job, 'fmt', '')}".strip()] += time.process_time() - started


def rendering(config: Config, out: Path) -> tuple[dict[str, float], int]:
    """CPU seconds of rendering every output, per kind, and how many outputs; the copy keeps
    the store's own record of what it published (the benchmarks after this one read it)."""
    out.mkdir(parents=True)
    copy = out / "store.sqlite"
    with sqlite3.connect(config.paths.store) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    paths = replace(config.paths, store=copy, public=out / "public")
    one_core = replace(config, paths=paths, build=replace(config.build, workers=1))
    app = make_digest(one_core)
    timed = _TimedRenderer(one_core)
    app.publisher.renderer = timed
    app.publisher.public = _Unwritten(paths.public)
    try:
        app.publish()
    finally:
        app.close()
    return dict(timed.cpu), timed.rendered


def tagging(config: Config) -> tuple[float, int]:
    """CPU seconds of tagging every stored entry, and how many."""
    app = make_digest(config)
    try:
        store = app.store.entries
        with sqlite3.connect(config.paths.store) as db:
            ids = [row[0] for row in db.execute("SELECT id FROM entries ORDER BY id")]
        evidence = config.classification.discover_after
        classifier = Classifier(config.classification, store.active_discovered(evidence))
        spent = 0.0
        for at in range(0, len(ids), _PAGE):
            page = store.entries(ids[at : at + _PAGE], with_sources=False)
            started = time.process_time()
            for entry in page:
                classifier.tag(entry)
            spent += time.process_time() - started
        return spent, len(ids)
    finally:
        app.close()


# What the ingest does not write (the publish's record, nodes, the schema's own rows), and
# the full-text index's shadow tables (filled by inserting into the index itself).
_NOT_STORED = ("published", "nodes", "meta", "sqlite_sequence")


def storing(config: Config, out: Path) -> tuple[float, int]:
    """CPU seconds of SQLite storing the built store's rows alone, and how many rows."""
    empty = out / "empty.sqlite"
    open_store(empty).close()
    db = sqlite3.connect(empty, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")  # as the store runs
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("ATTACH ? AS built", (str(config.paths.store),))
        tables = [
            name
            for (name,) in db.execute(
                "SELECT name FROM built.sqlite_master WHERE type = 'table' ORDER BY name"
            )
            if name not in _NOT_STORED and not name.startswith("search_text_")
        ]
        rows = 0
        started = time.process_time()
        db.execute("BEGIN")
        for name in tables:
            columns = "rowid, *" if name == "search_text" else "*"
            listed = "(rowid, title, summary, body)" if name == "search_text" else ""
            rows += db.execute(
                f"INSERT INTO main.{name} {listed} SELECT {columns} FROM built.{name}"
            ).rowcount
        db.execute("COMMIT")
        return time.process_time() - started, rows
    finally:
        db.close()


def main() -> None:
    config = load(Path(sys.argv[1]))
    by_kind, rendered = rendering(config, Path(sys.argv[2]))
    tag_s, tagged = tagging(config)
    store_s, stored = storing(config, Path(sys.argv[2]))
    print(
        json.dumps(
            {
                "render_cpu_s": sum(by_kind.values()),
                "render_by_kind_s": by_kind,
                "rendered": rendered,
                "tag_cpu_s": tag_s,
                "tagged": tagged,
                "store_cpu_s": store_s,
                "stored_rows": stored,
            }
        )
    )


if __name__ == "__main__":
    main()
