"""Publishing and tagging on every core: the same bytes as one process, and as before.

A cold build of 200 generated captures (bench/corpus.py, fixed seed) is large enough that
the build tags and renders in helper processes; its files must be those the single-process
build made (tests/data/golden/cold-200.json, by commit bed8147). Helpers that cannot start
leave the build on one core with the same result."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support import ROOT, Project, copy_seeds, toml

from digest import ingest, process, site
from digest.app import make_digest
from digest.config import load
from digest.site import workers

GOLDEN = json.loads((ROOT / "tests" / "data" / "golden" / "cold-200.json").read_text())


def groups(public: Path) -> dict[str, dict[str, object]]:
    """Per folder (as the golden file groups them): how many files, and their hash."""
    found: dict[str, tuple[hashlib._Hash, int]] = {}
    for p in sorted(public.rglob("*")):
        if not p.is_file() or ".tmp" in p.parts:
            continue
        rel = p.relative_to(public).as_posix()
        parts = rel.split("/")
        if parts[0] in ("feeds", "archive") and len(parts) > 2:
            group = "/".join(parts[:2])
        else:
            group = parts[0] if len(parts) > 1 else "."
        digest, count = found.setdefault(group, (hashlib.sha256(), 0))
        digest.update(rel.encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
        found[group] = (digest, count + 1)
    return {g: {"files": n, "sha256": h.hexdigest()} for g, (h, n) in sorted(found.items())}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    seeds = tmp_path_factory.mktemp("corpus") / "seeds"
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "corpus.py"), str(seeds), "--files", "200"],
        check=True,
        capture_output=True,
    )
    return seeds


def project(root: Path, corpus: Path, workers: int) -> Project:
    p = Project(root, None)
    p.seeds.symlink_to(corpus)
    p.write_config(
        toml("site", base_url="https://example.org/tin/") + toml("build", workers=workers)
    )
    return p


def test_a_cold_build_on_two_cores_is_the_single_process_build(
    tmp_path: Path, corpus: Path
) -> None:
    p = project(tmp_path, corpus, 2)
    assert "published: 8761 written" in p.digest("build").stdout
    assert groups(p.public) == GOLDEN
    assert "published: 0 written" in p.digest("build").stdout


@pytest.fixture
def refusing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Helper processes that cannot start, and batches small enough to want them."""

    def cannot(*args: object, **kwargs: object) -> object:
        raise OSError("no more processes")

    monkeypatch.setattr(process, "helpers", cannot)
    monkeypatch.setattr(site, "_PARALLEL", 1)
    monkeypatch.setattr(ingest, "_PARALLEL_TAGS", 1)
    monkeypatch.setattr(ingest, "_PARALLEL_READS", 1)
    yield


def built_on_one_and_two(make_project: Callable[..., Project]) -> tuple[Project, Project]:
    """The seed captures built and published with one worker and with two."""
    one, two = make_project(toml("build", workers=1)), make_project(toml("build", workers=2))
    for p in (one, two):
        copy_seeds(p.seeds)
        app = make_digest(load(p.config))
        try:
            app.build()
            app.publish()
        finally:
            app.close()
    return one, two


def test_helpers_that_cannot_start_leave_the_build_on_one_core(
    make_project: Callable[..., Project], refusing: None, caplog: pytest.LogCaptureFixture
) -> None:
    one, two = built_on_one_and_two(make_project)
    assert "this build reads and tags on one core" in caplog.text
    assert "this publish writes on one core" in caplog.text
    assert groups(two.public) == groups(one.public)
    assert one.entries() == two.entries()


