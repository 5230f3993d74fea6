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
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from lxml import etree

from .classify import Subject, subjects
from .config import Config
from .feeds import FORMATS, MEDIA_TYPES, RENDERERS, Category, FeedDoc, FeedItem
from .merge import link_related
from .model import VIETNAM, Entry, EntryHead, rfc3339
from .store import REVISION_KEY, Store

# Bump when the code that renders outputs changes in a way templates do not show.
RENDER_VERSION = "1"
_INDEX_ITEMS = 30
_ENTRY_BATCH = 500
_WEEKDAYS = ("Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ Nhật")
_EMPTY_UPDATED = datetime(2000, 1, 1, tzinfo=UTC)  # feeds of a store with no entry at all
_STATE_KEY = "published_state"


def vietnam_time(moment: datetime) -> str:
    local = moment.astimezone(VIETNAM)
    return f"{_WEEKDAYS[local.weekday()]}, {local:%d/%m/%Y %H:%M}"


def month_of(moment: datetime) -> str:
    return moment.astimezone(VIETNAM).strftime("%Y-%m")


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
    heads: tuple[EntryHead, ...]  # newest first


@dataclass
class _Output:
    path: str
    signature: str
    render: Callable[[Mapping[str, Entry]], bytes]
    needs: tuple[str, ...] = ()  # ids of entries it shows in full


