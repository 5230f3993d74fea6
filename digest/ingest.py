"""Ingest: which captures changed, read once each, parsed, merged, tagged and stored.

sources -> parse -> merge -> classify -> store, in batches of files, in one transaction: a
build that fails changes nothing. A large build reads, parses and tags on helper processes
while this one merges and stores. No capture can stop a build: whatever goes wrong with one
file or one article is that file's problem, and the rest goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TypeVar

from . import sources
from .classify import Classifier, ForTags, Tags, read_for_tags
from .config import Config
from .merge import Merged, entry_id, merge
from .model import Entry, Item, Problem, Progress, no_progress
from .parse import ParseResult, parse_lines
from .process import Helpers, helper_config
from .store import EntryStore, IngestTransaction, SourceState

# Files read, parsed and merged per batch: bounds memory on large corpora while keeping
# store round trips few. Merging is order-independent, so batching changes no result.
_BATCH_FILES = 200
_RETAG_PAGE = 2000
_PARALLEL_TAGS = 1000  # entries in one batch that make a build tag on every core
_PARALLEL_READS = 50  # files in one batch that make a build read and parse them on every core
_HINT_LIMIT = 1000  # more changed names than this: scanning the folder is as cheap
_CLASSIFIER_KEY = "classifier"

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger("digest.build")


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
    problems: tuple[Problem, ...] = ()  # found by this build, in the files it read
    problems_total: int = 0  # every current problem, as `digest problems` lists them
    changed_ids: frozenset[str] = frozenset()  # entries whose stored form changed
    seconds: float = 0.0

    @property
    def wrote(self) -> bool:
        return bool(
            self.files_parsed or self.files_renamed or self.files_removed or self.changed_ids
        )


@dataclass
class _Plan:
    """What a scan found compared with the store: files whose stat changed are read (once)
    in the build's batches, where their hash says whether they are new, renamed, touched or
    changed."""

    seen: int
    unchanged: int
    changed: list[sources.SourceFile] = field(default_factory=list)
    known: dict[str, SourceState] = field(default_factory=dict)  # of the changed and the gone
    gone: dict[str, SourceState] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.changed or self.gone)


@dataclass
class _Tally:
    """What a build did, counted as its batches go."""

    parsed: int = 0
    unchanged: int = 0
    failed: int = 0
    renamed_from: set[str] = field(default_factory=set)
    created: set[str] = field(default_factory=set)
    updated: set[str] = field(default_factory=set)
    changed: set[str] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)


@dataclass
class _Merging:
    """A merged batch waiting for its tags before it is stored."""

    by_id: dict[str, list[Item]]
    stored: dict[str, Entry]  # as stored when it merged, of its ids not in the batch before
    results: dict[str, Merged]
    tags: Callable[[], list[Tags | Exception]]
    problems: list[Problem]
    before: _Merging | None  # the batch merged before it, stored before it
    kept: dict[str, Entry | None] = field(default_factory=dict)  # each id as stored after it

    def old(self, eid: str) -> Entry | None:
        """The stored version of `eid` this batch's result replaces."""
        if self.before is not None and eid in self.before.kept:
            return self.before.kept[eid]
        return self.stored.get(eid)


def _state(f: sources.SourceFile, sha256: str, items: int) -> SourceState:
    return SourceState(f.name, sha256, f.size, f.mtime_ns, items)


_Parsed = tuple[SourceState, ParseResult, list[Problem], bool]  # state, items, problems, usable


@dataclass(frozen=True, slots=True)
class _Read:
    """One capture read and hashed and, unless its content is known already, parsed, its
    items' entry ids beside them: on a helper process in a large build."""

    unreadable: str = ""  # why it could not be read (then nothing else is set)
    digest: str = ""
    parsed: _Parsed | None = None
    ids: tuple[str, ...] = ()


