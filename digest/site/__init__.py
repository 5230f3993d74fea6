"""Publishing: feeds, pages and OPML in the public folder, rewritten only where they change.

plan.py decides which files, with which signatures, showing which entries (it reads the
store's publish index and renders nothing); render.py turns each into bytes; write.py puts
them in place atomically. A publish renders only the files whose signature changed or that
are missing, in batches, so memory holds one batch, never the whole site; files no longer
produced (a topic removed from config) are deleted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..config import Config
from ..model import Progress, no_progress
from ..store import EntryStore, PublishIndex
from .plan import Names, Output, Planner, Scope
from .render import Renderer, page_templates
from .write import PublicDir

log = logging.getLogger("digest.site")

# A publish renders and writes in batches of this many outputs, or fewer when they show this
# many entries between them: memory stays flat however large the site.
_BATCH_OUTPUTS = 500
_BATCH_ENTRIES = 2000


@dataclass(frozen=True, slots=True)
class PublishReport:
    written: int = 0
    unchanged: int = 0
    removed: int = 0
    upto: int = 0  # the change log's head this publish covered


class Publisher:
    def __init__(self, config: Config, entries: EntryStore, index: PublishIndex) -> None:
        self.config = config
        self.entries = entries
        self.index = index
        self.public = PublicDir(config.paths.public)
        self.renderer = Renderer(config)

    def publish(self, progress: Progress = no_progress, *, verify: bool = True) -> PublishReport:
        """Bring the public folder up to date with the store.

        When the context (settings, templates, names) is what was last published, only what
        the changes recorded since can affect is planned; otherwise everything is, and only
        files whose signature changed are rendered. `verify` also checks that every published
        file is still on disk (the daemon does this once, at start)."""
        planner = Planner(self.config, self.entries, self.index)
        context = planner.context()
        state = context.digest()
        changes = self.index.changes()  # this node's position in the change log, to its head
        everything = not changes.complete or self.index.published_state() != state
        self.public.clear_scratch(everywhere=everything)
        scope = Scope(everything=True)
        if not everything:
            known = self.index.published_paths() if verify else []
            if not all(map(self.public.exists, known)):
                everything = True  # files were deleted by hand: plan and check them all
            elif not changes.months and not changes.entries:
                if changes.upto != changes.since:  # changes that touched no page
                    self.index.finish_publish(state, changes.upto)
                return PublishReport(0, len(known), 0, changes.upto)
            else:
                scope = Scope(changes.months, changes.entries)
        names = planner.names()
        run = _Run(self, names, progress)
        for output in planner.plan(scope, names, context):
            run.expected = planner.expected
            run.add(output)
        run.flush()
        removed = planner.removed
        if scope.everything:
            removed += [p for p in self.index.published_paths() if p not in run.produced]
        for path in removed:
            self.public.remove(path)
        if removed:
            self.index.save_published({}, removed)
        self.index.finish_publish(state, changes.upto)
        return PublishReport(run.written, run.unchanged, len(removed), changes.upto)


class _Run:
    """One publish: outputs arrive in the order they are to be written and are checked,
    rendered and written in batches."""

    def __init__(self, publisher: Publisher, names: Names, progress: Progress) -> None:
        self.publisher = publisher
        self.names = names
        self.progress = progress
        self.pending: list[Output] = []
        self.needed = 0
        self.produced: set[str] = set()
        self.written = 0
        self.unchanged = 0
        self.expected = 0

    def add(self, output: Output) -> None:
        self.pending.append(output)
        self.produced.add(output.path)
        self.needed += len(output.needs)
        if len(self.pending) >= _BATCH_OUTPUTS or self.needed >= _BATCH_ENTRIES:
            self.flush()

    def flush(self) -> None:
        batch, self.pending, self.needed = self.pending, [], 0
        if not batch:
            return
        p = self.publisher
        known = p.index.signatures([o.path for o in batch])
        stale = [
            o for o in batch if known.get(o.path) != o.signature or not p.public.exists(o.path)
        ]
        wanted = sorted({i for o in stale for i in o.needs})
        found = p.entries.entries(wanted, with_sources=False) if wanted else []
        full = {e.id: e for e in found}
        done: dict[str, str] = {}
        written = 0
        for output in stale:
            try:
                data = p.renderer.render(output.job, full, self.names)
            except Exception:  # a bug meeting strange text: that file keeps its last version
                log.exception(
                    "cannot render %s; kept as it was, tried again next publish", output.path
                )
                continue
            written += p.public.write(output.path, data)
            done[output.path] = output.signature
        self.written += written
        self.unchanged += len(batch) - written  # signature the same, or the same bytes
        if done:
            p.index.save_published(done, ())
        finished = self.written + self.unchanged
        self.progress("pages", finished, max(finished, self.expected), 0)


__all__ = ["PublicDir", "PublishReport", "Publisher", "page_templates"]
