"""The planner, property-tested: archive parts partition each channel, the RFC 5005 chain
is whole, and a plan of only what changed reaches every file a full plan would change."""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import base_config, toml

from digest.app import Digest, make_digest
from digest.config import load
from digest.feeds import FeedDoc
from digest.model import VIETNAM, Entry, month_of
from digest.site.plan import (
    FeedJob,
    Output,
    Planner,
    Scope,
    SignatureBase,
    archive_units,
    unit_month,
)

# -- archive_units --------------------------------------------------------------------------

_months = st.lists(
    st.tuples(st.dates().map(lambda d: d.strftime("%Y-%m")), st.integers(1, 60)),
    max_size=12,
    unique_by=lambda c: c[0],
).map(lambda counts: sorted(counts, reverse=True))


@given(_months, st.integers(1, 20))
def test_archive_units_split_each_month_into_parts_of_at_most_size(
    counts: list[tuple[str, int]], size: int
) -> None:
    units = archive_units(counts, size)
    for month, entries in counts:
        parts = [u for u in units if u.month == month]
        # Part k holds entries (k-1)*size .. k*size-1 counted from the month's oldest.
        held = [min(size, entries - (u.part - 1) * size) for u in parts]
        assert sum(held) == entries and all(0 < n <= size for n in held)
        assert [u.part for u in parts] == list(range(len(parts), 0, -1))  # newest part first
        assert {u.parts for u in parts} == {len(parts)} and {u.entries for u in parts} == {entries}
        assert parts[-1].name == month and all(u.name == f"{month}-{u.part}" for u in parts[:-1])
    assert [u.month for u in units] == sorted((u.month for u in units), reverse=True)


# -- the planner over a real store ----------------------------------------------------------

OFFICIALS = ["Bộ trưởng Bộ Y tế Đào Hồng Lan", "Thứ trưởng Bộ Y tế Lê Đức Luận"]
_START = datetime(2024, 1, 1, 1, 0, tzinfo=VIETNAM)
WEEKDAYS = ["Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ Nhật"]

# Articles as (minutes after the start, which official): distinct instants, up to ~2 years.
_articles = st.lists(
    st.tuples(st.integers(0, 700 * 24 * 60), st.integers(0, 1)),
    min_size=1,
    max_size=30,
    unique_by=lambda a: a[0],
)


def capture(articles: Sequence[tuple[int, int]], first: int) -> str:
    lines = ["HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ"]
    for n, (minutes, who) in enumerate(articles, start=first):
        when = _START + timedelta(minutes=minutes)
        lines.append(f"{OFFICIALS[who]} làm việc với đoàn công tác số {n}")
        lines.append(f"{WEEKDAYS[when.weekday()]}, ngày {when:%d/%m/%Y %H:%M}Sáng nay...")
    return "\n".join(lines) + "\n"


@contextmanager
def project(size: int) -> Iterator[tuple[Path, Digest]]:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "seeds").mkdir()
        config = base_config(toml("site", feed_size=size))
        (root / "config.toml").write_text(config, encoding="utf-8")
        app = make_digest(load(root / "config.toml"))
        try:
            yield root, app
        finally:
            app.close()


def full_plan(app: Digest) -> list[Output]:
    planner = Planner(app.config, app.store.entries, app.store.index)
    return list(planner.plan(Scope(everything=True), planner.names(), planner.context()))


def atom_docs(outputs: Sequence[Output], key: str) -> dict[str, tuple[FeedDoc, tuple[str, ...]]]:
    """A channel's Atom documents by path: the current one and its archives."""
    found = {}
    for o in outputs:
        ours = o.path == f"feeds/{key}.atom" or o.path.startswith(f"feeds/archive/{key}/")
        if ours and isinstance(o.job, FeedJob) and o.job.fmt == "atom":
            found[o.path] = (o.job.doc, o.job.ids)
    return found


def newest_first(entries: Sequence[Entry]) -> list[str]:
    return [e.id for e in sorted(entries, key=lambda e: (e.published, e.id), reverse=True)]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_articles, st.sampled_from([1, 2, 3, 7]))