def test_a_batch_whose_helper_died_is_read_and_rendered_here(
    make_project: Callable[..., Project],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A helper reads the entries of its batch itself; when it dies (killed, out of
    memory), the planning process reads them from the store and renders the batch."""

    def died(self: process.Helpers, *args: object) -> Future[workers.Done]:
        future: Future[workers.Done] = Future()
        future.set_exception(BrokenProcessPool("a helper was killed"))
        return future

    monkeypatch.setattr(process.Helpers, "submit", died)
    monkeypatch.setattr(site, "_PARALLEL", 1)
    one, two = built_on_one_and_two(make_project)
    assert "a publishing worker failed; its files are written here instead" in caplog.text
    assert groups(two.public) == groups(one.public)
    assert len(list(two.public.rglob("entries/*.html"))) == len(one.entries()) > 0


def test_batches_tagged_while_the_next_merges_lose_nothing(
    make_project: Callable[..., Project], corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ingest's pipeline: helpers read the next batch and tag this one while it is
    merged with the one before, not stored yet. In batches of 7 captures the articles they
    share cross batches both ways; every article keeps its longest body, its titles and tags
    as in one batch (only which teaser is kept, and so reported, may depend on what was
    stored first), and reading and tagging on the helpers or here stores the same."""
    one, seven, here = (make_project(toml("build", workers=n)) for n in (2, 2, 1))
    found = []
    for p in (one, seven, here):
        shutil.copytree(corpus, p.seeds, dirs_exist_ok=True)
        if p is seven:
            monkeypatch.setattr(ingest, "_BATCH_FILES", 7)
            monkeypatch.setattr(ingest, "_PARALLEL_TAGS", 1)
            monkeypatch.setattr(ingest, "_PARALLEL_READS", 1)
        app = make_digest(load(p.config))
        try:
            report = app.build()
            found.append((report, {e.id: e for e in app.entries()}))
        finally:
            app.close()
    (whole, entries), (batched, in_batches), (_, tagged_here) = found
    assert batched.entries_new == whole.entries_new == len(entries) > 3000
    assert batched.entries_updated == whole.entries_updated == 0
    assert in_batches.keys() == entries.keys()
    for eid, e in entries.items():
        b = in_batches[eid]
        assert (b.title, b.content, b.related) == (e.title, e.content, e.related), eid
        if e.content:
            assert (b.summary, b.officials, b.topics) == (e.summary, e.officials, e.topics), eid
    # Each build stamps its own clock: what it stored beside that is the same.
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    assert {i: replace(e, seen_at=epoch, changed_at=None) for i, e in tagged_here.items()} == {
        i: replace(e, seen_at=epoch, changed_at=None) for i, e in in_batches.items()
    }


def test_helpers_reading_know_renamed_touched_and_copied_files(
    make_project: Callable[..., Project], corpus: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Files read on the helpers (a batch this large is) are parsed only when their content
    is new: 60 renamed and 60 touched captures are recorded, not parsed, and of two copies of
    a capture that went away one takes its place and the other is parsed (it adds nothing)."""
    p = make_project(toml("build", workers=2))
    shutil.copytree(corpus, p.seeds, dirs_exist_ok=True)
    app = make_digest(load(p.config))
    try:
        first = app.build()
        names = sorted(f.name for f in p.seeds.iterdir())
        for name in names[:60]:
            (p.seeds / name).rename(p.seeds / f"renamed-{name}")
        for name in names[60:120]:
            os.utime(p.seeds / name, ns=(1, 1))
        gone = p.seeds / names[120]
        for copy in ("copy-a.txt", "copy-b.txt"):
            shutil.copy(gone, p.seeds / copy)
        gone.unlink()
        again = app.build()
    finally:
        app.close()
    assert (first.files_parsed, first.entries_new) == (200, first.entries_total)
    assert (again.files_renamed, again.files_parsed, again.files_removed) == (61, 1, 0)
    assert again.files_unchanged == 200 - 61 - 1 + 1  # 79 as they were and 60 touched
    assert (again.entries_new, again.entries_updated) == (0, 0)
    assert again.entries_total == first.entries_total
    assert "build helpers failed" not in caplog.text  # read on the helpers, not here
