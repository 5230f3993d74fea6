"""Rendering what the plan names: feeds (through feeds.py), pages (Jinja2, autoescaped) and
OPML (lxml). Each job renders from the entries it shows, read in its batch."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import jinja2
from lxml import etree
from markupsafe import Markup

from ..config import Config
from ..feeds import FORMATS, MEDIA_TYPES, RENDERERS, Category, FeedItem, SharedEntries, render_atom
from ..model import Entry, rfc3339, vietnam_time
from .plan import (
    Channel,
    EntryJob,
    FeedJob,
    FollowJob,
    Job,
    Names,
    NotFoundJob,
    OpmlJob,
    PageJob,
    StaticJob,
    month_label,
)

_LABELS = {"atom": "Atom", "rss": "RSS", "json": "JSON Feed"}
# Stands for a page's way up to the site's root in a list item rendered for several pages:
# escaped text never holds a raw "<", so only the root can be where this is.
_ROOT = Markup("<root>")


@dataclass(frozen=True, slots=True)
class Reuse:
    """What the outputs of one batch build once and share. An entry is in the archives of
    `all` and of each official and topic it names, which a publish plans month by month, so
    they meet in a batch: its Atom entry and its item in a page's list are built once."""

    atom: SharedEntries = field(default_factory=SharedEntries)
    items: dict[str, Markup] = field(default_factory=dict)  # entry id -> _ROOT-marked item
    feed_items: dict[str, FeedItem] = field(default_factory=dict)  # entry id -> its feed item


