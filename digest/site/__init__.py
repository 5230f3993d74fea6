"""Publishing: feeds, pages and OPML in the public folder, rewritten only where they change.

plan.py decides which files, with which signatures, showing which entries (it reads the
store's publish index and renders nothing); render.py turns each into bytes; write.py puts
them in place atomically; workers.py does the last two on every core when there is much to
write. A publish renders only the files whose signature changed or that are missing, in
batches, so memory holds one batch, never the whole site; files no longer produced (a topic
removed from config) are deleted.
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass

from ..config import Config
from ..model import Progress, no_progress
from ..process import Helpers
from ..store import EntryStore, PublishIndex
from .plan import Names, Output, Planner, Scope
from .render import Renderer, page_templates
from .workers import Done, Publish, read_entries, render_and_write, work
from .write import PublicDir

log = logging.getLogger("digest.site")

# A publish renders and writes in batches of this many outputs, or fewer when they show this
# many entries between them: memory stays flat however large the site. A month's entry pages
# and archives show the same entries, which a batch reads and builds once: a batch that is
# half full ends where a month does rather than split the next.
_BATCH_OUTPUTS = 2500
_BATCH_ENTRIES = 2000
_PARALLEL = 400  # files to write in one batch that make a publish start its workers
_PUBLISHES = itertools.count(1)  # numbers this process's publishes for the helpers


@dataclass(frozen=True, slots=True)
class PublishReport:
    written: int = 0
    unchanged: int = 0
    removed: int = 0
    upto: int = 0  # the change log's head this publish covered


class Publisher:
    def __init__(
        self, config: Config, entries: EntryStore, index: PublishIndex, helpers: Helpers
    ) -> None:
        """`helpers`: the build's helper processes (started by the ingest, or here)."""
        self.config = config
        self.entries = entries
        self.index = index
        self.helpers = helpers
        self.public = PublicDir(config.paths.public)
        self.renderer = Renderer(config)

    def publish(self, progress: Progress = no_progress, *, verify: bool = True) -> PublishReport:
        """Bring the public folder up to date with the store.

        When the context (settings, templates, names) is what was last published, only what
        the changes recorded since can affect is planned; otherwise everything is, and only
        files whose signature changed are rendered. `verify` also checks that every published
        file is still on disk (the daemon does this once, at start)."""
        self.renderer.refresh()
        planner = Planner(self.config, self.entries, self.index)
        context = planner.context()
        state = context.digest()
        changes = self.index.changes()  # this node's position in the change log, to its head
        everything = not changes.complete or self.index.published_state() != state
        self.public.begin_publish(everywhere=everything)
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
        run.finish()
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
    rendered and written in batches: by worker processes (workers.py) once a batch has many
    files to write, else here."""

    def __init__(self, publisher: Publisher, names: Names, progress: Progress) -> None:
        self.publisher = publisher
        self.names = names
        self.progress = progress
        self.publish = Publish(next(_PUBLISHES), publisher.public.empty)
        self.handing = False  # batches go to the helpers (from the first large one on)
        self.refused = False  # the helpers could not start: this publish is written here
        self.in_flight: deque[_Batch] = deque()
        self.pending: list[Output] = []
        self.needed: set[str] = set()  # ids of the entries the pending outputs show
        self.produced: set[str] = set()
        self.written = 0
        self.unchanged = 0
        self.expected = 0

    def add(self, output: Output) -> None:
        half = 2 * len(self.pending) >= _BATCH_OUTPUTS or 2 * len(self.needed) >= _BATCH_ENTRIES
        if half and output.group != self.pending[-1].group:
            self.flush()
        self.pending.append(output)
        self.produced.add(output.path)
        self.needed.update(output.needs)
        if len(self.pending) >= _BATCH_OUTPUTS or len(self.needed) >= _BATCH_ENTRIES:
            self.flush()

    def flush(self) -> None:
        batch, self.pending, self.needed = self.pending, [], set()
        if not batch:
            return
        p = self.publisher
        known = p.index.signatures([o.path for o in batch])
        stale = [
            o for o in batch if known.get(o.path) != o.signature or not p.public.exists(o.path)
        ]
        wanted = sorted({i for o in stale for i in o.needs})
        future = self._hand_over(stale, wanted)
        if future is None:
            full = read_entries(p.entries, wanted)
            done = render_and_write(p.renderer, p.public, stale, full, self.names)
            self._record(done, len(batch))
            return
        self.in_flight.append(_Batch(future, stale, wanted, len(batch)))
        while len(self.in_flight) > 2 * p.config.build.workers:  # bounded: memory stays flat
            self._collect()

    def _hand_over(self, outputs: list[Output], wanted: list[str]) -> Future[Done] | None:
        """The batch given to a helper; None to render it here: a small batch before one was
        large enough to hand over, one worker, or helpers that cannot start (then none are
        tried again in this publish)."""
        helpers = self.publisher.helpers
        if self.refused or helpers.count < 2 or (not self.handing and len(outputs) < _PARALLEL):
            return None
        try:
            future = helpers.submit(work, self.publish, outputs, wanted, self.names)
        except Exception:
            log.exception("publishing workers cannot start; this publish writes on one core")
            helpers.close()
            self.refused = True
            return None
        self.handing = True
        return future

    def _collect(self) -> None:
        batch = self.in_flight.popleft()
        try:
            done = batch.future.result()
        except Exception:  # a worker died (killed, out of memory): render here instead
            log.exception("a publishing worker failed; its files are written here instead")
            p = self.publisher
            full = read_entries(p.entries, batch.wanted)
            done = render_and_write(p.renderer, p.public, batch.outputs, full, self.names)
        self._record(done, batch.size)

    def _record(self, done: Done, size: int) -> None:
        signatures, written = done
        self.written += written
        self.unchanged += size - written  # signature the same, or the same bytes
        if signatures:
            self.publisher.index.save_published(signatures, ())
        finished = self.written + self.unchanged
        self.progress("pages", finished, max(finished, self.expected), 0)

    def finish(self) -> None:
        self.flush()
        while self.in_flight:
            self._collect()


@dataclass(frozen=True, slots=True)
class _Batch:
    """Outputs handed to a worker, kept until it answers (to render here if it dies)."""

    future: Future[Done]
    outputs: list[Output]
    wanted: list[str]  # ids of the entries they show
    size: int  # outputs in the batch, the unchanged ones included


__all__ = ["PublicDir", "PublishReport", "Publisher", "page_templates"]
