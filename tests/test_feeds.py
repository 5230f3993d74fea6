"""Feeds: golden files, feedparser, RFC 4287 structure, RSS and JSON Feed rules, archives."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import feedparser
import pytest
from feed_samples import sample_doc
from lxml import etree
from support import DATA, Project, base_config, copy_seeds, toml

from digest.feeds import RENDERERS, SharedEntries, render_atom

ATOM = "{http://www.w3.org/2005/Atom}"
FH = "{http://purl.org/syndication/history/1.0}"
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)\Z")


@pytest.mark.parametrize("fmt", sorted(RENDERERS))
def test_golden_feed(fmt: str) -> None:
    """tests/data/golden/: regenerate with tests/data/regenerate.py golden, review the diff."""
    expected = (DATA / "golden" / f"feed.{fmt}").read_bytes()
    assert RENDERERS[fmt](sample_doc()) == expected


def test_atom_entries_shared_between_documents_are_the_bytes_built_alone() -> None:
    """A batch builds an entry's Atom element once for every document that shows it (the
    archives of `all`, of an official, of a topic): each document is what it is alone."""
    doc = sample_doc()
    other = replace(doc, key="officials/dao-hong-lan", title="Đào Hồng Lan", items=doc.items[:1])
    alone = [render_atom(d) for d in (doc, other, doc)]
    shared = SharedEntries()
    together = [render_atom(d, shared) for d in (doc, other, doc)]
    assert together == alone
    assert together[1].count(b"<entry>") == 1 and together[2].count(b"<entry>") == 2


@pytest.fixture(scope="module")
def public(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("feeds")
    copy_seeds(root / "seeds")
    # A small feed size so that every channel of any size has archives to check.
    config = base_config(toml("site", feed_size=8))
    (root / "config.toml").write_text(config, encoding="utf-8")
    Project(root).digest("build")
    return root / "public"


def feeds(public: Path, ext: str) -> list[Path]:
    return sorted((public / "feeds").rglob(f"*.{ext}"))


def test_every_feed_parses_in_feedparser_without_bozo(public: Path) -> None:
    found = feeds(public, "atom") + feeds(public, "rss")
    assert len(found) > 40
    for path in found:
        parsed = feedparser.parse(path.read_bytes())
        assert not parsed.bozo, (path, parsed.get("bozo_exception"))
        assert parsed.feed.get("language", "vi").startswith("vi")


def check_atom(path: Path) -> None:
    """RFC 4287 structure: what its RELAX NG schema checks, and what it cannot."""
    root = etree.parse(str(path)).getroot()
    assert root.tag == f"{ATOM}feed"
    assert root.get("{http://www.w3.org/XML/1998/namespace}lang") == "vi"
    one = Counter(child.tag for child in root)
    for tag in ("id", "title", "updated"):
        assert one[f"{ATOM}{tag}"] == 1, (path, tag)
    assert one[f"{ATOM}subtitle"] <= 1 and one[f"{ATOM}generator"] <= 1
    links = root.findall(f"{ATOM}link")
    assert [x.get("rel") for x in links].count("self") == 1
    alternates = [(x.get("type"), x.get("hreflang")) for x in links if x.get("rel") == "alternate"]
    assert len(alternates) == len(set(alternates)) == 1
    assert all(x.get("href", "").startswith("http") for x in links)
    assert RFC3339.match(root.findtext(f"{ATOM}updated") or "")
    assert root.findtext(f"{ATOM}id", "").startswith("urn:uuid:")
    feed_author = root.find(f"{ATOM}author") is not None
    newest = None
    ids = []
    for entry in root.findall(f"{ATOM}entry"):
        counts = Counter(child.tag for child in entry)
        for tag in ("id", "title", "updated"):
            assert counts[f"{ATOM}{tag}"] == 1
        for tag in ("published", "summary", "content", "rights", "source"):
            assert counts[f"{ATOM}{tag}"] <= 1
        assert feed_author or counts[f"{ATOM}author"] >= 1
        assert all(a.findtext(f"{ATOM}name") for a in entry.findall(f"{ATOM}author"))
        if counts[f"{ATOM}content"] == 0:
            assert any(x.get("rel") == "alternate" for x in entry.findall(f"{ATOM}link"))
        for link in entry.findall(f"{ATOM}link"):
            assert link.get("rel") == "alternate" and link.get("type") == "text/html"
        for category in entry.findall(f"{ATOM}category"):
            assert category.get("term") and category.get("scheme", "").startswith("http")
        updated = entry.findtext(f"{ATOM}updated") or ""
        published = entry.findtext(f"{ATOM}published") or ""
        assert RFC3339.match(updated) and RFC3339.match(published)
        assert datetime.fromisoformat(published) <= datetime.fromisoformat(updated)
        ids.append(entry.findtext(f"{ATOM}id"))
        newest = max(newest or updated, updated, key=datetime.fromisoformat)
    assert len(ids) == len(set(ids))
    if newest is not None:
        assert datetime.fromisoformat(root.findtext(f"{ATOM}updated") or "") == (
            datetime.fromisoformat(newest)
        )


def test_every_atom_feed_is_structurally_valid(public: Path) -> None:
    for path in feeds(public, "atom"):
        check_atom(path)


def test_every_rss_feed_has_the_required_elements(public: Path) -> None:
    for path in feeds(public, "rss"):
        channel = etree.parse(str(path)).getroot().find("channel")
        assert channel is not None
        for tag in ("title", "link", "description", "language", "lastBuildDate"):
            assert channel.findtext(tag), (path, tag)
        assert channel.findtext("language") == "vi"
        assert channel.findtext("link", "").endswith(".html")  # the HTML page, not a feed
        self_links = [x for x in channel.findall(f"{ATOM}link") if x.get("rel") == "self"]
        assert len(self_links) == 1
        for item in channel.findall("item"):
            assert item.findtext("title") and item.findtext("description")
            assert item.findtext("link", "").startswith("http")
            guid = item.find("guid")
            assert guid is not None and guid.get("isPermaLink") == "false"
            assert item.findtext("pubDate")


def test_every_json_feed_has_the_required_keys(public: Path) -> None:
    for path in feeds(public, "json"):
        feed = json.loads(path.read_text(encoding="utf-8"))
        assert feed["version"] == "https://jsonfeed.org/version/1.1"
        assert feed["title"] and feed["language"] == "vi"
        assert feed["feed_url"].endswith(path.relative_to(public).as_posix())
        for item in feed["items"]:
            assert item["id"].startswith("urn:uuid:")
            assert "content_html" in item or "content_text" in item
            assert item["date_published"].endswith("Z")


def test_ids_dates_and_order_agree_across_formats(public: Path) -> None:
    for atom in feeds(public, "atom"):
        if "archive" in atom.parts:
            assert not atom.with_suffix(".rss").exists()  # archives are Atom only
            continue
        a = feedparser.parse(atom.read_bytes())
        r = feedparser.parse(atom.with_suffix(".rss").read_bytes())
        j = json.loads(atom.with_suffix(".json").read_text(encoding="utf-8"))
        assert [e.id for e in a.entries] == [e.id for e in r.entries]
        assert [e.id for e in a.entries] == [i["id"] for i in j["items"]]
        assert [e.published_parsed for e in a.entries] == [e.published_parsed for e in r.entries]


def test_current_feeds_hold_the_newest_entries_and_archives_hold_the_rest(
    public: Path,
) -> None:
    entries = json.loads(Project(public.parent).digest("entries", "--json").stdout)
    newest = [f"urn:uuid:{e['id']}" for e in entries[:8]]
    current = feedparser.parse((public / "feeds/all.atom").read_bytes())
    assert [e.id for e in current.entries] == newest
    # Follow prev-archive from the current feed to the end: every entry exactly once.
    seen: list[str] = []
    link = next(x.href for x in current.feed.links if x.rel == "prev-archive")
    months = 0
    while link:
        path = public / link.split("/", 3)[3]
        tree = etree.parse(str(path)).getroot()
        assert tree.find(f"{FH}archive") is not None
        current_link = [
            x.get("href") for x in tree.findall(f"{ATOM}link") if x.get("rel") == "current"
        ]
        assert current_link == ["http://127.0.0.1:8080/feeds/all.atom"]
        held = [str(e.findtext(f"{ATOM}id")) for e in tree.findall(f"{ATOM}entry")]
        assert 1 <= len(held) <= 8  # a big month is cut into parts of at most a feed's size
        seen += held
        prev = [
            x.get("href") for x in tree.findall(f"{ATOM}link") if x.get("rel") == "prev-archive"
        ]
        link = prev[0] if prev else ""
        months += 1
    # Newest to oldest without a gap (archives also hold what the current feed shows).
    assert seen == [f"urn:uuid:{e['id']}" for e in entries]
    assert months >= 5
    parts = sorted((public / "feeds/archive/all").glob("*-*-*.atom"))
    assert parts, "no month of the seeds had more entries than the feed size"
    # A channel that fits in one document says so.
    small = etree.parse(str(public / "feeds/topics/nhan-luc-dao-tao.atom")).getroot()
    assert small.find(f"{FH}complete") is not None


def test_feed_dates_come_from_the_store_not_the_build(public: Path) -> None:
    parsed = feedparser.parse((public / "feeds/officials/dao-hong-lan.atom").read_bytes())
    assert parsed.feed.updated == "2026-01-21T07:03:00+00:00"
    assert {e.updated for e in parsed.entries} == {e.published for e in parsed.entries}


def test_escaping_in_xml_html_and_json(project: Project) -> None:
    project.config.write_text(base_config(), encoding="utf-8")
    evil = "Bộ trưởng Bộ Y tế Đào Hồng Lan <script>alert(1)</script> & ]]> \"q\" 'a'\x07"
    project.write_seed(
        "evil.txt",
        f"HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ\n{evil}\nThứ Hai, ngày 16/11/2026 02:00{evil}...\n",
    )
    project.digest("build")
    public = project.public
    for path in feeds(public, "atom") + feeds(public, "rss"):
        text = path.read_text(encoding="utf-8")
        assert "<script>" not in text and "\x07" not in text
        etree.fromstring(path.read_bytes())  # well-formed
        parsed = feedparser.parse(path.read_bytes())
        assert not parsed.bozo
        if "all." in path.name:
            assert parsed.entries[0].title == evil[:-1].strip()
    item = json.loads((public / "feeds/all.json").read_text(encoding="utf-8"))["items"][0]
    assert item["title"] == evil[:-1].strip()
    (page,) = (public / "entries").glob("*.html")
    html = page.read_text(encoding="utf-8")
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; ]]&gt;" in html
    slugs = [p.stem for p in (public / "feeds/officials").glob("*.atom")]
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", s) for s in slugs)
