"""Rendering and writing on every core: a publish with many files to write hands its batches
to worker processes, each with its own Renderer and PublicDir, while the planning process
reads the store and records what was written.

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


_worker: tuple[Renderer, PublicDir] | None = None  # in a worker process: made once


def _start(config: Config, empty: bool) -> None:
    global _worker
    _worker = (Renderer(config), PublicDir(config.paths.public, empty=empty))


def _work(outputs: Sequence[Output], full: Mapping[str, Entry], names: Names) -> Done:
    assert _worker is not None, "started by Workers"
    return render_and_write(*_worker, outputs, full, names)


class Workers:
    """`count` worker processes for one publish; `empty`: the public folder held nothing
    when it began."""

    def __init__(self, config: Config, count: int, *, empty: bool) -> None:
        self.pool = helpers(count, _start, config, empty)

    def submit(
        self, outputs: Sequence[Output], full: Mapping[str, Entry], names: Names
    ) -> Future[Done]:
        return self.pool.submit(_work, outputs, full, names)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
