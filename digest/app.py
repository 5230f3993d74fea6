"""The facade: one `Digest` made by `make_digest`, running the stages in order.

sources -> parse -> merge -> (classify) -> store. Each stage is its own module; this one
only decides what to read and what to write.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol

from . import sources
from .classify import Classifier, Subject, subjects
from .config import Config
from .merge import entry_id, merge, visible_hash
from .model import Entry, Item, Location, Problem, Progress, no_progress
from .outbox import Sender
from .parse import ParseResult, parse_lines
from .site import Publisher, PublishReport
from .store import SourceState, SqlStore, Store, StoreTransaction

# Files read, parsed and merged per batch: bounds memory on large corpora while keeping
# store round trips few. Merging is order-independent, so batching changes no result.
_BATCH_FILES = 200
_RETAG_PAGE = 2000
_HINT_LIMIT = 1000  # more changed names than this: scanning the folder is as cheap
_CLASSIFIER_KEY = "classifier"


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC).replace(microsecond=0)


@dataclass(frozen=True, slots=True)
class BuildReport:
    files_seen: int = 0
    files_parsed: int = 0
    files_unchanged: int = 0
    files_failed: int = 0
    files_renamed: int = 0
    files_removed: int = 0
    entries_new: int = 0
    entries_updated: int = 0
    entries_total: int = 0
    entries_retagged: int = 0
    problems: tuple[Problem, ...] = ()
    changed_ids: frozenset[str] = frozenset()  # entries whose stored form changed
    seconds: float = 0.0

    @property
    def wrote(self) -> bool:
        return bool(
            self.files_parsed or self.files_renamed or self.files_removed or self.changed_ids
        )


@dataclass
class _Plan:
    """What a scan found compared with the store."""

    seen: int
    unchanged: int
    to_parse: list[sources.SourceFile] = field(default_factory=list)
    touched: list[SourceState] = field(default_factory=list)
    renamed: list[tuple[str, SourceState]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.to_parse or self.touched or self.renamed or self.removed)


def _state(f: sources.SourceFile, sha256: str, items: int) -> SourceState:
    return SourceState(f.name, sha256, f.size, f.mtime_ns, items)


class Digest:
    def __init__(self, config: Config, store: Store, clock: Clock) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.classifier = Classifier(config.classification)
        self.publisher = Publisher(config, store)

    # -- ingest ---------------------------------------------------------------------------

    def _plan(self, only: Collection[str] | None) -> _Plan:
        folder = self.config.paths.seeds
        hinted = sources.stat_names(folder, only) if only is not None else None
        if hinted is not None:
            files, missing = hinted
            known = self.store.source_states({f.name for f in files} | missing)
            if not missing <= set(known):
                # A name that is neither a file nor a known capture: a folder that went away.
                return self._plan(None)
        else:
            files = sources.scan(folder)
            known = self.store.source_states()
        present = {f.name for f in files}
        gone = {name: state for name, state in known.items() if name not in present}
        gone_by_hash = {state.sha256: name for name, state in sorted(gone.items())}
        plan = _Plan(seen=len(files), unchanged=0)
        for f in files:
            old = known.get(f.name)
            if old is not None and (old.size, old.mtime_ns) == (f.size, f.mtime_ns):
                plan.unchanged += 1
                continue
            try:
                data = f.path.read_bytes()
            except OSError as exc:
                plan.problems.append(Problem(f.name, 0, f"cannot read: {exc.strerror}; skipped"))
                continue
            digest = sources.sha256_bytes(data)
            if old is not None and old.sha256 == digest:
                plan.touched.append(_state(f, digest, old.items))
                plan.unchanged += 1
            elif old is None and digest in gone_by_hash:
                previous = gone_by_hash.pop(digest)
                plan.renamed.append((previous, _state(f, digest, gone[previous].items)))
                del gone[previous]
            else:
                plan.to_parse.append(f)  # read again in its batch: keeps memory flat
        plan.removed = sorted(gone)
        return plan

    def build(
        self, progress: Progress = no_progress, *, only: Collection[str] | None = None
    ) -> BuildReport:
        """Ingest what changed in the seeds folder. Writes nothing when nothing changed.

        `only` names the files (relative to the seeds folder) a watcher saw change: they alone
        are looked at, so the cost follows the change, not the folder. Without it, or when a
        name is a folder, the whole folder is scanned."""
        started = time.perf_counter()
        plan = self._plan(only if only is None or len(only) <= _HINT_LIMIT else None)
        retag = self.store.meta(_CLASSIFIER_KEY) != self.classifier.fingerprint
        if plan.empty and not retag:
            return BuildReport(
                files_seen=plan.seen,
                files_unchanged=plan.unchanged,
                entries_total=self.store.count_entries(),
                problems=tuple(plan.problems),
                seconds=time.perf_counter() - started,
            )
        now = self.clock.now()
        problems = list(plan.problems)
        failed = 0
        created: set[str] = set()
        updated: set[str] = set()
        changed: set[str] = set()
        retagged: set[str] = set()
        with self.store.transaction() as tx:
            if retag:
                # Registry or taxonomy changed in config: re-tag from the store, parse nothing.
                retagged = self._retag_all(tx)
                changed |= retagged
                tx.set_meta(_CLASSIFIER_KEY, self.classifier.fingerprint)
            for old, state in plan.renamed:
                tx.rename_source(old, state)
            for state in plan.touched:
                tx.touch_source(state)
            for name in plan.removed:
                tx.forget_source(name)
            for start in range(0, len(plan.to_parse), _BATCH_FILES):
                items: list[Item] = []
                for f in plan.to_parse[start : start + _BATCH_FILES]:
                    state, result, bad, usable = _parse_one(f)
                    failed += not usable
                    problems.extend(bad)
                    found = [(i.source, entry_id(i.title, i.published)) for i in result.items]
                    tx.save_source(state, found, bad)
                    items.extend(result.items)
                self._merge_batch(tx, items, now, created, updated, changed)
                done = min(start + _BATCH_FILES, len(plan.to_parse))
                progress("files", done, len(plan.to_parse), len(created))
        return BuildReport(
            files_seen=plan.seen,
            files_parsed=len(plan.to_parse),
            files_unchanged=plan.unchanged,
            files_failed=failed,
            files_renamed=len(plan.renamed),
            files_removed=len(plan.removed),
            entries_new=len(created),
            entries_updated=len(updated),
            entries_total=self.store.count_entries(),
            entries_retagged=len(retagged),
            problems=tuple(sorted(problems)),
            changed_ids=frozenset(changed),
            seconds=time.perf_counter() - started,
        )

    def _merge_batch(
        self,
        tx: StoreTransaction,
        items: Sequence[Item],
        now: datetime,
        created: set[str],
        updated: set[str],
        changed: set[str],
    ) -> None:
        by_id: dict[str, list[Item]] = {}
        for item in items:
            by_id.setdefault(entry_id(item.title, item.published), []).append(item)
        existing = {e.id: e for e in tx.entries(list(by_id))}
        new: list[Entry] = []
        altered: list[Entry] = []
        found: list[tuple[str, str, str]] = []
        for eid, group in by_id.items():
            old = existing.get(eid)
            merged = self._tagged(merge(old, group, now=now), found)
            if old is None:
                new.append(merged)
                created.add(eid)
            elif merged != old:
                if eid in created:
                    # Still this build's first version: it is new, not updated.
                    merged = replace(merged, changed_at=old.changed_at)
                elif visible_hash(merged) != visible_hash(old):
                    updated.add(eid)
                altered.append(merged)
            else:
                continue
            changed.add(eid)
        tx.upsert_entries(new, altered)
        tx.add_discovered(found)

    def _tagged(self, entry: Entry, found: list[tuple[str, str, str]]) -> Entry:
        tags = self.classifier.tag(entry)
        found.extend((d.slug, d.name, d.role) for d in tags.discovered)
        if (tags.officials, tags.topics) == (entry.officials, entry.topics):
            return entry
        return replace(entry, officials=tags.officials, topics=tags.topics)

    def _retag_all(self, tx: StoreTransaction) -> set[str]:
        retagged: set[str] = set()
        for page in self.store.entry_pages(_RETAG_PAGE):
            found: list[tuple[str, str, str]] = []
            updates = []
            for entry in page:
                tagged = self._tagged(entry, found)
                if tagged is not entry:
                    updates.append(tagged)
                    retagged.add(entry.id)
            tx.set_tags(updates)
            tx.add_discovered(found)
        return retagged

    def sender(self) -> Sender:
        """The digest sender over this store (the mail stage)."""
        assert isinstance(self.store, SqlStore), "the outbox needs the SQL store"
        return Sender(self.config, self.store, self.clock.now)

    def publish(self, progress: Progress = no_progress, *, verify: bool = True) -> PublishReport:
        """Bring the public folder up to date with the store; rewrites only what changed.
        Without `verify`, files deleted by hand from the public folder are not noticed."""
        return self.publisher.publish(progress, verify=verify)

    # -- queries ----------------------------------------------------------------------------

    def subjects(self) -> tuple[list[Subject], list[Subject]]:
        """(officials, topics) with their entry counts and latest entries."""
        stats = self.store.channel_stats()
        return subjects(self.config.classification, stats, self.store.discovered())

    def entries(self) -> list[Entry]:
        return self.store.entries()

    def problems(self) -> list[Problem]:
        return self.store.problems()


def _parse_one(
    f: sources.SourceFile,
) -> tuple[SourceState, ParseResult, list[Problem], bool]:
    """(state, items, problems, usable) of one file, read now."""
    try:
        data = f.path.read_bytes()
    except OSError as exc:
        problem = Problem(f.name, 0, f"cannot read: {exc.strerror}; skipped")
        return _state(f, "", 0), ParseResult((), ()), [problem], False
    decoded = sources.decode(f.name, data)
    if not decoded.usable:
        return _state(f, decoded.sha256, 0), ParseResult((), ()), list(decoded.problems), False
    result = parse_lines(f.name, decoded.lines, last_line_cut=not decoded.ends_with_newline)
    state = _state(f, decoded.sha256, len(result.items))
    return state, result, [*decoded.problems, *result.problems], True


class LockedError(RuntimeError):
    """Another digest process is writing the same store and public folder."""


@contextmanager
def writer_lock(config: Config) -> Iterator[None]:
    """Only one writer of a store and its public folder at a time: a daemon or a build."""
    path = config.paths.store.with_name(config.paths.store.name + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            raise LockedError(
                f"{path}: another digest process (pid {holder}) is writing "
                f"{config.paths.store} and {config.paths.public}; stop it (a running "
                "`digest run` already rebuilds on every change) or wait for it to finish"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)  # closing releases the lock, also when the process dies


def make_digest(config: Config, *, clock: Clock | None = None) -> Digest:
    """The one way to get a Digest: opens the configured store."""
    store = SqlStore.open_sqlite(config.paths.store)
    return Digest(config, store, clock or SystemClock())


__all__ = [
    "BuildReport",
    "Clock",
    "Digest",
    "Location",
    "LockedError",
    "Subject",
    "SystemClock",
    "make_digest",
    "writer_lock",
]