class PublicDir:
    """The public folder; every write is atomic and skipped when the bytes are the same."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._root = str(root)

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

    def write(self, relative: str, data: bytes) -> bool:
        path = self.path(relative)
        try:
            if path.read_bytes() == data:
                return False
        except OSError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
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
        loader = jinja2.FileSystemLoader(str(config.paths.templates))
        self.env = jinja2.Environment(
            loader=loader,
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
        )
        self.env.filters["vn"] = vietnam_time
        self.env.filters["iso"] = rfc3339

    # -- the plan -----------------------------------------------------------------------------

    def _templates_hash(self) -> str:
        digest = hashlib.sha256(RENDER_VERSION.encode())
        root = self.config.paths.templates / "site"
        for path in sorted(root.glob("*")):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        return digest.hexdigest()

    def channels(self, heads: Sequence[EntryHead], names: _Names) -> list[Channel]:
        by_slug: dict[str, list[EntryHead]] = defaultdict(list)
        for head in heads:
            for slug in head.officials:
                by_slug[f"officials/{slug}"].append(head)
            for slug in head.topics:
                by_slug[f"topics/{slug}"].append(head)
        title = self.site.title
        found = [
            Channel(
                "all",
                "all",
                title,
                "",
                title,
                "Hoạt động của Bộ trưởng và các Thứ trưởng Bộ Y tế",
                tuple(heads),
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
                    tuple(by_slug[f"officials/{s.slug}"]),
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
                    tuple(by_slug[f"topics/{s.slug}"]),
                )
            )
        return found

    def _url(self, relative: str) -> str:
        return self.site.base_url + relative

    def plan(self) -> list[_Output]:
        heads = self.store.heads()
        names = _Names.of(*subjects(self.config.classification, heads, self.store.discovered()))
        channels = self.channels(heads, names)
        context = _SignatureBase(
            json.dumps(
                [
                    self.site.base_url,
                    self.site.title,
                    self.site.feed_size,
                    self._templates_hash(),
                    sorted(names.officials.items()),
                    sorted(names.roles.items()),
                    sorted(names.topics.items()),
                    [(s.slug, s.in_config) for s in names.official_list],
                    [s.slug for s in names.topic_list],
                ],
                ensure_ascii=False,
            )
        )
        site_updated = max((h.updated for h in heads), default=_EMPTY_UPDATED)
        # Order matters to a reader polling during a publish: what is linked to is written
        # before what links to it, so `all` (which readers poll most) comes last.
        css = (self.config.paths.templates / "site" / "style.css").read_bytes()
        outputs = [_Output("style.css", context.sign("css", css.decode()), lambda _: css)]
        outputs.extend(self._entry_outputs(heads, names, context))
        for channel in [*channels[1:], channels[0]]:
            outputs.extend(self._channel_outputs(channel, names, context, site_updated))
        outputs.append(self._opml_output(channels, context))
        return outputs

    def _channel_outputs(
        self, channel: Channel, names: _Names, context: _SignatureBase, site_updated: datetime
    ) -> Iterator[_Output]:
        size = self.site.feed_size
        current = channel.heads[:size]
        months: dict[str, list[EntryHead]] = defaultdict(list)
        if len(channel.heads) > size:
            for head in channel.heads:
                months[month_of(head.published)].append(head)
        order = sorted(months, reverse=True)  # newest month first
        feed_urls = {f: self._url(f"feeds/{channel.key}.{f}") for f in FORMATS}
        # Archives are Atom only: RFC 5005 is an Atom specification, and RSS and JSON Feed
        # readers do not page through archives (their current documents stay complete).
        archive_urls = {
            month: {"atom": self._url(f"feeds/archive/{channel.key}/{month}.atom")}
            for month in order
        }
        html_path = "index.html" if channel.key == "all" else f"{channel.key}.html"
        html_url = self._url(html_path)

        def doc(key: str, items: Sequence[EntryHead], **links: Any) -> tuple[FeedDoc, list[str]]:
            updated = max((h.updated for h in items), default=site_updated)
            shell = FeedDoc(
                key=key,
                title=channel.title,
                subtitle=channel.subtitle,
                site_name=self.site.title,
                html_url=html_url,
                urls=links.pop("urls"),
                updated=updated,
                items=(),
                **links,
            )
            return shell, [h.id for h in items]

        docs: list[tuple[str, FeedDoc, list[str], Sequence[EntryHead], Sequence[str]]] = [
            (
                f"feeds/{channel.key}",
                *doc(
                    channel.key,
                    current,
                    urls=feed_urls,
                    complete=not order,
                    prev_archive=archive_urls[order[0]] if order else None,
                ),
                current,
                FORMATS,
            )
        ]
        for i, month in enumerate(order):
            docs.append(
                (
                    f"feeds/archive/{channel.key}/{month}",
                    *doc(
                        f"{channel.key}#{month}",
                        months[month],
                        urls=archive_urls[month],
                        current=feed_urls,
                        prev_archive=archive_urls[order[i + 1]] if i + 1 < len(order) else None,
                        next_archive=archive_urls[order[i - 1]] if i > 0 else None,
                    ),
                    months[month],
                    ("atom",),
                )
            )
        for base, shell, ids, items, formats in docs:
            signature = context.sign(
                "feed", shell.key, shell.urls, shell.links("atom"), shell.complete, _revs(items)
            )
            for fmt in formats:
                yield _Output(
                    f"{base}.{fmt}",
                    signature,
                    self._feed_renderer(shell, ids, fmt, names),
                    tuple(ids),
                )
        archive_nav = [
            (f"{m[5:]}/{m[:4]}", f"archive/{channel.key}/{m}.html", len(months[m])) for m in order
        ]
        page_args = {"channel": channel, "urls": feed_urls, "archive": archive_nav}
        pages: list[tuple[str, Sequence[EntryHead], dict[str, object]]] = [
            (html_path, current, page_args)
        ]
        for i, month in enumerate(order):
            # A month page links its neighbours only: the full list is on the channel page, so
            # a new month rewrites three pages, not every month page of the channel.
            nearby = archive_nav[max(0, i - 1) : i] + archive_nav[i + 1 : i + 2]
            pages.append(
                (
                    f"archive/{channel.key}/{month}.html",
                    months[month],
                    {"channel": channel, "urls": feed_urls, "archive": nearby, "month": month},
                )
            )
        for path, items, args in pages:
            # Only the index shows counts; in every other signature they would make each new
            # entry re-render every page.
            counts = (
                [(s.slug, s.entries) for s in (*names.official_list, *names.topic_list)]
                if path == "index.html"
                else None
            )
            signature = context.sign("page", path, args["archive"], _revs(items), counts)
            yield _Output(path, signature, self._page_renderer(path, items, args, names))

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
        self, path: str, items: Sequence[EntryHead], args: Mapping[str, Any], names: _Names
    ) -> Callable[[Mapping[str, Entry]], bytes]:
        def render(_: Mapping[str, Entry]) -> bytes:
            channel: Channel = args["channel"]
            root = self._root(path)
            common = {
                "site": self.site,
                "root": root,
                "names": names,
                "feeds": self._feeds_meta(args["urls"], channel.title),
                "channel_urls": args["urls"],
                "archive": args["archive"],
            }
            if path == "index.html":
                html = self.env.get_template("site/index.html").render(
                    items=items[:_INDEX_ITEMS],
                    officials=names.official_list,
                    topics=names.topic_list,
                    **common,
                )
            else:
                month = args.get("month")
                heading = channel.title if channel.key != "all" else self.site.title
                if month:
                    heading += f" — tháng {month[5:]}/{month[:4]}"
                html = self.env.get_template("site/channel.html").render(
                    items=items, heading=heading, subheading=channel.subtitle, **common
                )
            return html.encode()

        return render

    def _entry_outputs(
        self, heads: Sequence[EntryHead], names: _Names, context: _SignatureBase
    ) -> Iterator[_Output]:
        entries_by_id = {h.id: h for h in heads}
        links = link_related(heads)
        for head in heads:
            related = [(title, target) for title, target in links[head.id]]
            signature = context.sign("entry", head.rev, related)
            yield _Output(
                f"entries/{head.id}.html",
                signature,
                self._entry_renderer(head.id, related, names, entries_by_id),
                (head.id,),
            )

    def _entry_renderer(
        self,
        entry_id: str,
        related: Sequence[tuple[str, str | None]],
        names: _Names,
        heads: Mapping[str, EntryHead],
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

    def _state(self) -> str:
        """Everything the public folder depends on; equal states publish equal files."""
        names = [(o.slug, o.name, o.roles) for o in self.config.classification.officials]
        names += [(t.slug, t.name, ()) for t in self.config.classification.topics]
        parts = [self.store.meta(REVISION_KEY), self.site, self._templates_hash(), names]
        return hashlib.sha256(repr(parts).encode()).hexdigest()

    def publish(self, progress: Callable[[str, int, int, int], None]) -> PublishReport:
        state = self._state()
        known = self.store.published()
        if self.store.meta(_STATE_KEY) == state and all(map(self.public.exists, known)):
            return PublishReport(0, len(known), 0)  # nothing it shows changed
        report = self._publish(known, progress)
        with self.store.transaction() as tx:
            tx.set_meta(_STATE_KEY, state)
        return report

    def _publish(
        self, known: Mapping[str, str], progress: Callable[[str, int, int, int], None]
    ) -> PublishReport:
        outputs = self.plan()
        stale = [
            o for o in outputs if known.get(o.path) != o.signature or not self.public.exists(o.path)
        ]
        written = 0
        done: dict[str, str] = {}
        for start in range(0, len(stale), _ENTRY_BATCH):
            batch = stale[start : start + _ENTRY_BATCH]
            wanted = sorted({i for o in batch for i in o.needs})
            full = {e.id: e for e in self.store.entries(wanted)} if wanted else {}
            for output in batch:
                written += self.public.write(output.path, output.render(full))
                done[output.path] = output.signature
            progress("pages", start + len(batch), len(stale), 0)
        produced = {o.path for o in outputs}
        removed = sorted(p for p in known if p not in produced)
        for path in removed:
            self.public.remove(path)
        if done or removed:
            self.store.save_published(done, removed)
        return PublishReport(written, len(outputs) - written, len(removed))


class _SignatureBase:
    def __init__(self, base: str) -> None:
        self.base = base

    def sign(self, *parts: Any) -> str:
        text = json.dumps([self.base, *parts], ensure_ascii=False, default=str)
        return hashlib.sha256(text.encode()).hexdigest()


def _revs(items: Sequence[EntryHead]) -> list[str]:
    return [h.rev for h in items]


__all__ = ["Channel", "PublicDir", "PublishReport", "Publisher", "vietnam_time"]
