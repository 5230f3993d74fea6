"""Rendering and writing on every core: a publish with many files to write hands its batches
to worker processes, each with its own Renderer, PublicDir and connection to the store, while
the planning process reads the publish index and records what was written. A worker reads the
entries its batch shows itself: handed over, they were read, pickled and sent by the planning
process and unpickled by the worker, which cost both more than reading them where they are
rendered.

Each output is in exactly one batch, so no file is written twice, and a worker renders with
the same code, templates and entries as the planning process would: the same bytes. The
workers are the build's helpers (process.Helpers), started by the ingest or by the first
large batch; a small publish (one change) never starts them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..model import Entry
from ..process import helper_config
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


_worker: tuple[Renderer, EntryStore] | None = None  # in a helper process: made once
_public: tuple[Publish, PublicDir] | None = None  # the public folder of the publish at hand


def work(publish: Publish, outputs: Sequence[Output], ids: Sequence[str], names: Names) -> Done:
    """On a helper (process.Helpers): render and write `outputs` of `publish`, which show the
    entries of `ids`, read here."""
    global _worker, _public
    config = helper_config()
    if _worker is None:
        # Its own connection, which ends with the process (it holds no lock or lease).
        settings = config.store
        opened = open_store(settings.url, node=settings.node, password=settings.password())
        _worker = (Renderer(config), opened.entries)
    if _public is None or _public[0] != publish:
        _public = (publish, PublicDir(config.paths.public, empty=publish.empty))
    renderer, entries = _worker
    return render_and_write(renderer, _public[1], outputs, read_entries(entries, ids), names)


@dataclass(frozen=True, slots=True)
class Publish:
    """Which publish a batch belongs to, and whether its folder was empty when it began."""

    number: int
    empty: bool
