"""Search as readers get it: the page and the feeds, through the real PublicApp in-process on
the five seeds (SQLite and PostgreSQL), and through the real daemon for a feed reader.

What must be found is tests/data/search/expected.toml, written by reading the captures."""

from __future__ import annotations

import gzip
import json
import re
import tomllib
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import feedparser
import pytest
from conftest import ENGINES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from pg import PostgresServer
from support import Daemon, Project, Response, call, copy_seeds, toml

from digest.app import Digest, make_digest
from digest.config import load
from digest.daemon import pages
from digest.feeds import MEDIA_TYPES
from digest.model import VIETNAM
from digest.search.web import PAGE_SIZE, SearchPages
from digest.server import PublicApp

EXPECTED = tomllib.loads(
    (Path(__file__).parent.parent / "data" / "search" / "expected.toml").read_text("utf-8")
)["query"]
BASE = "https://example.org/tin/"
_RESULT = re.compile(r'<a class="title" href="[^"]*entries/([0-9a-f-]{36})\.html">')


@dataclass
class Site:
    app: Digest
    public_app: PublicApp
    public: Path

    def get(self, target: str, **headers: str) -> Response:
        return call(self.public_app, target, headers=headers)

    def found(self, **params: str | list[str]) -> list[str]:
        """The ids of the entries on a results page, in order."""
        response = self.get("/search?" + urlencode(params, doseq=True))
        assert response.status == 200, response.body.decode()
        return _RESULT.findall(response.body.decode())

    def titles(self, ids: list[str]) -> set[str]:
        by_id = {e.id: e.title for e in self.app.entries()}
        return {by_id[i] for i in ids}


@pytest.fixture(scope="module", params=ENGINES)
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    """The seeds built and published once per engine, served in-process."""
    url = None
    if request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres")
        url = server.create_database()
    project = Project(tmp_path_factory.mktemp(request.param), url)
    copy_seeds(project.seeds)
    project.write_config(toml("site", base_url=BASE))
    project.digest("build")
    app = make_digest(load(project.config))
    shown = pages(app.config)
    search = SearchPages(app.config, app.store, pages=shown)
    public_app = PublicApp(app.config.paths.public, lambda: (200, {}), (search,), pages=shown)
    yield Site(app, public_app, project.public)
    app.close()
    if url is not None:
        server.drop_database(url)


@pytest.mark.parametrize("case", EXPECTED, ids=[c["q"] for c in EXPECTED])
def test_finds_what_reading_the_captures_says(site: Site, case: dict[str, Any]) -> None:
    found = site.found(q=case["q"])
    assert len(found) == len(set(found))
    assert site.titles(found) == set(case["titles"]), case["why"]


def test_every_spelling_of_a_search_finds_the_same_entries(site: Site) -> None:
    spellings = ["bao hiem y te", "bảo hiểm y tế", "BẢO HIỂM Y TẾ", "Bảo Hiểm Y Tế"]
    spellings.append(unicodedata.normalize("NFD", "bảo hiểm y tế"))
    found = [site.found(q=s) for s in spellings]
    assert all(f == found[0] for f in found)
    wanted = next(c for c in EXPECTED if c["q"] == "bao hiem y te")
    assert site.titles(found[0]) == set(wanted["titles"])
    # Both tone-mark conventions, both ways.
    assert site.found(q="khoẻ") == site.found(q="khỏe") == site.found(q="khoe")


def test_matches_are_marked_as_written_and_the_count_said(site: Site) -> None:
    page = site.get("/search?q=" + quote('"bao hiem y te"')).body.decode()
    assert "<mark>bảo hiểm y tế</mark>" in page  # a title: «…chữa bệnh bảo hiểm y tế»
    assert "<mark>Bảo hiểm Y tế</mark>" in page  # a teaser: «Bảo hiểm Y tế (BHYT)»
    assert "Có 3 tin" in page
    words = site.get("/search?q=" + quote("bao hiem y te")).body.decode()
    assert "<mark>bảo</mark> <mark>hiểm</mark> <mark>y</mark> <mark>tế</mark>" in words
    # A match only in the article shows the passage it is in.
    # (Viêng Chăn is in the article's first paragraph, its teaser; Bounfeng further on.)
    teaser = site.get("/search?q=" + quote('"vieng chan"')).body.decode()
    assert "<mark>Viêng Chăn</mark>" in teaser and 'class="passage"' not in teaser
    article = site.get("/search?q=bounfeng").body.decode()
    assert 'class="passage"' in article and "<mark>Bounfeng</mark> Phoummalaysith" in article