def _read(f: sources.SourceFile, now: datetime, old: str, gone: Collection[str]) -> _Read:
    """Read `f`; parse it unless it is a touched file (its stored hash `old`) or a new name
    for a file that went away (hash in `gone`): those are only recorded."""
    try:
        data = f.path.read_bytes()
    except OSError as exc:
        return _Read(unreadable=exc.strerror or str(exc))
    digest = sources.sha256_bytes(data)
    if digest == old if old else digest in gone:
        return _Read(digest=digest)
    try:
        parsed = _parse_one(f, data, digest, now)
    except Exception as exc:  # a bug meeting strange input: that file's problem only
        log.exception("parsing %s failed", f.name)
        bad = [Problem(f.name, 0, f"could not be parsed ({type(exc).__name__}); skipped")]
        parsed = (_state(f, digest, 0), ParseResult((), ()), bad, False)
    ids = tuple(entry_id(i.title, i.published) for i in parsed[1].items)
    return _Read(digest=digest, parsed=parsed, ids=ids)


class Ingest:
    def __init__(self, config: Config, store: EntryStore, helpers: Helpers) -> None:
        """`helpers`: the build's helper processes, which the publish after it uses too."""
        self.config = config
        self.store = store
        self.shared = helpers
        self.helpers = _Helpers(self._classifier(), None)

    @property
    def classifier(self) -> Classifier:
        return self.helpers.classifier

    def _use(self, classifier: Classifier) -> None:
        """Tag with `classifier` from now on (on every core for large batches)."""
        self.helpers = _Helpers(classifier, self.shared)

    def _classifier(
        self, tx: IngestTransaction | None = None, known: Classifier | None = None
    ) -> Classifier:
        """The registry, with the leaders enough captures have named (as the store, or this
        build's transaction, knows them): `known` when it has the same ones (compiling the
        rules again costs more than a small build)."""
        evidence = self.config.classification.discover_after
        source = tx if tx is not None else self.store
        discovered = source.active_discovered(evidence)
        if known is not None and known.discovered == discovered:
            return known
        return Classifier(self.config.classification, discovered)

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
        plan = _Plan(seen=len(files), unchanged=0)
        plan.gone = {name: state for name, state in known.items() if name not in present}
        for f in files:
            old = known.get(f.name)
            if old is not None and (old.size, old.mtime_ns) == (f.size, f.mtime_ns):
                plan.unchanged += 1
            else:
                plan.changed.append(f)
                if old is not None:
                    plan.known[f.name] = old
        return plan

    def build(
        self,
        now: datetime,
        progress: Progress = no_progress,
        *,
        only: Collection[str] | None = None,
    ) -> BuildReport:
        """Ingest what changed in the seeds folder. Writes nothing when nothing changed.

        `only` names the files (relative to the seeds folder) a watcher saw change: they alone
        are looked at, so the cost follows the change, not the folder. Without it, or when a
        name is a folder, the whole folder is scanned. No capture can stop a build: whatever
        goes wrong with one file or one article is that file's problem, and the rest goes on."""
        started = time.perf_counter()
        plan = self._plan(only if only is None or len(only) <= _HINT_LIMIT else None)
        self._use(self._classifier(known=self.classifier))
        return self._build(plan, now, progress, started)

    def _build(self, plan: _Plan, now: datetime, progress: Progress, started: float) -> BuildReport:
        retag = self.store.meta(_CLASSIFIER_KEY) != self.classifier.fingerprint
        if plan.empty and not retag:
            return BuildReport(
                files_seen=plan.seen,
                files_unchanged=plan.unchanged,
                entries_total=self.store.count_entries(),
                problems_total=self.store.count_problems(),
                seconds=time.perf_counter() - started,
            )
        tally = _Tally(unchanged=plan.unchanged)
        retagged: set[str] = set()
        # A file that went away with the same content as a new one was renamed.
        gone_by_hash = {s.sha256: n for n, s in sorted(plan.gone.items()) if s.sha256}
        with self.store.transaction() as tx:
            if retag:
                # Registry or taxonomy changed in config: re-tag from the store, parse nothing.
                retagged = self._retag_all(tx)
                tally.changed |= retagged
                tx.set_meta(_CLASSIFIER_KEY, self.classifier.fingerprint)
            # A pipeline: while helpers read and parse the next batch and tag this one, this
            # process merges this one, then stores the one before.
            changed = plan.changed
            batches = [changed[i : i + _BATCH_FILES] for i in range(0, len(changed), _BATCH_FILES)]
            ahead: Callable[[], list[_Read]] | None = None
            tagging: _Merging | None = None
            for n, files in enumerate(batches):
                reading = ahead or self.helpers.read(files, plan, gone_by_hash, now)
                if n + 1 < len(batches):
                    ahead = self.helpers.read(batches[n + 1], plan, gone_by_hash, now)
                reads = reading()
                items: list[tuple[str, Item]] = []
                for f, read in zip(files, reads, strict=True):
                    items.extend(self._ingest_file(tx, f, read, plan, gone_by_hash, tally, now))
                merged = self._merge(tx, items, now, tagging)
                if tagging is not None:
                    self._store(tx, tagging, tally)
                    progress("files", n * _BATCH_FILES, len(changed), len(tally.created))
                tagging = merged
            if tagging is not None:
                self._store(tx, tagging, tally)
                progress("files", len(plan.changed), len(plan.changed), len(tally.created))
            removed = sorted(set(plan.gone) - tally.renamed_from)
            for name in removed:
                tx.forget_source(name)
            # Enough captures now name a new leader (or no longer do): every entry is tagged
            # again with the registry they make, so the leader is found in every form.
            for _ in range(3):
                classifier = self._classifier(tx, self.classifier)
                if classifier.fingerprint == self.classifier.fingerprint:
                    break
                self._use(classifier)
                retagged |= self._retag_all(tx)
                tally.changed |= retagged
                tx.set_meta(_CLASSIFIER_KEY, self.classifier.fingerprint)
        return BuildReport(
            files_seen=plan.seen,
            files_parsed=tally.parsed,
            files_unchanged=tally.unchanged,
            files_failed=tally.failed,
            files_renamed=len(tally.renamed_from),
            files_removed=len(removed),
            entries_new=len(tally.created),
            entries_updated=len(tally.updated),
            entries_total=self.store.count_entries(),
            entries_retagged=len(retagged),
            problems=tuple(sorted(tally.problems)),
            problems_total=self.store.count_problems(),
            changed_ids=frozenset(tally.changed),
            seconds=time.perf_counter() - started,
        )

    def _ingest_file(
        self,
        tx: IngestTransaction,
        f: sources.SourceFile,
        read: _Read,
        plan: _Plan,
        gone_by_hash: dict[str, str],
        tally: _Tally,
        now: datetime,
    ) -> Sequence[tuple[str, Item]]:
        """Record what one file whose stat changed is, from `read`; its items, each with its
        entry's id."""
        old = plan.known.get(f.name)
        if not read.unreadable:
            if old is not None and old.sha256 == read.digest:
                tx.touch_source(_state(f, read.digest, old.items))  # same content, new stat
                tally.unchanged += 1
                return ()
            if old is None and read.digest in gone_by_hash:
                previous = gone_by_hash.pop(read.digest)
                tx.rename_source(previous, _state(f, read.digest, plan.gone[previous].items))
                tally.renamed_from.add(previous)
                return ()
            if read.parsed is None:  # a second copy of a renamed file: the first took the name
                read = _read(f, now, "", ())
        if read.parsed is None:
            # Kept with an impossible mtime, so the next build tries it again.
            problem = Problem(f.name, 0, f"cannot read: {read.unreadable}; skipped")
            tx.save_source(SourceState(f.name, "", f.size, -1, 0), (), [problem])
            tally.failed += 1
            tally.problems.append(problem)
            return ()
        tally.parsed += 1
        state, result, bad, usable = read.parsed
        tally.failed += not usable
        tally.problems.extend(bad)
        identified = list(zip(read.ids, result.items, strict=True))
        found = [(i.source, eid) for eid, i in identified]
        tx.save_source(state, found, bad, known=old is not None)
        return identified

    def _merge(
        self,
        tx: IngestTransaction,
        items: Sequence[tuple[str, Item]],
        now: datetime,
        before: _Merging | None,
    ) -> _Merging:
        """Merge a batch's items with what is stored, or with what the batch `before` it (not
        stored yet) made of them, and start tagging the results."""
        by_id: dict[str, list[Item]] = {}
        for eid, item in items:
            by_id.setdefault(eid, []).append(item)
        ahead = {} if before is None else before.results
        stored = {e.id: e for e in tx.entries([i for i in by_id if i not in ahead])}
        results: dict[str, Merged] = {}
        problems: list[Problem] = []
        for eid, group in by_id.items():
            base = ahead[eid].entry if eid in ahead else stored.get(eid)
            try:
                results[eid] = merge(eid, base, group, now=now)
            except Exception as exc:  # a bug meeting strange input: that article's problem
                log.exception("merging %s failed", eid)
                problems.extend(_skipped(group, exc))
        tags = self.helpers.tag([r.entry for r in results.values()])
        return _Merging(by_id, stored, results, tags, problems, before)

    def _store(self, tx: IngestTransaction, batch: _Merging, tally: _Tally) -> None:
        """Store a merged batch with its tags: what changed, the leaders it names, problems."""
        new: list[Entry] = []
        altered: list[Entry] = []
        found: list[tuple[str, str, str, str]] = []
        problems = batch.problems
        for (eid, result), tags in zip(batch.results.items(), batch.tags(), strict=True):
            old = batch.old(eid)
            batch.kept[eid] = old
            if isinstance(tags, Exception):
                log.error("tagging %s failed: %r", eid, tags)
                problems.extend(_skipped(batch.by_id[eid], tags))
                continue
            merged = _with_tags(result.entry, tags, found)
            problems.extend(result.problems)
            if old is None:
                new.append(merged)
                tally.created.add(eid)
            elif merged != old:
                if eid in tally.created:
                    # Still this build's first version: it is new, not updated.
                    merged = replace(merged, changed_at=old.changed_at)
                elif result.visible_change:
                    tally.updated.add(eid)
                altered.append(merged)
            else:
                continue
            batch.kept[eid] = merged
            tally.changed.add(eid)
        batch.before = None  # its versions are read now: let it go
        tx.upsert_entries(new, altered)
        tx.forget_discovered_in(e.id for e in altered)
        tx.add_discovered(found)
        tx.add_problems(problems)
        tally.problems.extend(problems)

    def _retag_all(self, tx: IngestTransaction) -> set[str]:
        retagged: set[str] = set()
        tx.forget_discovered_in(None)
        for page in tx.entry_pages(_RETAG_PAGE):
            found: list[tuple[str, str, str, str]] = []
            updates = []
            for entry, tags in zip(page, self.helpers.tag(page)(), strict=True):
                if isinstance(tags, Exception):  # keeps the tags it had
                    log.error("tagging %s failed: %r", entry.id, tags)
                    continue
                tagged = _with_tags(entry, tags, found)
                if tagged is not entry:
                    updates.append(tagged)
                    retagged.add(entry.id)
            tx.set_tags(updates)
            tx.add_discovered(found)
        return retagged


