"""Publishing through the real command: paths, determinism, minimal rewrites, incremental
equal to full, OPML, autodiscovery, and no temporary left by a killed build.

What the publish index decides (what to rewrite, remove or write again) and the bytes of a
whole site are checked on PostgreSQL too (`both_engines`)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lxml import etree, html
from support import ROOT, TEMPLATES, Project, base_config, copy_seeds, toml

from digest.app import make_digest
from digest.config import TAXONOMY, load


@pytest.fixture
def site(make_project: Callable[..., Project]) -> Project:
    p: Project = make_project()
    copy_seeds(p.seeds)
    p.digest("build")
    return p


def snapshot(public: Path) -> dict[str, tuple[int, bytes]]:
    return {
        p.relative_to(public).as_posix(): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(public.rglob("*"))
        if p.is_file()
    }


def test_public_paths_are_the_documented_interface(site: Project) -> None:
    public = site.public
    for ext in ("atom", "rss", "json"):
        assert (public / f"feeds/all.{ext}").is_file()
        assert (public / f"feeds/officials/dao-hong-lan.{ext}").is_file()
        assert (public / f"feeds/topics/chuyen-doi-so.{ext}").is_file()
    for slug in ("dao-hong-lan", "vu-manh-ha", "le-duc-luan"):
        assert (public / f"officials/{slug}.html").is_file()
    assert (public / "topics/dan-so.html").is_file()
    assert len(list((public / "entries").glob("*.html"))) == 100
    assert (public / "feeds.opml").is_file() and (public / "index.html").is_file()


@pytest.mark.both_engines
def test_second_build_rewrites_nothing(site: Project) -> None:
    before = snapshot(site.public)
    out = site.digest("build").stdout
    assert "published: 0 written" in out
    assert snapshot(site.public) == before


@pytest.mark.both_engines
def test_a_change_rewrites_only_the_files_that_show_it(site: Project) -> None:
    before = snapshot(site.public)
    site.write_seed(
        "005_new.txt",
        "HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ\n"
        "Thứ trưởng Bộ Y tế Lê Đức Luận kiểm tra chất lượng khám bệnh, chữa bệnh\n"
        "Thứ Hai, ngày 16/11/2026 02:00Sáng 16/11/2026, Thứ trưởng...\n",
    )
    site.digest("build")
    after = snapshot(site.public)
    changed = {p for p in after if p not in before or after[p] != before[p]}
    assert "feeds/all.atom" in changed and "feeds/officials/le-duc-luan.atom" in changed
    assert "topics/kham-chua-benh.html" in changed  # the new entry's topic
    assert "feeds/officials/dao-hong-lan.atom" not in changed
    assert "feeds/topics/dan-so.rss" not in changed
    untouched_entries = [p for p in before if p.startswith("entries/") and p not in changed]
    assert len(untouched_entries) == 100
    assert len(changed) < 40


@pytest.mark.both_engines
def test_removed_topic_files_are_deleted(site: Project) -> None:
    # A config of its own whole taxonomy: the shipped one without "dan-so".
    taxonomy = TAXONOMY.read_text(encoding="utf-8")
    taxonomy = taxonomy.replace('[[topics]]\nslug = "dan-so"\nname = "Dân số"\n', "")
    start = taxonomy.index('[[rules]]\ntopic = "dan-so"')
    end = taxonomy.index("[[rules]]", start + 5)
    taxonomy = taxonomy[:start] + taxonomy[end:]
    taxonomy = taxonomy.replace("[classify]\n", "[classify]\ndefaults = false\n")
    site.write_config(taxonomy)
    out = site.digest("build").stdout
    assert "removed" in out and "0 removed" not in out
    assert not list(site.public.rglob("*dan-so*"))
    assert "dan-so" not in (site.public / "feeds.opml").read_text(encoding="utf-8")


@pytest.mark.both_engines
def test_a_deleted_public_file_is_written_again(site: Project) -> None:
    (site.public / "feeds/all.atom").unlink()
    site.digest("build")
    assert (site.public / "feeds/all.atom").is_file()


def test_opml_lists_every_current_feed(site: Project) -> None:
    opml = etree.parse(str(site.public / "feeds.opml")).getroot()
    urls = {o.get("xmlUrl") for o in opml.iter("outline") if o.get("xmlUrl")}
    on_disk = {
        "http://127.0.0.1:8080/" + p.relative_to(site.public).as_posix()
        for p in (site.public / "feeds").rglob("*.atom")
        if "archive" not in p.parts
    }
    assert urls == on_disk
    assert all(
        o.get("type") == "rss" and o.get("htmlUrl") for o in opml.iter("outline") if o.get("xmlUrl")
    )


def test_index_autodiscovery_and_listings(site: Project) -> None:
    page = html.parse(str(site.public / "index.html")).getroot()
    alternates = {
        (x.get("type"), x.get("href")) for x in page.iter("link") if x.get("rel") == "alternate"
    }
    assert alternates == {
        ("application/atom+xml", "http://127.0.0.1:8080/feeds/all.atom"),
        ("application/rss+xml", "http://127.0.0.1:8080/feeds/all.rss"),
        ("application/feed+json", "http://127.0.0.1:8080/feeds/all.json"),
    }
    text = page.text_content()
    assert "Đào Hồng Lan" in text and "Bộ trưởng" in text and "15 tin" in text
    assert "Chuyển đổi số" in text
    assert page.get("lang") == "vi"


def test_entry_page_links_related_titles_that_are_known(site: Project) -> None:
    entry = next(
        e
        for e in site.entries()
        if e["title"].startswith("Thứ trưởng Bộ Y tế Nguyễn Thị Liên Hương làm việc với Chủ tịch")
    )
    page = html.parse(str(site.public / f"entries/{entry['id']}.html")).getroot()
    related = page.find(".//section[@class='related']")
    assert related is not None
    links = {a.text_content(): a.get("href") for a in related.iter("a")}
    target = next(
        e
        for e in site.entries()
        if e["title"].startswith("Thứ trưởng Bộ Y tế Đỗ Xuân Tuyên kiểm tra")
    )
    assert links == {target["title"]: f"{target['id']}.html"}
    assert "Thứ Bảy, 20/04/2024 21:33" in page.text_content()  # Vietnam time


@pytest.mark.both_engines
def test_two_builds_from_scratch_are_byte_identical(site: Project, tmp_path: Path) -> None:
    """The other on SQLite: on PostgreSQL, the engine must change no byte of the site."""
    other = Project(tmp_path / "on-sqlite")
    copy_seeds(other.seeds)
    other.write_config()
    other.digest("build")
    first = {k: v[1] for k, v in snapshot(site.public).items()}
    second = {k: v[1] for k, v in snapshot(other.public).items()}
    assert first == second


def _capture(*items: tuple[str, str, str]) -> str:
    """A listing capture of (title, `dd/mm/yyyy hh:mm` in UTC, teaser) items."""
    listed = "".join(f"{title}\nThứ Hai, ngày {when}{teaser}...\n" for title, when, teaser in items)
    return "HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ\n" + listed


def _amid(p: Project) -> str:
    """A listing time (UTC) between the 2nd and 3rd oldest entries of the fullest month
    whose last part has room (feed size 3)."""
    import sqlite3
    from datetime import UTC, datetime

    with sqlite3.connect(p.store) as db:
        (month,) = db.execute(
            "select month from months where channel = 'all' and entries % 3 != 0"
            " order by entries desc limit 1"  # no new part: the parts after it move
        ).fetchone()
        times = [
            t
            for (t,) in db.execute(
                "select published from listing where channel = 'all' and month = ?"
                " order by published limit 3",
                (month,),
            )
        ]
    middle = datetime.fromtimestamp((times[1] + times[2]) // 2, UTC)
    return f"{middle:%d/%m/%Y %H:%M}"


@pytest.mark.sqlite_only  # copies the store's file to a reference project, reads it
def test_publishing_only_what_changed_gives_the_files_a_full_publish_gives(
    make_project: Callable[..., Project],
) -> None:
    """After each kind of change, the incremental publish (planned from the changes the
    build recorded) must leave exactly the files that planning everything leaves."""
    p: Project = make_project()
    copy_seeds(p.seeds)
    small = base_config(toml("site", feed_size=3))  # archives everywhere
    p.config.write_text(small, encoding="utf-8")
    p.digest("build")
    visit = "Thứ trưởng Bộ Y tế Lê Đức Luận thăm Bệnh viện E"
    new_name = "Thứ trưởng Bộ Y tế Phạm Văn Mới thăm trạm y tế xã {}"
    led = "Thứ trưởng Bộ Y tế Phạm Văn Mới dẫn đầu đoàn"
    inspections = [
        (f"Đoàn kiểm tra trạm y tế xã {i}", f"0{i}/10/2026 01:00", led) for i in (1, 2, 3, 4)
    ]
    second_part = p.public / "feeds/archive/officials/pham-van-moi/2026-10-2.atom"
    had_second_part = []
    steps = [
        # a new month for `all` and an official, after the newest entry
        ("a.txt", _capture((visit, "07/12/2026 02:00", "Sáng nay"))),
        # that entry's teaser grows: its rev, feeds and month pages change
        ("a.txt", _capture((visit, "07/12/2026 02:00", "Sáng nay, Thứ trưởng đến thăm"))),
        # the title another entry lists as related: that entry's page now links to it
        ("b.txt", _capture(("Một đời làm ngọn đèn dẫn lối yêu thương", "01/03/2025 03:00", "x"))),
        # an official the registry does not know: a new channel, under the feed size
        ("c.txt", _capture((new_name.format(1), "02/12/2026 01:00", "Chiều nay"))),
        # three more of theirs: the channel passes the feed size and gets archives
        (
            "d.txt",
            _capture(*((new_name.format(i), f"0{i}/11/2026 01:00", "Sáng nay") for i in (2, 3, 4))),
        ),
        # an old month amid the archives: its neighbours' navigation changes
        ("e.txt", _capture(("Thứ trưởng Đỗ Xuân Tuyên đến Cà Mau", "15/06/2023 02:00", "Sáng"))),
        # into the oldest part of a month in parts: every later part of it moves
        ("f.txt", _capture(("Thứ trưởng Bộ Y tế Lê Đức Luận họp giao ban", _amid(p), "Sáng nay"))),
        # four entries naming the new official in their teasers: a month of two parts for them
        ("g.txt", _capture(*inspections)),
        # the article behind one of them does not name them: that month is one part again
        ("h.txt", "Đoàn kiểm tra trạm y tế xã 1\n01/10/2026 | 08:00 AM\nĐoàn của Bộ đến xã.\n"),
    ]
    for i, (name, text) in enumerate(steps):
        p.write_seed(name, text)
        out = p.digest("build").stdout
        assert "published: 0 written" not in out, (i, out)
        reference: Project = make_project()
        reference.store.parent.mkdir(parents=True)
        shutil.copy2(p.store, reference.store)
        reference.config.write_text(
            small.replace('seeds = "seeds"', f'seeds = "{p.seeds.as_posix()}"'), encoding="utf-8"
        )
        reference.digest("build")  # nothing to ingest; nothing of public/ exists: plans all
        ours = {k: v[1] for k, v in snapshot(p.public).items()}
        full = {k: v[1] for k, v in snapshot(reference.public).items()}
        assert sorted(ours) == sorted(full), i
        assert [k for k in ours if ours[k] != full[k]] == [], i
        had_second_part.append(second_part.is_file())
    assert (p.public / "feeds/officials/pham-van-moi.atom").is_file()
    assert list((p.public / "feeds/archive/officials/pham-van-moi").glob("*.atom"))
    assert had_second_part[-2:] == [True, False]


def test_temporaries_a_killed_writer_left_are_removed_by_the_next_publish(site: Project) -> None:
    scratch = site.public / ".tmp"
    scratch.mkdir(exist_ok=True)
    (scratch / "4242-entries~x.html").write_bytes(b"<half")  # what a SIGKILL mid-write leaves
    legacy = site.public / "entries" / ".x.html.4242.tmp"  # the same, from before 0.2
    legacy.write_bytes(b"<half")
    site.digest("build")
    assert not list(scratch.iterdir())
    # A full publish (here: after a settings change) also sweeps the older kind.
    site.write_config(toml("site", feed_size=49))
    site.digest("build")
    assert not legacy.exists()


def test_killed_builds_leave_no_temporary_behind(
    make_project: Callable[..., Project], launch: Callable[..., Any]
) -> None:
    """SIGKILL at random moments of cold and incremental builds of a few hundred captures,
    then one more build: no temporary anywhere, and the files a full publish writes."""
    import random
    import signal
    import subprocess
    import sys
    import time

    sys.path.insert(0, str(ROOT))
    from bench.corpus import generate

    p: Project = make_project()
    generate(p.seeds, 120)
    rng = random.Random(13)
    command = [sys.executable, "-m", "digest", "--config", str(p.config), "build"]
    for _ in range(6):
        build = launch(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 2.5))
        build.send_signal(signal.SIGKILL)
        build.wait()
    p.digest("build")
    assert not [
        f
        for f in p.public.rglob("*")
        if f.is_file() and ".tmp" in f.relative_to(p.public).as_posix()
    ]
    fresh: Project = make_project()
    shutil.copytree(p.seeds, fresh.seeds, dirs_exist_ok=True)
    fresh.digest("build")

    def contents(public: Path) -> dict[str, bytes]:
        return {
            f.relative_to(public).as_posix(): f.read_bytes()
            for f in public.rglob("*")
            if f.is_file()
        }

    assert contents(p.public) == contents(fresh.public)


def test_a_template_edited_while_the_daemon_runs_shows_in_its_next_publish(
    make_project: Callable[..., Project], tmp_path: Path
) -> None:
    # The renderer reads templates once, not once a page: it must still see an edit.
    p = make_project()
    copy_seeds(p.seeds)
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    p.config.write_text(base_config().replace(TEMPLATES.as_posix(), templates.as_posix()))
    app = make_digest(load(p.config))
    try:
        app.build()
        app.publish()
        base = templates / "site" / "base.html"
        base.write_text(base.read_text().replace("</footer>", "<p>Mẫu mới</p></footer>"))
        later = base.stat().st_mtime_ns + 5 * 10**9  # whatever the clock's resolution
        os.utime(base, ns=(later, later))
        app.publish()
    finally:
        app.close()
    assert "<p>Mẫu mới</p></footer>" in (p.public / "index.html").read_text()
    assert "<p>Mẫu mới</p></footer>" in next((p.public / "entries").glob("*.html")).read_text()
