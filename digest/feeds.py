"""Feed documents: Atom and RSS with feedgen, JSON Feed 1.1 by hand. The only feedgen user.

feedgen 1.0.0 traps handled here: `updated`/`lastBuildDate` default to the build time (we
always set them from the entries); entry links lose `rel` and `type` (python-feedgen issue
135, mended by an extension); naive datetimes raise (ours are aware UTC); `add_entry`
prepends (we append); RSS keeps only `rel=self` links and takes the *last* feed link as the
channel link (archive links are added by the extension, the HTML link is added last).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any

from feedgen.entry import FeedEntry
from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.ext.dc import DcEntryExtension, DcExtension
from feedgen.feed import FeedGenerator
from lxml import etree

from .model import Entry, rfc3339

FORMATS = ("atom", "rss", "json")
MEDIA_TYPES = {
    "atom": "application/atom+xml",
    "rss": "application/rss+xml",
    "json": "application/feed+json",
}
_ATOM_NS = "http://www.w3.org/2005/Atom"
_HISTORY_NS = "http://purl.org/syndication/history/1.0"
_FEED_NAMESPACE = uuid.UUID("0b6b5f5e-8f0e-5a3c-9d1e-4c2f7a9b8e61")  # fixed forever


def entry_uri(entry_id: str) -> str:
    """The id readers key on: the same in Atom, RSS and JSON, and forever."""
    return f"urn:uuid:{entry_id}"


def feed_uri(key: str) -> str:
    return f"urn:uuid:{uuid.uuid5(_FEED_NAMESPACE, key)}"


@dataclass(frozen=True, slots=True)
class Category:
    term: str  # slug
    label: str  # name shown
    scheme: str  # URL of the list the slug belongs to


@dataclass(frozen=True, slots=True)
class FeedItem:
    entry: Entry
    url: str  # the entry's page
    authors: tuple[str, ...]
    categories: tuple[Category, ...]
    html: str | None = None  # the content as HTML; by default the entry's paragraphs


@dataclass(frozen=True, slots=True)
class FeedDoc:
    """One feed document: a channel's current page or one of its monthly archives."""

    key: str  # stable: "all", "officials/dao-hong-lan", "topics/dan-so#2025-07"
    title: str
    subtitle: str
    site_name: str
    html_url: str
    urls: Mapping[str, str]  # format -> this document's own URL
    updated: datetime
    items: Sequence[FeedItem]
    complete: bool = False  # RFC 5005: this document holds every entry of the channel
    current: Mapping[str, str] | None = None  # set on archives: the current document
    prev_archive: Mapping[str, str] | None = None  # older entries
    next_archive: Mapping[str, str] | None = None  # newer entries (archives only)

    def links(self, fmt: str) -> list[tuple[str, str]]:
        """RFC 5005 links of this document in `fmt`; archives exist only as Atom."""
        found = []
        for rel, urls in (
            ("current", self.current),
            ("prev-archive", self.prev_archive),
            ("next-archive", self.next_archive),
        ):
            if urls is not None and fmt in urls:
                found.append((rel, urls[fmt]))
        return found


def _summary(entry: Entry) -> str:
    return entry.summary + (" …" if entry.summary_truncated else "")


def content_html(entry: Entry) -> str | None:
    """The full article as escaped text in paragraphs."""
    if not entry.content:
        return None
    return "".join(f"<p>{escape(p)}</p>" for p in entry.content)


# -- feedgen extensions: what feedgen cannot say itself ---------------------------------------


class _History(BaseExtension):  # type: ignore[misc]
    """RFC 5005 markers and archive links (Atom), and fh:complete in RSS."""

    def __init__(self) -> None:
        self.doc: FeedDoc | None = None

    def extend_ns(self) -> dict[str, str]:
        return {"fh": _HISTORY_NS}

    def _marker(self, parent: Any) -> None:
        assert self.doc is not None
        if self.doc.complete:
            etree.SubElement(parent, f"{{{_HISTORY_NS}}}complete")
        elif self.doc.current is not None:
            etree.SubElement(parent, f"{{{_HISTORY_NS}}}archive")

    def extend_atom(self, feed: Any) -> Any:
        self._marker(feed)
        return feed

    def extend_rss(self, rss: Any) -> Any:
        assert self.doc is not None
        channel = rss.find("channel")
        self_link = channel.find(f"{{{_ATOM_NS}}}link")
        at = list(channel).index(self_link) + 1 if self_link is not None else len(channel)
        for rel, href in reversed(self.doc.links("rss")):
            link = etree.Element(f"{{{_ATOM_NS}}}link", href=href, rel=rel)
            link.attrib["type"] = MEDIA_TYPES["rss"]
            channel.insert(at, link)
        self._marker(channel)
        return rss


class _EntryLinks(BaseEntryExtension):  # type: ignore[misc]
    """Put back the rel and type feedgen 1.0.0 drops from entry links (issue 135)."""

    def __init__(self) -> None:
        self.url = ""

    def extend_atom(self, entry: Any) -> Any:
        for link in entry.iter("link", f"{{{_ATOM_NS}}}link"):
            if link.get("href") == self.url:
                link.set("rel", "alternate")
                link.set("type", "text/html")
        return entry


