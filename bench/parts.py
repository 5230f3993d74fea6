"""What a cold build cannot leave out, each measured alone on one core, from the store it made:

    .venv/bin/python bench/parts.py CONFIG OUT_DIR

- rendering every file it published: the templates with Jinja2 and the feeds with feedgen (a
  one-core publish of a copy of the store in OUT_DIR that writes no file, only
  `Renderer.render` timed);
- tagging every stored entry with the rules of classify.py.

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


def main() -> None:
    config = load(Path(sys.argv[1]))
    by_kind, rendered = rendering(config, Path(sys.argv[2]))
    tag_s, tagged = tagging(config)
    print(
        json.dumps(
            {
                "render_cpu_s": sum(by_kind.values()),
                "render_by_kind_s": by_kind,
                "rendered": rendered,
                "tag_cpu_s": tag_s,
                "tagged": tagged,
            }
        )
    )


if __name__ == "__main__":
    main()