def _with_tags(entry: Entry, tags: Tags, found: list[tuple[str, str, str, str]]) -> Entry:
    """`entry` with `tags`; the leaders it names noted in `found`."""
    found.extend((d.slug, d.name, d.role, entry.id) for d in tags.discovered)
    if (tags.officials, tags.topics) == (entry.officials, entry.topics):
        return entry
    return replace(entry, officials=tags.officials, topics=tags.topics)


def _skipped(group: Sequence[Item], exc: Exception) -> list[Problem]:
    why = f"could not be merged ({type(exc).__name__}); item skipped"
    return [Problem(i.source.file, i.source.line, why) for i in group]


class _Helpers:
    """Reading and tagging, on every core when a build has many files or entries: on the
    build's helper processes (`shared`; None: here), which make this classifier from the
    build's config the first time they tag with it. Each entry's result is its Tags, or the
    exception its tagging raised; each file's is its _Read."""

    def __init__(self, classifier: Classifier, shared: Helpers | None) -> None:
        self.classifier = classifier
        self.shared = shared

    def read(
        self,
        files: Sequence[sources.SourceFile],
        plan: _Plan,
        gone: Collection[str],
        now: datetime,
    ) -> Callable[[], list[_Read]]:
        """Begin reading `files` (hashes of files gone: `gone`); the result is had by calling
        what this returns."""
        olds = [plan.known[f.name].sha256 if f.name in plan.known else "" for f in files]
        shares = self._shares(list(zip(files, olds, strict=True)), _PARALLEL_READS)
        if shares:
            try:
                assert self.shared is not None
                gone = frozenset(gone)  # as it is now: the files the helpers skip are read again
                futures = [self.shared.submit(_read_share, share, gone, now) for share in shares]
            except Exception:
                self._give_up()
            else:
                return lambda: self._collect(futures, lambda: _read_here(files, olds, (), now))
        # Here, when asked: what the build did before it by then (renames) counts.
        return lambda: _read_here(files, olds, gone, now)

    def tag(self, entries: Sequence[Entry]) -> Callable[[], list[Tags | Exception]]:
        """Begin tagging `entries`; the result is had by calling what this returns. A large
        batch goes to the helpers, so the caller works meanwhile; a small one is tagged here
        when its result is asked for."""
        reads = [read_for_tags(e) for e in entries]
        shares = self._shares(reads, _PARALLEL_TAGS)
        if shares:
            try:
                assert self.shared is not None
                rules = (self.classifier.fingerprint, self.classifier.discovered)
                futures = [self.shared.submit(_tag_share, *rules, share) for share in shares]
            except Exception:
                self._give_up()
            else:
                return lambda: self._collect(futures, lambda: _tag_each(self.classifier, reads))
        return lambda: _tag_each(self.classifier, reads)

    def _shares(self, work: Sequence[T], least: int) -> list[Sequence[T]]:
        """`work` in a few shares for each helper (so they end together); none when it is
        too little to share, or there are no helpers."""
        if self.shared is None or self.shared.count < 2 or len(work) < least:
            return []
        size = -(-len(work) // (4 * self.shared.count))
        return [work[i : i + size] for i in range(0, len(work), size)]

    def _collect(self, futures: Sequence[Future[list[R]]], here: Callable[[], list[R]]) -> list[R]:
        try:
            return [r for future in futures for r in future.result()]
        except Exception:
            self._give_up()
            return here()

    def _give_up(self) -> None:
        """The helpers cannot start or died: this build reads and tags here from now on (the
        publish after it starts helpers of its own)."""
        log.exception("build helpers failed; this build reads and tags on one core")
        if self.shared is not None:
            self.shared.close()
            self.shared = None


def _read_here(
    files: Sequence[sources.SourceFile], olds: Sequence[str], gone: Collection[str], now: datetime
) -> list[_Read]:
    return [_read(f, now, old, gone) for f, old in zip(files, olds, strict=True)]


def _read_share(
    share: Sequence[tuple[sources.SourceFile, str]], gone: frozenset[str], now: datetime
) -> list[_Read]:
    return [_read(f, now, old, gone) for f, old in share]


def _tag_each(classifier: Classifier, reads: Sequence[ForTags]) -> list[Tags | Exception]:
    found: list[Tags | Exception] = []
    for read in reads:
        try:
            found.append(classifier.tag_read(read))
        except Exception as exc:  # a bug meeting strange text: that article's problem
            found.append(exc)
    return found


_tagger: Classifier | None = None  # in a helper process: the one it last tagged with


def _tag_share(
    fingerprint: str, discovered: dict[str, tuple[str, str]], reads: Sequence[ForTags]
) -> list[Tags | Exception]:
    """Tag on a helper with the build's rules and `discovered` leaders (the classifier whose
    `fingerprint` that is): made here once, not pickled with every share."""
    global _tagger
    if _tagger is None or _tagger.fingerprint != fingerprint:
        _tagger = Classifier(helper_config().classification, discovered)
        if _tagger.fingerprint != fingerprint:
            raise RuntimeError("a helper's rules are not the build's")  # the build tags here
    return _tag_each(_tagger, reads)


def _parse_one(f: sources.SourceFile, data: bytes, digest: str, now: datetime) -> _Parsed:
    """(state, items, problems, usable) of one file's bytes."""
    decoded = sources.decode(f.name, data)
    if not decoded.usable:
        return _state(f, digest, 0), ParseResult((), ()), list(decoded.problems), False
    result = parse_lines(
        f.name, decoded.lines, last_line_cut=not decoded.ends_with_newline, now=now
    )
    state = _state(f, digest, len(result.items))
    return state, result, [*decoded.problems, *result.problems], True
