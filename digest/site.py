"""Publishing: feeds, pages and OPML in the public folder, rewritten only where they change.

Every output file has a signature: a hash of exactly what it shows (the entries' revs, the
links it carries, the site settings and the templates). A publish renders only the files
whose signature changed or that are missing, writes a file only when its bytes differ, and
always through a temporary file renamed into place, so a reader or a killed process never
sees half a file. Files that are no longer produced (a topic removed from config) are deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
from lxml import etree

from .classify import Subject, subjects
from .config import Config
from .feeds import FORMATS, MEDIA_TYPES, RENDERERS, Category, FeedDoc, FeedItem
from .model import VIETNAM, Entry, Listed, Mark, Progress, no_progress, rfc3339
from .store import Store
from .text import fold

# Bump when the code that renders outputs changes in a way templates do not show.
RENDER_VERSION = "1"
_INDEX_ITEMS = 30
_ENTRY_BATCH = 500  # entry pages planned per store query
# A publish renders and writes in batches of this many outputs, or fewer when they show this
# many entries between them: memory stays flat however large the site.
_BATCH_OUTPUTS = 500
_BATCH_ENTRIES = 2000
_WEEKDAYS = ("Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ Nhật")
_EMPTY_UPDATED = datetime(2000, 1, 1, tzinfo=UTC)  # feeds of a store with no entry at all
_STATE_KEY = "published_state"
_STATIC = ("style.css", "favicon.svg", "favicon.ico")


def vietnam_time(moment: datetime) -> str:
    local = moment.astimezone(VIETNAM)
    return f"{_WEEKDAYS[local.weekday()]}, {local:%d/%m/%Y %H:%M}"


def page_templates(folder: Path) -> jinja2.Environment:
    """The site's Jinja2 templates, autoescaped, with the Vietnam-time filters."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["vn"] = vietnam_time
    env.filters["iso"] = rfc3339
    return env


@dataclass(frozen=True, slots=True)
class PublishReport:
    written: int = 0
    unchanged: int = 0
    removed: int = 0


@dataclass(frozen=True, slots=True)
class Channel:
    """A stream of entries with its own feeds and pages: all, one official, one topic."""

    key: str  # "all", "officials/<slug>", "topics/<slug>": also the feed path
    slug: str
    name: str
    role: str
    title: str
    subtitle: str


@dataclass
class _Output:
    path: str
    signature: str
    render: Callable[[Mapping[str, Entry]], bytes]
    needs: tuple[str, ...] = ()  # ids of entries it shows in full


class PublicDir:
    """The public folder; every write is atomic and skipped when the bytes are the same.

    Files are written in `.tmp/` and renamed into place, so a process killed mid-write leaves
    its half file there, where the next publish deletes it, and nowhere a reader looks (the
    server never answers a name starting with a dot)."""

    TEMPORARY = ".tmp"

    def __init__(self, root: Path) -> None:
        self.root = root
        self._root = str(root)
        self._scratch = root / self.TEMPORARY
        self._scratch_made = False

    def path(self, relative: str) -> Path:
        # Names come from slugs and ids, checked here as text: cheaper than resolving every
        # path, and as strict (no absolute path, no `..`, no empty or hidden segment).
        parts = relative.split("/")
        if relative.startswith("/") or any(p in ("", ".", "..") or p[0] == "." for p in parts):
            raise ValueError(f"refusing to write outside the public folder: {relative}")
        return self.root.joinpath(*parts)

    def exists(self, relative: str) -> bool:
        # Plain strings: this runs for every published file on every no-change build.
        return os.path.isfile(os.path.join(self._root, relative))  # noqa: PTH113, PTH118

    def clear_scratch(self, *, everywhere: bool = False) -> int:
        """Delete what killed writers left behind; `everywhere` also sweeps the whole folder
        for the `.<name>.<pid>.tmp` files that earlier versions wrote beside their targets.
        How many were deleted."""
        found = list(self._scratch.glob("*")) if self._scratch.is_dir() else []
        if everywhere and self.root.is_dir():
            found += [p for p in self.root.rglob(".*.tmp") if self.TEMPORARY not in p.parts]
        for leftover in found:
            leftover.unlink(missing_ok=True)
        self._scratch_made = False  # the folder may be gone (cleaned by hand) by next time
        return len(found)

    def write(self, relative: str, data: bytes) -> bool:
        path = self.path(relative)
        try:
            if path.read_bytes() == data:
                return False
        except OSError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        if not self._scratch_made:
            self._scratch.mkdir(exist_ok=True)
            self._scratch_made = True
        temporary = self._scratch / f"{os.getpid()}-{relative.replace('/', '~')}"
        try:
            temporary.write_bytes(data)
            temporary.replace(path)
        finally:
            temporary.unlink(missing_ok=True)
        return True

    def remove(self, relative: str) -> None:
        self.path(relative).unlink(missing_ok=True)