def test_archives_partition_every_channel_and_chain_without_a_gap(
    articles: list[tuple[int, int]], size: int
) -> None:
    with project(size) as (root, app):
        (root / "seeds" / "a.txt").write_text(capture(articles, 0), encoding="utf-8")
        app.build()
        entries = app.entries()
        assert len(entries) == len(articles)
        outputs = full_plan(app)
        # Entry pages and archives come month by month, each marked with its month (a publish
        # keeps a month's documents, which show the same entries, in one batch), a month's
        # entry pages before the archives that link them.
        month = {f"entries/{e.id}.html": month_of(e.published) for e in entries}
        grouped = [o for o in outputs if o.group]
        kinds = ("entries/", "feeds/archive/", "archive/")
        assert [o.path for o in grouped] == [o.path for o in outputs if o.path.startswith(kinds)]
        assert [o.group for o in grouped] == [
            month.get(o.path) or unit_month(o.path) for o in grouped
        ]
        assert [o.group for o in grouped] == sorted((o.group for o in grouped), reverse=True)
        for m in {o.group for o in grouped}:
            kind = [o.path.startswith("entries/") for o in grouped if o.group == m]
            assert kind == sorted(kind, reverse=True), m
        channels = {"all": entries}
        for e in entries:
            for slug in e.officials:
                channels.setdefault(f"officials/{slug}", []).append(e)
        assert {"officials/dao-hong-lan", "officials/le-duc-luan"} & set(channels)
        for key, members in channels.items():
            docs = atom_docs(outputs, key)
            current, current_ids = docs.pop(f"feeds/{key}.atom")
            expected = newest_first(members)
            assert list(current_ids) == expected[:size], key
            if len(members) <= size:
                assert current.complete and not docs and current.prev_archive is None
                continue
            assert not current.complete
            # Every entry in exactly one archive document, none holding more than `size`,
            # each of one month (Vietnam time).
            held = [i for _, ids in docs.values() for i in ids]
            assert sorted(held) == sorted(expected), key
            month = {e.id: e.published.astimezone(VIETNAM).strftime("%Y-%m") for e in members}
            # Parts count from a month's oldest entry: part k holds its k-th `size` entries,
            # so new entries fill the last part and leave the others as they were.
            for path, (_, ids) in docs.items():
                name = path.rsplit("/", 1)[1].removesuffix(".atom")
                part = int(name[8:]) if len(name) > 7 else 1
                oldest_first = expected[::-1]
                in_month = [i for i in oldest_first if month[i] == name[:7]]
                assert sorted(ids) == sorted(in_month[(part - 1) * size : part * size]), path
            # prev-archive from the current document walks every archive once, oldest last;
            # next-archive walks back.
            by_url = {doc.urls["atom"]: (doc, ids) for doc, ids in docs.values()}
            walked: list[str] = []
            link = current.prev_archive
            newer = None
            while link is not None:
                doc, ids = by_url[link["atom"]]
                assert doc.next_archive == (newer.urls if newer else None)
                walked.extend(ids)
                newer, link = doc, doc.prev_archive
            assert walked == expected, key


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_articles, min_size=2, max_size=4), st.sampled_from([2, 3]))
def test_after_each_change_the_published_files_are_those_a_full_plan_gives(
    batches: list[list[tuple[int, int]]], size: int
) -> None:
    """Batches of articles arrive one build at a time; after each incremental publish the
    paths and signatures recorded must equal what planning everything gives."""
    with project(size) as (root, app):
        first = 0
        for n, batch in enumerate(batches):
            (root / "seeds" / f"{n}.txt").write_text(capture(batch, first), encoding="utf-8")
            first += len(batch)
            app.build()
            app.publish(verify=False)
            full = {o.path: o.signature for o in full_plan(app)}
            published = app.store.index.published_paths()
            assert sorted(published) == sorted(full), n
            assert app.store.index.signatures(published) == full, n


_json_parts = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner),
    max_leaves=12,
)


@given(base=st.text(), parts=st.lists(_json_parts, max_size=5))
def test_a_signature_is_the_hash_of_its_base_and_parts_as_json(
    base: str, parts: list[object]
) -> None:
    """The base is hashed once for every signature; what is stored stays what earlier
    versions stored (the hash of `[base, *parts]` as JSON), so an upgrade re-plans nothing."""
    text = json.dumps([base, *parts], ensure_ascii=False, default=str)
    assert SignatureBase(base).sign(*parts) == hashlib.sha256(text.encode()).hexdigest()