def test_filters_alone_are_a_combination_newest_first(site: Site) -> None:
    entries = site.app.entries()
    lan = {e.id for e in entries if "dao-hong-lan" in e.officials}
    topic = next(t for e in entries if e.id in lan for t in e.topics)
    both = [e for e in entries if "dao-hong-lan" in e.officials and topic in e.topics]
    found = site.found(official="dao-hong-lan", topic=topic)
    assert found == [e.id for e in both][:PAGE_SIZE]  # entries() is newest first
    # A date range alone: Vietnam days, both included.
    day = both[0].published.astimezone(VIETNAM).date()
    on_day = site.found(**{"from": day.isoformat(), "to": day.isoformat()})
    assert on_day == [e.id for e in entries if e.published.astimezone(VIETNAM).date() == day]


def test_pages_of_results_follow_one_another(site: Site) -> None:
    first = site.found(q="y te", sort="date")
    second = site.found(q="y te", sort="date", page="2")
    assert len(first) == PAGE_SIZE and second and not set(first) & set(second)
    newest = [e.id for e in site.app.entries() if e.id in set(first) | set(second)]
    assert first + second == newest[: len(first) + len(second)]
    page = site.get("/search?q=y+te&sort=date&page=2").body.decode()
    assert 'rel="prev"' in page and "Trang 2/" in page


def test_feeds_of_a_search_carry_the_static_feeds_ids_and_links(site: Site) -> None:
    static = feedparser.parse((site.public / "feeds" / "all.atom").read_bytes())
    links = {e.id: e.link for e in static.entries}
    # The page's entries (fewer than a page here), under the ids and links readers know.
    ids = {f"urn:uuid:{i}" for i in site.found(q="dao hong lan")}
    document = json.loads(site.get("/search.json?q=dao+hong+lan").body)
    for fmt in ("atom", "rss", "json"):
        response = site.get(f"/search.{fmt}?q=dao+hong+lan")
        assert response.status == 200
        assert response.headers["content-type"] == f"{MEDIA_TYPES[fmt]}; charset=utf-8"
        if fmt == "json":  # feedparser reads no JSON Feed
            found = {item["id"]: item["url"] for item in document["items"]}
        else:
            parsed = feedparser.parse(response.body)
            assert not parsed.bozo, fmt
            found = {item.id: item.link for item in parsed.entries}
        assert set(found) == ids, fmt
        assert {i: found[i] for i in ids if i in links} == {i: links[i] for i in ids if i in links}
    assert document["feed_url"] == BASE + "search.json?q=dao+hong+lan"
    published = [i["date_published"] for i in document["items"]]
    assert published == sorted(published, reverse=True)  # a feed is newest first