def page_templates(folder: Path, *, auto_reload: bool = True) -> jinja2.Environment:
    """The site's Jinja2 templates, autoescaped, with the Vietnam-time filters. Without
    `auto_reload`, an edited template is read again only when `Renderer.refresh` asks."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        auto_reload=auto_reload,
    )
    env.filters["vn"] = vietnam_time
    env.filters["iso"] = rfc3339
    return env


class Renderer:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.site = config.site
        # Not a file check for each template of each page (a stat each, a cold build renders
        # tens of thousands): once a publish, in `refresh`.
        self.env = page_templates(config.paths.templates, auto_reload=False)

    def refresh(self) -> None:
        """Read again the templates edited since they were read (the daemon renders for days)."""
        cache = self.env.cache
        if cache is not None and not all(t.is_up_to_date for t in cache.values()):
            cache.clear()

    def url(self, relative: str) -> str:
        return self.site.base_url + relative

    def render(
        self,
        job: Job,
        full: Mapping[str, Entry],
        names: Names,
        reuse: Reuse | None = None,
    ) -> bytes:
        """The bytes of one output; `full` holds the entries it shows, `reuse` what other
        outputs of its batch built (entries are the same within a batch)."""
        reuse = reuse or Reuse()
        match job:
            case FeedJob():
                made = reuse.feed_items
                for i in job.ids:
                    if i not in made:
                        made[i] = self.item(full[i], names)
                doc = replace(job.doc, items=[made[i] for i in job.ids])
                if job.fmt == "atom":
                    return render_atom(doc, reuse.atom)
                return RENDERERS[job.fmt](doc)
            case PageJob():
                return self._page(job, full, names, reuse)
            case EntryJob():
                return self._entry(job, full[job.id], names)
            case StaticJob():
                return (self.config.paths.templates / "site" / job.name).read_bytes()
            case OpmlJob():
                return self._opml(job.channels)
            case FollowJob():
                feeds = self.feeds_meta(self._all_feeds(), self.site.title)
                html = self.env.get_template("site/follow.html").render(
                    site=self.site,
                    root="",
                    feeds=feeds,
                    addresses=job.addresses,
                    daily_at=self.config.digests.daily_at.strftime("%H:%M"),
                    signup_open=self.config.subscriptions.open,
                )
                return html.encode()
            case NotFoundJob():
                # Shown for a missing path at any depth: its links are absolute.
                template = self.env.get_template("site/404.html")
                return template.render(site=self.site, root=self.site.base_url, feeds=[]).encode()
        raise AssertionError(f"no renderer for {job!r}")

    def _all_feeds(self) -> dict[str, str]:
        return {f: self.url(f"feeds/all.{f}") for f in FORMATS}

    def item(self, entry: Entry, names: Names) -> FeedItem:
        """A feed item of `entry`: the same id, link and categories in every feed."""
        officials = tuple(names.officials.get(s, s) for s in entry.officials)
        categories = tuple(
            Category(s, names.topics.get(s, s), self.url("topics/")) for s in entry.topics
        ) + tuple(
            Category(s, names.officials.get(s, s), self.url("officials/")) for s in entry.officials
        )
        return FeedItem(entry, self.url(f"entries/{entry.id}.html"), officials, categories)

    def feeds_meta(self, urls: Mapping[str, str], title: str) -> list[dict[str, str]]:
        return [
            {"type": MEDIA_TYPES[f], "title": f"{title} ({_LABELS[f]})", "href": urls[f]}
            for f in FORMATS
        ]

    def _listed(self, names: Names, reuse: Reuse) -> Callable[[Entry, str], Markup]:
        """A page's list item of an entry, rendered once a batch and given each page's root."""
        macro = self.env.get_template("site/macros.html").module.entry_item  # type: ignore[attr-defined]

        def listed(entry: Entry, root: str) -> Markup:
            made = reuse.items.get(entry.id)
            if made is None:
                made = reuse.items[entry.id] = macro(entry, _ROOT, names)
            return made.replace(_ROOT, root)  # Markup's replace escapes the root

        return listed

    def _page(self, job: PageJob, full: Mapping[str, Entry], names: Names, reuse: Reuse) -> bytes:
        items = [full[i] for i in job.ids]
        channel = job.channel
        common = {
            "site": self.site,
            "root": "../" * job.path.count("/"),
            "names": names,
            "listed": self._listed(names, reuse),
            "feeds": self.feeds_meta(job.urls, channel.title),
            "channel_urls": job.urls,
            "channel": channel,
            "archive": job.archive,
            "signup_open": self.config.subscriptions.open,
            "job_unit": job.unit,
        }
        if job.path == "index.html":
            html = self.env.get_template("site/index.html").render(
                items=items, officials=names.official_list, topics=names.topic_list, **common
            )
            return html.encode()
        heading = channel.title if channel.key != "all" else self.site.title
        if job.unit is not None:
            heading += f" — tháng {month_label(job.unit.month)}"
            if job.unit.parts > 1:
                heading += f" (phần {job.unit.part}/{job.unit.parts})"
        html = self.env.get_template("site/channel.html").render(
            items=items, heading=heading, subheading=channel.subtitle, **common
        )
        return html.encode()

    def _entry(self, job: EntryJob, entry: Entry, names: Names) -> bytes:
        html = self.env.get_template("site/entry.html").render(
            site=self.site,
            root="../",
            names=names,
            feeds=self.feeds_meta(self._all_feeds(), self.site.title),
            entry=entry,
            related=job.related,
        )
        return html.encode()

    def _opml(self, channels: tuple[Channel, ...]) -> bytes:
        opml = etree.Element("opml", version="2.0")
        head = etree.SubElement(opml, "head")
        etree.SubElement(head, "title").text = f"{self.site.title} — danh sách nguồn tin"
        body = etree.SubElement(opml, "body")
        groups = {"all": body}
        for key, label in (("officials", "Lãnh đạo Bộ"), ("topics", "Chủ đề")):
            groups[key] = etree.SubElement(body, "outline", text=label, title=label)
        for c in channels:
            etree.SubElement(
                groups[c.key.split("/")[0]],
                "outline",
                type="rss",
                text=c.title,
                title=c.title,
                description=c.subtitle,
                language="vi",
                xmlUrl=self.url(f"feeds/{c.key}.atom"),
                htmlUrl=self.url(c.page),
            )
        data: bytes = etree.tostring(
            opml, pretty_print=True, xml_declaration=True, encoding="UTF-8"
        )
        return data
