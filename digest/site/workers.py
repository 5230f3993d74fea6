"""Rendering and writing on every core: a publish with many files to write hands its batches
to worker processes, each with its own Renderer, PublicDir and connection to the store, while
the planning process reads the publish index and records what was written. A worker reads the
entries its batch shows itself: handed over, they were read, pickled and sent by the planning
process and unpickled by the worker, which cost both more than reading them where they are
rendered.

Each output is in exactly one batch, so no file is written twice, and a worker renders with
the same code, templates and entries as the planning process would: the same bytes. Workers
are spawned (not forked: the daemon has threads) once per large publish; a small publish (one
change) never starts them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import Future

from ..config import Config
from ..model import Entry
from ..process import helpers
from ..store import EntryStore, open_store
from .plan import Names, Output
from .render import Renderer, Reuse
from .write import PublicDir

log = logging.getLogger("digest.site")

Done = tuple[dict[str, str], int]  # path -> signature of the outputs rendered; files written


def render_and_write(
    renderer: Renderer,
    public: PublicDir,
    outputs: Sequence[Output],
    full: Mapping[str, Entry],
    names: Names,
) -> Done:
    """Render each output and write it if its bytes changed. An output that fails to render
    (a bug meeting strange text) keeps its last version and is tried again next publish."""
    done: dict[str, str] = {}
    written = 0
    reuse = Reuse()
    for output in outputs:
        try:
            data = renderer.render(output.job, full, names, reuse)
        except Exception:
            log.exception("cannot render %s; kept as it was, tried again next publish", output.path)
            continue
        written += public.write(output.path, data)
        done[output.path] = output.signature
    return done, written


def read_entries(store: EntryStore, ids: Sequence[str]) -> dict[str, Entry]:
    """The entries of `ids` that a batch shows, by id."""
    return {e.id: e for e in store.entries(ids, with_sources=False)} if ids else {}


_worker: tuple[Renderer, PublicDir, EntryStore] | None = None  # in a worker process: made once


def _start(config: Config, empty: bool) -> None:
    global _worker
    # Its own connection, which ends with the process (it holds no lock or lease to give up).
    store = open_store(config.store.url, node=config.store.node, password=config.store.password())
    _worker = (Renderer(config), PublicDir(config.paths.public, empty=empty), store.entries)


def _work(outputs: Sequence[Output], ids: Sequence[str], names: Names) -> Done:
    assert _worker is not None, "started by Workers"
    renderer, public, store = _worker
    return render_and_write(renderer, public, outputs, read_entries(store, ids), names)


class Workers:
    """`count` worker processes for one publish; `empty`: the public folder held nothing
    when it began."""

    def __init__(self, config: Config, count: int, *, empty: bool) -> None:
        self.pool = helpers(count, _start, config, empty)

    def submit(self, outputs: Sequence[Output], ids: Sequence[str], names: Names) -> Future[Done]:
        """Render and write `outputs`, which show the entries of `ids`."""
        return self.pool.submit(_work, outputs, ids, names)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
