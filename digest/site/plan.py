"""Planning a publish: which files exist, the signature of what each shows, and what to
render into it — read from the store's publish index, with no rendering and no writing.

Every output has a signature: a hash of exactly what it shows (the entries' revs, the links
it carries, the site settings, the templates and the names slugs are shown by). The plan
covers everything, or only what the changes recorded since the last publish can reach: the
channel months marked dirty (the archive parts holding those entries, the documents beside
them in the chain) and the entry pages marked dirty.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from ..classify import Subject, subjects
from ..config import Config
from ..feeds import FORMATS, FeedDoc
from ..model import VIETNAM, EntryHead, Listed, Mark
from ..store import EntryStore, PublishIndex
from ..text import fold

# Bump when the code that renders outputs changes in a way templates do not show.
RENDER_VERSION = "1"
INDEX_ITEMS = 30  # entries the index page shows
STATIC = ("style.css", "favicon.svg", "favicon.ico")
_ENTRY_BATCH = 500  # changed entries' pages planned per store query
_EMPTY_UPDATED = datetime(2000, 1, 1, tzinfo=UTC)  # feeds of a store with no entry at all


@dataclass(frozen=True, slots=True)
class Channel:
    """A stream of entries with its own feeds and pages: all, one official, one topic."""

    key: str  # "all", "officials/<slug>", "topics/<slug>": also the feed path
    slug: str
    name: str
    role: str
    title: str
    subtitle: str

    @property
    def page(self) -> str:
        return "index.html" if self.key == "all" else f"{self.key}.html"


@dataclass(frozen=True, slots=True)
class Names:
    """Display names of every slug an entry can carry, and the listings for the index."""

    officials: Mapping[str, str]
    roles: Mapping[str, str]
    topics: Mapping[str, str]
    official_list: Sequence[Subject]
    topic_list: Sequence[Subject]

    @classmethod
    def of(cls, officials: Sequence[Subject], topics: Sequence[Subject]) -> Names:
        return cls(
            {s.slug: s.name for s in officials},
            {s.slug: s.role for s in officials},
            {s.slug: s.name for s in topics},
            officials,
            topics,
        )


@dataclass(frozen=True, slots=True)
class Unit:
    """One archive document: a month, or a part of a month with more entries than a feed."""

    month: str
    entries: int  # in the whole month
    part: int
    parts: int

    @property
    def name(self) -> str:
        return unit_name(self.month, self.part)


def unit_name(month: str, part: int) -> str:
    return month if part == 1 else f"{month}-{part}"


def unit_month(path: str) -> str:
    """The month of an archive document's path (`…/2024-05-2.atom` -> `2024-05`)."""
    return path.rsplit("/", 1)[-1][:7]


def month_label(month: str) -> str:
    return f"{month[5:]}/{month[:4]}"


def month_span(month: str) -> tuple[datetime, datetime]:
    """The first and last second of a Vietnam calendar month (`YYYY-MM`), in UTC."""
    year, number = int(month[:4]), int(month[5:])
    start = datetime(year, number, 1, tzinfo=VIETNAM)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=VIETNAM)
    return start.astimezone(UTC), (end - timedelta(seconds=1)).astimezone(UTC)