@dataclass(frozen=True, slots=True)
class _Names:
    """Display names of every slug an entry can carry, and the listings for the index."""

    officials: Mapping[str, str]
    roles: Mapping[str, str]
    topics: Mapping[str, str]
    official_list: Sequence[Subject]
    topic_list: Sequence[Subject]

    @classmethod
    def of(cls, officials: Sequence[Subject], topics: Sequence[Subject]) -> _Names:
        return cls(
            {s.slug: s.name for s in officials},
            {s.slug: s.role for s in officials},
            {s.slug: s.name for s in topics},
            officials,
            topics,
        )


class Publisher:
    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.site = config.site
        self.store = store
        self.public = PublicDir(config.paths.public)
        self.env = page_templates(config.paths.templates)

    # -- the plan -----------------------------------------------------------------------------

    def _templates_hash(self) -> str:
        digest = hashlib.sha256(RENDER_VERSION.encode())
        root = self.config.paths.templates / "site"
        for path in sorted(root.glob("*")):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        return digest.hexdigest()

    def channels(self, names: _Names) -> list[Channel]:
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

    def _url(self, relative: str) -> str:
        return self.site.base_url + relative

    def _context(self) -> _SignatureBase:
        """What every output depends on besides its entries: site settings, templates and
        the names slugs are shown by. When it changes, everything is re-planned."""
        rules = self.config.classification
        return _SignatureBase(
            json.dumps(
                [
                    self.site.base_url,
                    self.site.title,
                    self.site.feed_size,
                    self._templates_hash(),
                    [(o.slug, o.name, o.role, o.roles) for o in rules.officials],
                    [(t.slug, t.name) for t in rules.topics],
                    sorted(self.store.discovered().items()),
                ],
                ensure_ascii=False,
                default=str,
            )
        )

    def plan(self, scope: _Scope, plan: _Run, context: _SignatureBase) -> None:
        """Hand `plan` the outputs `scope` covers, in the order they are to be written."""
        stats = self.store.channel_stats()
        names = _Names.of(*subjects(self.config.classification, stats, self.store.discovered()))
        channels = self.channels(names)
        if scope.everything:
            plan.expected = (  # entries, OPML, the site's own pages, static files, channels
                self.store.count_entries()
                + 3
                + len(_STATIC)
                + sum(4 + 2 * len(self.store.channel_months(c.key)) for c in channels)
            )
            plan.add(self._static_outputs(context))
            plan.add([self._not_found_page(context)])
        for outputs in self._entry_outputs(scope, names, context):
            plan.add(outputs)
        # Order matters to a reader polling during a publish: what is linked to is written
        # before what links to it, so `all` (which readers poll most) comes last.
        listed = {c.key for c in channels}
        for channel in [*channels[1:], channels[0]]:
            if scope.everything or channel.key in scope.months:
                self._channel_outputs(plan, channel, names, context, scope)
        for key in sorted(set(scope.months) - listed):
            plan.remove_channel(key)  # a discovered official with no entries left
        # Both list every channel: a new one (a discovered official's first entry) shows here.
        plan.add([self._opml_output(channels, context), self._follow_page(channels, context)])

    def _static_outputs(self, context: _SignatureBase) -> list[_Output]:
        """The stylesheet and icons, copied as they are."""
        outputs = []
        for name in _STATIC:
            data = (self.config.paths.templates / "site" / name).read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            outputs.append(_Output(name, context.sign("static", name, digest), _constant(data)))
        return outputs

    def _follow_page(self, channels: Sequence[Channel], context: _SignatureBase) -> _Output:
        """How to follow the site, with every feed address."""
        addresses = [(c.title, self._url(f"feeds/{c.key}.atom")) for c in channels]
        urls = {f: self._url(f"feeds/all.{f}") for f in FORMATS}
        feeds = self._feeds_meta(urls, self.site.title)
        daily_at = self.config.digests.daily_at.strftime("%H:%M")

        def render(_: Mapping[str, Entry]) -> bytes:
            template = self.env.get_template("site/follow.html")
            html = template.render(
                site=self.site, root="", feeds=feeds, addresses=addresses, daily_at=daily_at
            )
            return html.encode()

        return _Output("theo-doi.html", context.sign("follow", addresses, daily_at), render)

    def _not_found_page(self, context: _SignatureBase) -> _Output:
        """The page the server shows for a missing path: its links are absolute, since it is
        shown at any depth."""

        def render(_: Mapping[str, Entry]) -> bytes:
            template = self.env.get_template("site/404.html")
            return template.render(site=self.site, root=self.site.base_url, feeds=[]).encode()

        return _Output("404.html", context.sign("404"), render)

    def _channel_outputs(
        self,
        plan: _Run,
        channel: Channel,
        names: _Names,
        context: _SignatureBase,
        scope: _Scope,
    ) -> None:
        size = self.site.feed_size
        key = channel.key
        current = self.store.listed(key, limit=size)
        counts = self.store.channel_months(key)
        if sum(n for _, n in counts) <= size:
            counts = []  # the current documents hold everything: no archives
        order = [m for m, _ in counts]  # newest month first
        units = _archive_units(counts, size)  # newest first
        feed_urls = {f: self._url(f"feeds/{key}.{f}") for f in FORMATS}

        # Archives are Atom only: RFC 5005 is an Atom specification, and RSS and JSON Feed
        # readers do not page through archives (their current documents stay complete). The
        # links are built for the documents planned only: a channel can have thousands.
        def archive_urls(unit: _Unit) -> dict[str, str]:
            return {"atom": self._url(f"feeds/archive/{key}/{unit.name}.atom")}

        html_path = "index.html" if key == "all" else f"{key}.html"
        html_url = self._url(html_path)
        archive_nav = [(_month_label(m), f"archive/{key}/{m}.html", n) for m, n in counts]

        def unit_paths(unit: _Unit) -> tuple[str, str]:
            return f"feeds/archive/{key}/{unit.name}.atom", f"archive/{key}/{unit.name}.html"

        # Which archive documents to plan: all, or the parts a change reaches (every part of
        # a month with a part never published), the documents either side of them in the
        # chain (their prev/next links), and, when a month appears or goes, every part of the
        # months beside it (their pages link it).
        if scope.everything:
            chosen = set(range(len(units)))
        else:
            had = set(self.store.published_paths(f"feeds/archive/{key}/"))
            had |= set(self.store.published_paths(f"archive/{key}/"))
            produced = {p for u in units for p in unit_paths(u)}
            gone = sorted(had - produced)
            plan.removed.extend(gone)
            by_month: dict[str, list[int]] = {}
            for i, u in enumerate(units):
                by_month.setdefault(u.month, []).append(i)
            unpublished = {u for u in units if not set(unit_paths(u)) <= had}
            # A month that gained or lost a part: every part's page lists the parts.
            whole = {u.month for u in unpublished} | {_unit_month(p) for p in gone}
            chosen = set()
            for month in set(scope.months[key]) | whole:
                block = by_month.get(month, [])
                if month not in whole:
                    block = self._reached(key, block, units, scope.months[key][month])
                chosen.update(block)
                if block:
                    chosen.update(i for i in (block[0] - 1, block[-1] + 1) if 0 <= i < len(units))
                if not block or units[block[-1]] in unpublished:  # part 1 comes last
                    beside = [m for m in order if m > month][-1:] + [m for m in order if m < month][
                        :1
                    ]
                    for m in beside:
                        chosen.update(by_month[m])

        def doc(doc_key: str, items: Sequence[Listed], **links: Any) -> FeedDoc:
            return FeedDoc(
                key=doc_key,
                title=channel.title,
                subtitle=channel.subtitle,
                site_name=self.site.title,
                html_url=html_url,
                urls=links.pop("urls"),
                updated=max((h.updated for h in items), default=_EMPTY_UPDATED),
                items=(),
                **links,
            )

        def feed(
            base: str, shell: FeedDoc, items: Sequence[Listed], formats: Sequence[str]
        ) -> None:
            ids = [h.id for h in items]
            signature = context.sign(
                "feed", shell.key, shell.urls, shell.links("atom"), shell.complete, _revs(items)
            )
            plan.add(
                [
                    _Output(
                        f"{base}.{fmt}",
                        signature,
                        self._feed_renderer(shell, ids, fmt, names),
                        tuple(ids),
                    )
                    for fmt in formats
                ]
            )

        def page(path: str, items: Sequence[Listed], args: dict[str, Any]) -> None:
            # Only the index shows counts; in every other signature they would make each new
            # entry re-render every page.
            shown = (
                [(s.slug, s.entries) for s in (*names.official_list, *names.topic_list)]
                if path == "index.html"
                else None
            )
            signature = context.sign("page", path, args["archive"], _revs(items), shown)
            ids = tuple(h.id for h in items[: _INDEX_ITEMS if path == "index.html" else None])
            plan.add([_Output(path, signature, self._page_renderer(path, ids, args, names), ids)])

        month_nav = {m: (_month_label(m), f"archive/{key}/{m}.html", None) for m in order}
        position = {m: i for i, m in enumerate(order)}
        for i in sorted(chosen):
            unit = units[i]
            # Parts count from the month's oldest entry: new entries (the usual change) fill
            # its last part and leave the others as they were.
            skip = max(0, unit.entries - unit.part * size)  # the newer parts, newest first
            items = self.store.listed(
                key,
                month=unit.month,
                offset=skip,
                limit=unit.entries - (unit.part - 1) * size - skip,
            )
            shell = doc(
                f"{key}#{unit.name}",
                items,
                urls=archive_urls(unit),
                current=feed_urls,
                prev_archive=archive_urls(units[i + 1]) if i + 1 < len(units) else None,
                next_archive=archive_urls(units[i - 1]) if i > 0 else None,
            )
            base, html = unit_paths(unit)
            feed(base.removesuffix(".atom"), shell, items, ("atom",))
            # A part links the other parts of its month and the months beside it, without
            # counts: a new entry then rewrites the part it is in, not the pages around it.
            at = position[unit.month]
            nearby = [month_nav[m] for m in order[at + 1 : at + 2]]  # older
            if unit.parts > 1:
                nearby += [
                    (f"phần {j}", f"archive/{key}/{_unit_name(unit.month, j)}.html", None)
                    for j in range(1, unit.parts + 1)
                ]
            nearby += [month_nav[m] for m in order[max(0, at - 1) : at]]  # newer
            page(
                html,
                items,
                {"channel": channel, "urls": feed_urls, "archive": nearby, "unit": unit},
            )
        shell = doc(
            key,
            current,
            urls=feed_urls,
            complete=not units,
            prev_archive=archive_urls(units[0]) if units else None,
        )
        feed(f"feeds/{key}", shell, current, FORMATS)
        page(html_path, current, {"channel": channel, "urls": feed_urls, "archive": archive_nav})

    def _reached(
        self, key: str, block: Sequence[int], units: Sequence[_Unit], mark: Mark
    ) -> list[int]:
        """The indexes (in `block`, one month's units) of the parts holding the entries
        `mark` names and, when entries came or went, every later part (they moved)."""
        if not block:
            return []
        size = self.site.feed_size
        month = units[block[0]].month
        first = self.store.count_before(key, month, mark.first) // size + 1
        last = units[block[0]].parts  # block[0] is the newest part
        if not mark.shifted:
            after = self.store.count_before(key, month, mark.last + timedelta(seconds=1))
            last = max(first, (after - 1) // size + 1)
        return [i for i in block if first <= units[i].part <= last]

    def _feed_renderer(
        self, shell: FeedDoc, ids: Sequence[str], fmt: str, names: _Names
    ) -> Callable[[Mapping[str, Entry]], bytes]:
        def render(full: Mapping[str, Entry]) -> bytes:
            items = [self._item(full[i], names) for i in ids]
            document = replace(shell, items=items)
            return RENDERERS[fmt](document)

        return render

    def _item(self, entry: Entry, names: _Names) -> FeedItem:
        officials = tuple(names.officials.get(s, s) for s in entry.officials)
        categories = tuple(
            Category(s, names.topics.get(s, s), self._url("topics/")) for s in entry.topics
        ) + tuple(
            Category(s, names.officials.get(s, s), self._url("officials/")) for s in entry.officials
        )
        return FeedItem(entry, self._url(f"entries/{entry.id}.html"), officials, categories)

    def _root(self, path: str) -> str:
        return "../" * path.count("/")

    def _feeds_meta(self, urls: Mapping[str, str], title: str) -> list[dict[str, str]]:
        labels = {"atom": "Atom", "rss": "RSS", "json": "JSON Feed"}
        return [
            {"type": MEDIA_TYPES[f], "title": f"{title} ({labels[f]})", "href": urls[f]}
            for f in FORMATS
        ]

    def _page_renderer(
        self, path: str, ids: Sequence[str], args: Mapping[str, Any], names: _Names
    ) -> Callable[[Mapping[str, Entry]], bytes]:
        def render(full: Mapping[str, Entry]) -> bytes:
            items = [full[i] for i in ids]
            channel: Channel = args["channel"]
            root = self._root(path)
            common = {
                "site": self.site,
                "root": root,
                "names": names,
                "feeds": self._feeds_meta(args["urls"], channel.title),
                "channel_urls": args["urls"],
                "channel": channel,
                "archive": args["archive"],
            }
            if path == "index.html":
                html = self.env.get_template("site/index.html").render(
                    items=items,
                    officials=names.official_list,
                    topics=names.topic_list,
                    **common,
                )
            else:
                unit: _Unit | None = args.get("unit")
                heading = channel.title if channel.key != "all" else self.site.title
                if unit is not None:
                    heading += f" — tháng {_month_label(unit.month)}"
                    if unit.parts > 1:
                        heading += f" (phần {unit.part}/{unit.parts})"
                html = self.env.get_template("site/channel.html").render(
                    items=items, heading=heading, subheading=channel.subtitle, **common
                )
            return html.encode()

        return render

    def _entry_outputs(
        self, scope: _Scope, names: _Names, context: _SignatureBase
    ) -> Iterator[list[_Output]]:
        if not scope.everything and not scope.entries:
            return
        ids = None if scope.everything else scope.entries
        for heads in self.store.head_pages(_ENTRY_BATCH, ids):
            # Related titles link to the newest entry of that title, not to the page itself.
            targets = self.store.entries_titled(fold(t) for h in heads for t in h.related)
            outputs = []
            for head in heads:
                related = []
                for title in head.related:
                    target = targets.get(fold(title))
                    related.append((title, target if target != head.id else None))
                outputs.append(
                    _Output(
                        f"entries/{head.id}.html",
                        context.sign("entry", head.rev, related),
                        self._entry_renderer(head.id, related, names),
                        (head.id,),
                    )
                )
            yield outputs

    def _entry_renderer(
        self,
        entry_id: str,
        related: Sequence[tuple[str, str | None]],
        names: _Names,
    ) -> Callable[[Mapping[str, Entry]], bytes]:
        def render(full: Mapping[str, Entry]) -> bytes:
            entry = full[entry_id]
            urls = {f: self._url(f"feeds/all.{f}") for f in FORMATS}
            html = self.env.get_template("site/entry.html").render(
                site=self.site,
                root="../",
                names=names,
                feeds=self._feeds_meta(urls, self.site.title),
                entry=entry,
                related=related,
            )
            return html.encode()

        return render

    def _opml_output(self, channels: Sequence[Channel], context: _SignatureBase) -> _Output:
        rows = [(c.key, c.title, c.subtitle) for c in channels]

        def render(_: Mapping[str, Entry]) -> bytes:
            opml = etree.Element("opml", version="2.0")
            head = etree.SubElement(opml, "head")
            etree.SubElement(head, "title").text = f"{self.site.title} — danh sách nguồn tin"
            body = etree.SubElement(opml, "body")
            groups = {"all": body}
            for key, label in (("officials", "Lãnh đạo Bộ"), ("topics", "Chủ đề")):
                groups[key] = etree.SubElement(body, "outline", text=label, title=label)
            for key, title, subtitle in rows:
                parent = groups[key.split("/")[0]]
                html = "index.html" if key == "all" else f"{key}.html"
                etree.SubElement(
                    parent,
                    "outline",
                    type="rss",
                    text=title,
                    title=title,
                    description=subtitle,
                    language="vi",
                    xmlUrl=self._url(f"feeds/{key}.atom"),
                    htmlUrl=self._url(html),
                )
            data: bytes = etree.tostring(
                opml, pretty_print=True, xml_declaration=True, encoding="UTF-8"
            )
            return data

        return _Output("feeds.opml", context.sign("opml", rows), render)

    # -- running it -----------------------------------------------------------------------------

    def publish(self, progress: Progress = no_progress, *, verify: bool = True) -> PublishReport:
        """Bring the public folder up to date with the store.

        When the context (settings, templates, names) is what was last published, only what
        the changes recorded since can affect is planned; otherwise everything is, and only
        files whose signature changed are rendered. `verify` also checks that every published
        file is still on disk (the daemon does this once, at start)."""
        context = self._context()
        state = context.digest()
        everything = self.store.meta(_STATE_KEY) != state
        self.public.clear_scratch(everywhere=everything)
        scope = _Scope(everything=True)
        if not everything:
            months, ids = self.store.dirty()
            known = self.store.published_paths() if verify else []
            if not all(map(self.public.exists, known)):
                everything = True  # files were deleted by hand: plan and check them all
            elif not months and not ids:
                return PublishReport(0, len(known), 0)
            else:
                scope = _Scope(months, ids)
        run = _Run(self.store, self.public, progress)
        self.plan(scope, run, context)
        run.flush()
        removed = run.removed
        if scope.everything:
            removed += [p for p in self.store.published_paths() if p not in run.produced]
        for path in removed:
            self.public.remove(path)
        if removed:
            self.store.save_published({}, removed)
        self.store.finish_publish(_STATE_KEY, state)
        return PublishReport(run.written, run.unchanged, len(removed))


@dataclass(frozen=True, slots=True)
class _Unit:
    """One archive document: a month, or a part of a month with more entries than a feed."""

    month: str
    entries: int  # in the whole month
    part: int
    parts: int

    @property
    def name(self) -> str:
        return _unit_name(self.month, self.part)


def _unit_name(month: str, part: int) -> str:
    return month if part == 1 else f"{month}-{part}"


def _unit_month(path: str) -> str:
    """The month of an archive document's path (`…/2024-05-2.atom` -> `2024-05`)."""
    return path.rsplit("/", 1)[-1][:7]


def _month_label(month: str) -> str:
    return f"{month[5:]}/{month[:4]}"


def _archive_units(counts: Sequence[tuple[str, int]], size: int) -> list[_Unit]:
    """Archive documents of (month, entries) newest first: each month in parts of at most
    `size` entries, so that no document, and no change, grows with the corpus."""
    units: list[_Unit] = []
    for month, entries in counts:
        parts = -(-entries // size)
        units.extend(_Unit(month, entries, part, parts) for part in range(parts, 0, -1))
    return units


@dataclass(frozen=True, slots=True)
class _Scope:
    """What a publish plans: everything, or the channel months and entry pages changed."""

    months: Mapping[str, Mapping[str, Mark]] = field(default_factory=dict)
    entries: Sequence[str] = ()
    everything: bool = False


class _Run:
    """One publish: outputs arrive in the order they are to be written and are checked,
    rendered and written in batches, so memory holds one batch, never the whole site."""

    def __init__(self, store: Store, public: PublicDir, progress: Progress) -> None:
        self.store = store
        self.public = public
        self.progress = progress
        self.pending: list[_Output] = []
        self.needed = 0
        self.produced: set[str] = set()
        self.removed: list[str] = []
        self.written = 0
        self.unchanged = 0
        self.expected = 0

    def add(self, outputs: Iterable[_Output]) -> None:
        for output in outputs:
            self.pending.append(output)
            self.produced.add(output.path)
            self.needed += len(output.needs)
            if len(self.pending) >= _BATCH_OUTPUTS or self.needed >= _BATCH_ENTRIES:
                self.flush()

    def remove_channel(self, key: str) -> None:
        html = "index.html" if key == "all" else f"{key}.html"
        for prefix in (f"feeds/{key}.", f"feeds/archive/{key}/", f"archive/{key}/", html):
            self.removed.extend(self.store.published_paths(prefix))

    def flush(self) -> None:
        batch, self.pending, self.needed = self.pending, [], 0
        if not batch:
            return
        known = self.store.signatures([o.path for o in batch])
        stale = [
            o for o in batch if known.get(o.path) != o.signature or not self.public.exists(o.path)
        ]
        wanted = sorted({i for o in stale for i in o.needs})
        found = self.store.entries(wanted, with_sources=False) if wanted else []
        full = {e.id: e for e in found}
        done: dict[str, str] = {}
        written = 0
        for output in stale:
            written += self.public.write(output.path, output.render(full))
            done[output.path] = output.signature
        self.written += written
        self.unchanged += len(batch) - written  # signature the same, or the same bytes
        if done:
            self.store.save_published(done, ())
        finished = self.written + self.unchanged
        self.progress("pages", finished, max(finished, self.expected), 0)


class _SignatureBase:
    def __init__(self, base: str) -> None:
        self.base = base

    def digest(self) -> str:
        return hashlib.sha256(self.base.encode()).hexdigest()

    def sign(self, *parts: Any) -> str:
        text = json.dumps([self.base, *parts], ensure_ascii=False, default=str)
        return hashlib.sha256(text.encode()).hexdigest()


def _constant(data: bytes) -> Callable[[Mapping[str, Entry]], bytes]:
    return lambda _: data


def _revs(items: Sequence[Listed]) -> list[str]:
    return [h.rev for h in items]


__all__ = ["Channel", "PublicDir", "PublishReport", "Publisher", "page_templates", "vietnam_time"]