def test_a_search_feed_answers_conditional_gets_like_a_static_file(site: Site) -> None:
    target = "/search.atom?q=" + quote("bảo hiểm") + "&official=dao-hong-lan"
    first = site.get(target)
    etag = first.headers["etag"]
    assert etag.startswith('W/"') and first.headers["cache-control"] == "public, max-age=60"
    again = site.get(target, **{"if-none-match": etag})
    assert again.status == 304 and again.body == b"" and again.headers["etag"] == etag
    assert site.get(target, **{"if-none-match": '"other"'}).status == 200
    zipped = site.get(target, **{"accept-encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert gzip.decompress(zipped.body) == first.body
    head = call(site.public_app, target, method="HEAD")
    assert head.status == 200 and head.body == b""
    assert int(head.headers["content-length"]) == len(first.body)


@pytest.mark.parametrize(
    ("target", "said"),
    [
        ("/search?q=%22", "Không có từ nào để tìm"),
        ("/search?q=NEAR", "Không có từ nào để tìm"),
        ("/search?q=*", "Không có từ nào để tìm"),
        ("/search?q=" + "a" * 501, "tối đa 500 ký tự"),
        ("/search?q=y&official=nguoi-la", "Không có lãnh đạo nào"),
        ("/search?from=32/13/2026", "không phải một ngày"),
        ("/search.atom?q=%22%22", "Không có từ nào để tìm"),
        ("/search.rss", "Hãy thêm từ cần tìm"),
    ],
)
def test_bad_input_is_told_in_vietnamese_with_400(site: Site, target: str, said: str) -> None:
    response = site.get(target)
    assert response.status == 400
    assert said in response.body.decode()


def test_an_empty_search_asks_for_words_and_other_methods_are_refused(site: Site) -> None:
    empty = site.get("/search")
    assert empty.status == 200 and "Hãy gõ từ cần tìm" in empty.body.decode()
    assert call(site.public_app, "/search?q=y", method="POST").status == 405
    many = "&".join(f"q{i}=x" for i in range(60))
    assert site.get("/search?" + many).status == 400


def test_what_a_reader_typed_is_escaped_wherever_it_is_shown(site: Site) -> None:
    typed = "<script>alert('y')</script> & \"y tế"
    page = site.get("/search?q=" + quote(typed)).body.decode()
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#39;y&#39;)&lt;/script&gt; &amp; &#34;y tế" in page
    feed = site.get("/search.atom?q=" + quote(typed)).body
    title = etree.fromstring(feed).findtext("{http://www.w3.org/2005/Atom}title")
    assert title is not None and typed.replace("  ", " ") in title


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(q=st.text(max_size=80), fmt=st.sampled_from(["", ".atom", ".json"]))
def test_no_query_is_a_server_error(site: Site, q: str, fmt: str) -> None:
    response = site.get(f"/search{fmt}?q=" + quote(q, safe=""))
    assert response.status in (200, 400)


def test_every_page_has_the_search_box(site: Site) -> None:
    pages_seen = 0
    for page in site.public.rglob("*.html"):
        html = page.read_text("utf-8")
        assert 'role="search"' in html and 'name="q"' in html, page
        pages_seen += 1
    assert pages_seen > 100
    index = (site.public / "index.html").read_text("utf-8")
    assert "ứng dụng đọc tin" in index and "e-mail" in index
    # The pages the daemon writes itself too.
    assert 'role="search"' in site.get("/khong-co-trang-nay").body.decode()


def test_a_feed_reader_follows_a_search_and_gets_new_matches(
    tmp_path: Path, spawn: Callable[..., Daemon]
) -> None:
    copy_seeds(tmp_path / "seeds")
    daemon = spawn()
    daemon.start()
    target = "/search.atom?q=" + quote('"bạch hầu"')  # not in the seeds
    first = feedparser.parse(daemon.request(target)[2])
    assert not first.bozo and first.entries == []
    etag = daemon.request(target)[1]["etag"]
    assert daemon.request(target, headers={"If-None-Match": etag})[0] == 304
    (tmp_path / "seeds" / "new.txt").write_text(
        "HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ\n"
        "Thứ trưởng Bộ Y tế Lê Đức Luận chỉ đạo phòng chống bệnh bạch hầu tại Gia Lai\n"
        "Thứ Hai, ngày 16/11/2026 02:00Sáng 16/11/2026, Thứ trưởng kiểm tra công tác...\n",
        encoding="utf-8",
    )

    def arrived() -> bool:
        status, _, body = daemon.request(target, headers={"If-None-Match": etag})
        return status == 200 and bool(feedparser.parse(body).entries)

    daemon.wait_for(arrived, what="the new capture in the search feed")
    after = feedparser.parse(daemon.request(target)[2])
    assert [e.title for e in after.entries] == [
        "Thứ trưởng Bộ Y tế Lê Đức Luận chỉ đạo phòng chống bệnh bạch hầu tại Gia Lai"
    ]
    # The static feeds carry the same item once published (a moment after it is stored).
    daemon.wait_for(
        lambda: (
            after.entries[0].id
            in {e.id for e in feedparser.parse(daemon.request("/feeds/all.atom")[2]).entries}
        ),
        what="the same item in the static feed",
    )