def archive_units(counts: Sequence[tuple[str, int]], size: int) -> list[Unit]:
    """Archive documents of (month, entries) newest first: each month in parts of at most
    `size` entries counted from its oldest entry, so that no document, and no change, grows
    with the corpus."""
    units: list[Unit] = []
    for month, entries in counts:
        parts = -(-entries // size)
        units.extend(Unit(month, entries, part, parts) for part in range(parts, 0, -1))
    return units


# -- what an output is rendered from ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeedJob:
    doc: FeedDoc  # without its items
    ids: tuple[str, ...]
    fmt: str


@dataclass(frozen=True, slots=True)
class PageJob:
    path: str
    ids: tuple[str, ...]
    channel: Channel
    urls: Mapping[str, str]  # the channel's current feeds
    archive: Sequence[tuple[str, str, int | None]]  # (label, path, count) to link
    unit: Unit | None = None  # an archive page's part


@dataclass(frozen=True, slots=True)
class EntryJob:
    id: str
    related: tuple[tuple[str, str | None], ...]  # (title, id of the entry it links) each


@dataclass(frozen=True, slots=True)
class StaticJob:
    name: str


@dataclass(frozen=True, slots=True)
class OpmlJob:
    channels: tuple[Channel, ...]


@dataclass(frozen=True, slots=True)
class FollowJob:
    addresses: tuple[tuple[str, str], ...]  # (channel title, Atom feed URL)


@dataclass(frozen=True, slots=True)
class NotFoundJob:
    pass


Job = FeedJob | PageJob | EntryJob | StaticJob | OpmlJob | FollowJob | NotFoundJob


@dataclass(frozen=True, slots=True)
class Output:
    path: str
    signature: str
    job: Job
    needs: tuple[str, ...] = ()  # ids of entries it shows in full
    group: str = ""  # a month's entry pages and archives: they show the same entries


@dataclass(frozen=True, slots=True)
class Scope:
    """What a publish plans: everything, or the channel months and entry pages changed."""

    months: Mapping[str, Mapping[str, Mark]] = field(default_factory=dict)
    entries: Sequence[str] = ()
    everything: bool = False


class SignatureBase:
    """What every output depends on besides its entries; each output's signature adds what
    it shows."""

    def __init__(self, base: str) -> None:
        self.base = base
        # A signature is the hash of `[base, *parts]` as JSON. The base (settings, templates,
        # names: kilobytes) is encoded and hashed once; each output adds only its own parts.
        opened = json.dumps([base], ensure_ascii=False)[:-1]
        self._hashed = hashlib.sha256(opened.encode())

    def digest(self) -> str:
        return hashlib.sha256(self.base.encode()).hexdigest()

    def sign(self, *parts: Any) -> str:
        rest = json.dumps(parts, ensure_ascii=False, default=str)[1:]  # "]" closes both
        hashed = self._hashed.copy()
        hashed.update(f", {rest}".encode() if parts else rest.encode())
        return hashed.hexdigest()


def _revs(items: Sequence[Listed]) -> list[str]:
    return [h.rev for h in items]


class Planner:
    def __init__(self, config: Config, entries: EntryStore, index: PublishIndex) -> None:
        self.config = config
        self.site = config.site
        self.entries = entries
        self.index = index
        self.removed: list[str] = []  # files a plan found no longer produced
        self.expected = 0  # outputs a full plan will produce, for progress

    def url(self, relative: str) -> str:
        return self.site.base_url + relative

    def context(self) -> SignatureBase:
        """What every output depends on besides its entries: site settings, templates and
        the names slugs are shown by. When it changes, everything is planned again."""
        rules = self.config.classification
        return SignatureBase(
            json.dumps(
                [
                    self.site.base_url,
                    self.site.title,
                    self.site.feed_size,
                    self.site.source_url,
                    self.config.subscriptions.open,  # the sign-up form on the pages
                    self._templates_hash(),
                    [(o.slug, o.name, o.role, o.roles) for o in rules.officials],
                    [(t.slug, t.name) for t in rules.topics],
                    sorted(self.entries.discovered().items()),
                ],
                ensure_ascii=False,
                default=str,
            )
        )

    def _templates_hash(self) -> str:
        digest = hashlib.sha256(RENDER_VERSION.encode())
        root = self.config.paths.templates / "site"
        for path in sorted(root.glob("*")):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        return digest.hexdigest()

    def names(self) -> Names:
        stats = self.index.channel_stats()
        return Names.of(*subjects(self.config.classification, stats, self.entries.discovered()))

    def channels(self, names: Names) -> list[Channel]:
        title = self.site.title
        found = [
            Channel(
                "all", "all", title, "", title, "Hoạt động của Bộ trưởng và các Thứ trưởng Bộ Y tế"
            )
        ]
        for s in names.official_list:
            role = f"{s.role} Bộ Y tế" if s.role else "Lãnh đạo Bộ Y tế"
            found.append(
                Channel(
                    f"officials/{s.slug}",
                    s.slug,
                    s.name,
                    s.role,
                    f"{s.name} — {role}",
                    f"Hoạt động của {role} {s.name}",
                )
            )
        for s in names.topic_list:
            found.append(
                Channel(
                    f"topics/{s.slug}",
                    s.slug,
                    s.name,
                    "",
                    f"{s.name} — {title}",
                    f"Hoạt động của lãnh đạo Bộ Y tế về {s.name}",
                )
            )
        return found

    def plan(self, scope: Scope, names: Names, context: SignatureBase) -> Iterator[Output]:
        """The outputs `scope` covers, in the order they are to be written; files no longer
        produced are added to `removed` on the way."""
        channels = self.channels(names)
        if scope.everything:
            self.expected = (  # entries, OPML, the site's own pages, static files, channels
                self.entries.count_entries()
                + 3
                + len(STATIC)
                + sum(4 + 2 * len(self.index.channel_months(c.key)) for c in channels)
            )
            for name in STATIC:
                data = (self.config.paths.templates / "site" / name).read_bytes()
                digest = hashlib.sha256(data).hexdigest()
                yield Output(name, context.sign("static", name, digest), StaticJob(name))
            yield Output("404.html", context.sign("404"), NotFoundJob())
        # Order matters to a reader polling during a publish: what is linked to is written
        # before what links to it (entry pages, then archives, then the current documents),
        # so `all` (which readers poll most) comes last. Everything goes month by month: a
        # month's entry pages and its archives across the channels show the same entries,
        # which a batch then reads and builds once.
        listed = {c.key for c in channels}
        plans = [
            _ChannelPlan(self, channel, names, context, scope)
            for channel in [*channels[1:], channels[0]]
            if scope.everything or channel.key in scope.months
        ]
        pages = self._entry_outputs(scope, context)
        archives = [p.archives() for p in plans]
        if not scope.everything:  # the changed entries' pages, then the archives they reach
            yield from pages
            pages = iter(())
        yield from heapq.merge(pages, *archives, key=_group, reverse=True)
        for channel_plan in plans:
            yield from channel_plan.current()
        for key in sorted(set(scope.months) - listed):
            self._remove_channel(key)  # a discovered official with no entries left
        # Both list every channel: a new one (a discovered official's first entry) shows here.
        yield Output("feeds.opml", context.sign("opml", _rows(channels)), OpmlJob(tuple(channels)))
        addresses = tuple((c.title, self.url(f"feeds/{c.key}.atom")) for c in channels)
        daily_at = self.config.digests.daily_at.strftime("%H:%M")
        yield Output(
            "theo-doi.html", context.sign("follow", addresses, daily_at), FollowJob(addresses)
        )

    def _remove_channel(self, key: str) -> None:
        html = "index.html" if key == "all" else f"{key}.html"
        for prefix in (f"feeds/{key}.", f"feeds/archive/{key}/", f"archive/{key}/", html):
            self.removed.extend(self.index.published_paths(prefix))

    def _entry_outputs(self, scope: Scope, context: SignatureBase) -> Iterator[Output]:
        """Every entry's page, month by month (marked with it), or the changed entries'."""
        if scope.everything:
            for month, _ in self.index.channel_months("all"):
                yield from self._entry_pages(self.entries.heads(*month_span(month)), context, month)
        elif scope.entries:
            for heads in self.entries.head_pages(_ENTRY_BATCH, scope.entries):
                yield from self._entry_pages(heads, context)

    def _entry_pages(
        self, heads: Sequence[EntryHead], context: SignatureBase, month: str = ""
    ) -> Iterator[Output]:
        # Related titles link to the newest entry of that title, not to the page itself.
        targets = self.index.entries_titled(fold(t) for h in heads for t in h.related)
        for head in heads:
            related = []
            for title in head.related:
                target = targets.get(fold(title))
                related.append((title, target if target != head.id else None))
            yield Output(
                f"entries/{head.id}.html",
                context.sign("entry", head.rev, related),
                EntryJob(head.id, tuple(related)),
                (head.id,),
                month,
            )


def _group(output: Output) -> str:
    return output.group


def _rows(channels: Sequence[Channel]) -> list[tuple[str, str, str]]:
    return [(c.key, c.title, c.subtitle) for c in channels]


class _ChannelPlan:
    """One channel's current feeds and page, and the archive documents a plan reaches."""

    def __init__(
        self,
        planner: Planner,
        channel: Channel,
        names: Names,
        context: SignatureBase,
        scope: Scope,
    ) -> None:
        self.planner = planner
        self.index = planner.index
        self.channel = channel
        self.key = channel.key
        self.names = names
        self.context = context
        self.scope = scope
        self.size = planner.site.feed_size
        counts = self.index.channel_months(self.key)
        if sum(n for _, n in counts) <= self.size:
            counts = []  # the current documents hold everything: no archives
        self.counts = counts
        self.order = [m for m, _ in counts]  # newest month first
        self.position = {m: i for i, m in enumerate(self.order)}
        self.units = archive_units(counts, self.size)  # newest first
        self.feed_urls = {f: planner.url(f"feeds/{self.key}.{f}") for f in FORMATS}

    def archive_urls(self, unit: Unit) -> dict[str, str]:
        # Archives are Atom only: RFC 5005 is an Atom specification, and RSS and JSON Feed
        # readers do not page through archives (their current documents stay complete). The
        # links are built for the documents planned only: a channel can have thousands.
        return {"atom": self.planner.url(f"feeds/archive/{self.key}/{unit.name}.atom")}

    def unit_paths(self, unit: Unit) -> tuple[str, str]:
        return f"feeds/archive/{self.key}/{unit.name}.atom", f"archive/{self.key}/{unit.name}.html"

    def archives(self) -> Iterator[Output]:
        """The archive documents the plan reaches, newest first, grouped by month."""
        for i in sorted(self.chosen()):
            month = self.units[i].month
            yield from (replace(output, group=month) for output in self._archive(i))

    def current(self) -> Iterator[Output]:
        """The current documents and the channel's page (after its archives: they link them)."""
        current = self.index.listed(self.key, limit=self.size)
        shell = self.doc(
            self.key,
            current,
            urls=self.feed_urls,
            complete=not self.units,
            prev_archive=self.archive_urls(self.units[0]) if self.units else None,
        )
        yield from self.feed(f"feeds/{self.key}", shell, current, FORMATS)
        nav = [(month_label(m), f"archive/{self.key}/{m}.html", n) for m, n in self.counts]
        yield self.page(self.channel.page, current, nav)

    def chosen(self) -> set[int]:
        """Which archive documents to plan: all, or the parts a change reaches (every part of
        a month with a part never published), the documents either side of them in the chain
        (their prev/next links), and, when a month appears or goes, every part of the months
        beside it (their pages link it)."""
        units = self.units
        if self.scope.everything:
            return set(range(len(units)))
        marks = self.scope.months[self.key]
        # The last publish wrote every archive it planned, so only the marked months can have
        # parts that appear or go: their files are compared, not the channel's thousands.
        # Archives that appear or go as a whole (the channel crosses a feed's size) are the
        # exception: then all its files are.
        roots = (f"feeds/archive/{self.key}/", f"archive/{self.key}/")
        if units and self.index.published_paths(roots[1], limit=1):
            looked = set(marks)
            prefixes = [root + month for month in sorted(looked) for root in roots]
        else:
            looked = {u.month for u in units}
            prefixes = list(roots)
        had = {path for prefix in prefixes for path in self.index.published_paths(prefix)}
        compared = [u for u in units if u.month in looked]
        produced = {p for u in compared for p in self.unit_paths(u)}
        gone = sorted(had - produced)
        self.planner.removed.extend(gone)
        by_month: dict[str, list[int]] = {}
        for i, u in enumerate(units):
            by_month.setdefault(u.month, []).append(i)
        unpublished = {u for u in compared if not set(self.unit_paths(u)) <= had}
        # A month that gained or lost a part: every part's page lists the parts.
        whole = {u.month for u in unpublished} | {unit_month(p) for p in gone}
        chosen: set[int] = set()
        for month in set(marks) | whole:
            block = by_month.get(month, [])
            if month not in whole:
                block = self.reached(block, marks[month])
            chosen.update(block)
            if block:
                chosen.update(i for i in (block[0] - 1, block[-1] + 1) if 0 <= i < len(units))
            if not block or units[block[-1]] in unpublished:  # part 1 comes last
                older = [m for m in self.order if m < month][:1]
                newer = [m for m in self.order if m > month][-1:]
                for m in newer + older:
                    chosen.update(by_month[m])
        return chosen

    def reached(self, block: Sequence[int], mark: Mark) -> list[int]:
        """The indexes (in `block`, one month's units) of the parts holding the entries
        `mark` names and, when entries came or went, every later part (they moved)."""
        if not block:
            return []
        month = self.units[block[0]].month
        first = self.index.count_before(self.key, month, mark.first) // self.size + 1
        last = self.units[block[0]].parts  # block[0] is the newest part
        if not mark.shifted:
            after = self.index.count_before(self.key, month, mark.last + timedelta(seconds=1))
            last = max(first, (after - 1) // self.size + 1)
        return [i for i in block if first <= self.units[i].part <= last]

    def _archive(self, i: int) -> Iterator[Output]:
        unit, units = self.units[i], self.units
        # Parts count from the month's oldest entry: new entries (the usual change) fill its
        # last part and leave the others as they were.
        skip = max(0, unit.entries - unit.part * self.size)  # the newer parts, newest first
        items = self.index.listed(
            self.key,
            month=unit.month,
            offset=skip,
            limit=unit.entries - (unit.part - 1) * self.size - skip,
        )
        shell = self.doc(
            f"{self.key}#{unit.name}",
            items,
            urls=self.archive_urls(unit),
            current=self.feed_urls,
            prev_archive=self.archive_urls(units[i + 1]) if i + 1 < len(units) else None,
            next_archive=self.archive_urls(units[i - 1]) if i > 0 else None,
        )
        base, html = self.unit_paths(unit)
        yield from self.feed(base.removesuffix(".atom"), shell, items, ("atom",))
        # A part links the other parts of its month and the months beside it, without counts:
        # a new entry then rewrites the part it is in, not the pages around it.
        at = self.position[unit.month]
        nearby = [self._month_nav(m) for m in self.order[at + 1 : at + 2]]  # older
        if unit.parts > 1:
            nearby += [
                (f"phần {j}", f"archive/{self.key}/{unit_name(unit.month, j)}.html", None)
                for j in range(1, unit.parts + 1)
            ]
        nearby += [self._month_nav(m) for m in self.order[max(0, at - 1) : at]]  # newer
        yield self.page(html, items, nearby, unit)

    def _month_nav(self, month: str) -> tuple[str, str, int | None]:
        return (month_label(month), f"archive/{self.key}/{month}.html", None)

    def doc(self, doc_key: str, items: Sequence[Listed], **links: Any) -> FeedDoc:
        return FeedDoc(
            key=doc_key,
            title=self.channel.title,
            subtitle=self.channel.subtitle,
            site_name=self.planner.site.title,
            html_url=self.planner.url(self.channel.page),
            urls=links.pop("urls"),
            updated=max((h.updated for h in items), default=_EMPTY_UPDATED),
            items=(),
            **links,
        )

    def feed(
        self, base: str, shell: FeedDoc, items: Sequence[Listed], formats: Sequence[str]
    ) -> Iterator[Output]:
        ids = tuple(h.id for h in items)
        signature = self.context.sign(
            "feed", shell.key, shell.urls, shell.links("atom"), shell.complete, _revs(items)
        )
        for fmt in formats:
            yield Output(f"{base}.{fmt}", signature, FeedJob(shell, ids, fmt), ids)

    def page(
        self,
        path: str,
        items: Sequence[Listed],
        archive: Sequence[tuple[str, str, int | None]],
        unit: Unit | None = None,
    ) -> Output:
        # Only the index shows counts; in every other signature they would make each new
        # entry re-render every page.
        names = self.names
        shown = (
            [(s.slug, s.entries) for s in (*names.official_list, *names.topic_list)]
            if path == "index.html"
            else None
        )
        signature = self.context.sign("page", path, archive, _revs(items), shown)
        ids = tuple(h.id for h in items[: INDEX_ITEMS if path == "index.html" else None])
        job = PageJob(path, ids, self.channel, self.feed_urls, tuple(archive), unit)
        return Output(path, signature, job, ids)