def _generator(doc: FeedDoc, fmt: str) -> FeedGenerator:
    fg = FeedGenerator()
    fg.register_extension("fh", _History, _EntryLinks, atom=True, rss=True)
    fg.fh.doc = doc
    if fmt == "rss":  # RSS <author> needs an e-mail; dc:creator does not
        # What load_extension("dc") registers, without its search for a `dc_entry` module
        # that is not there: a scan of feedgen's folder for every document.
        fg.register_extension("dc", DcExtension, DcEntryExtension, atom=False, rss=True)
    fg.id(feed_uri(doc.key))
    fg.title(doc.title)
    fg.subtitle(doc.subtitle)
    fg.language("vi")
    fg.author({"name": doc.site_name})
    fg.generator("digest")
    fg.updated(doc.updated)
    fg.lastBuildDate(doc.updated)
    return fg


class _SharedEntry(FeedEntry):  # type: ignore[misc]
    """An entry whose Atom element is built once for every document that shows it. feedgen
    appends the element to each document's tree, which moves it out of the one before:
    each document is written out before the next one is built."""

    _atom: Any = None

    def atom_entry(self, extensions: bool = True) -> Any:
        if self._atom is None:
            self._atom = super().atom_entry(extensions)
        return self._atom


class SharedEntries:
    """The Atom entries of one batch of documents, each built once: an entry is in the
    archive of `all` and in those of each official and topic it names, which a publish
    plans month by month, so they meet in a batch. Atom only: feedgen gives an entry fresh
    extensions in each document it joins, and RSS reads them (dc:creator)."""

    def __init__(self) -> None:
        # By entry id: within a batch an id stands for one item (hashing the item would hash
        # the whole entry, its article included, for each document).
        self._made: dict[tuple[str, str], _SharedEntry] = {}

    def get(self, item: FeedItem, site_name: str) -> _SharedEntry | None:
        return self._made.get((item.entry.id, site_name))

    def add(self, item: FeedItem, site_name: str, made: _SharedEntry) -> None:
        self._made[(item.entry.id, site_name)] = made


def _add_items(
    fg: FeedGenerator, doc: FeedDoc, *, rss: bool = False, shared: SharedEntries | None = None
) -> None:
    for item in doc.items:
        if shared is not None:
            known = shared.get(item, doc.site_name)
            if known is not None:
                fg.add_entry(known, order="append")
                continue
            fe = fg.add_entry(_SharedEntry(), order="append")
            shared.add(item, doc.site_name, fe)
        else:
            fe = fg.add_entry(order="append")
        entry = item.entry
        fe.id(entry_uri(entry.id))
        fe.guid(entry_uri(entry.id), permalink=False)
        fe.title(entry.title)
        fe.link(href=item.url, rel="alternate", type="text/html")
        fe.fh.url = item.url
        fe.published(entry.published)
        fe.updated(entry.updated)
        for name in item.authors or (doc.site_name,):
            fe.author({"name": name})
            if rss:
                fe.dc.dc_creator(name, replace=False)
        for category in item.categories:
            fe.category(term=category.term, label=category.label, scheme=category.scheme)
        fe.summary(_summary(entry) or entry.title)
        html = item.html or content_html(entry)
        if html is not None:
            fe.content(html, type="html")


def render_atom(doc: FeedDoc, shared: SharedEntries | None = None) -> bytes:
    """`shared`: entries built for other documents of a batch, and where this one's go."""
    fg = _generator(doc, "atom")
    fg.link(href=doc.urls["atom"], rel="self", type=MEDIA_TYPES["atom"])
    for rel, href in doc.links("atom"):
        fg.link(href=href, rel=rel, type=MEDIA_TYPES["atom"])
    fg.link(href=doc.html_url, rel="alternate", type="text/html")
    _add_items(fg, doc, shared=shared)
    result: bytes = fg.atom_str(pretty=True, encoding="UTF-8")
    return result


def render_rss(doc: FeedDoc) -> bytes:
    fg = _generator(doc, "rss")
    fg.link(href=doc.urls["rss"], rel="self", type=MEDIA_TYPES["rss"])
    fg.link(href=doc.html_url, rel="alternate", type="text/html")  # last: the channel link
    fg.description(doc.subtitle)
    _add_items(fg, doc, rss=True)
    result: bytes = fg.rss_str(pretty=True, encoding="UTF-8")
    return result


def render_json(doc: FeedDoc) -> bytes:
    """JSON Feed 1.1 (https://jsonfeed.org/version/1.1), served as application/feed+json."""
    feed: dict[str, Any] = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": doc.title,
        "home_page_url": doc.html_url,
        "feed_url": doc.urls["json"],
        "description": doc.subtitle,
        "language": "vi",
        "authors": [{"name": doc.site_name}],
    }
    items = []
    for item in doc.items:
        entry = item.entry
        body: dict[str, Any] = {
            "id": entry_uri(entry.id),
            "url": item.url,
            "title": entry.title,
        }
        html = item.html or content_html(entry)
        if html is not None:
            body["content_html"] = html
        else:
            body["content_text"] = _summary(entry) or entry.title
        body["summary"] = _summary(entry)
        body["date_published"] = rfc3339(entry.published)
        body["date_modified"] = rfc3339(entry.updated)
        body["authors"] = [{"name": name} for name in item.authors or (doc.site_name,)]
        body["tags"] = [c.label for c in item.categories]
        body["language"] = "vi"
        items.append(body)
    feed["items"] = items
    return (json.dumps(feed, ensure_ascii=False, indent=2) + "\n").encode()


RENDERERS = {"atom": render_atom, "rss": render_rss, "json": render_json}
