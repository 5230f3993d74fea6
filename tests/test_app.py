"""The facade: build and publish are separate steps, and nothing a build recorded is lost
between them; the questions it answers agree with what is stored. On every engine."""

from __future__ import annotations

import pytest
from support import Project

from digest.app import make_digest
from digest.config import load
from digest.text import slugify

NEW_FILE = (
    "HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ\n"
    "Thứ trưởng Bộ Y tế Lê Đức Luận thăm Bệnh viện Bạch Mai\n"
    "Thứ Hai, ngày 16/11/2026 02:00Sáng 16/11/2026, Thứ trưởng...\n"
)

pytestmark = pytest.mark.both_engines


def test_changes_a_build_recorded_are_published_by_the_next_publish(seeded: Project) -> None:
    """Marks of what changed are stored with the entries: a process that dies between its
    build and its publish leaves nothing unpublished."""
    seeded.digest("build")
    seeded.write_seed("005_new.txt", NEW_FILE)
    app = make_digest(load(seeded.config))
    assert app.build().entries_new == 1  # and no publish: as if killed here
    app.close()
    before = (seeded.public / "feeds/all.atom").read_text(encoding="utf-8")
    assert "Lê Đức Luận thăm Bệnh viện Bạch Mai" not in before
    again = make_digest(load(seeded.config))
    try:
        assert again.build().files_parsed == 0
        assert again.publish().written > 0
        after = (seeded.public / "feeds/all.atom").read_text(encoding="utf-8")
        assert "Thứ trưởng Bộ Y tế Lê Đức Luận thăm Bệnh viện Bạch Mai" in after
        assert again.publish().written == 0
    finally:
        again.close()


def test_subjects_count_what_is_stored(seeded: Project) -> None:
    app = make_digest(load(seeded.config))
    try:
        app.build()
        entries = app.entries()
        officials, topics = app.subjects()
        for subject in [*officials, *topics]:
            tagged = [e for e in entries if subject.slug in (*e.officials, *e.topics)]
            assert subject.entries == len(tagged), subject.slug
            if tagged:
                assert subject.latest == max(e.published for e in tagged)
        # Every official the registry knows is a subject, even one with no entry yet.
        registry = {o.slug for o in app.config.classification.officials}
        assert registry <= {s.slug for s in officials}
        assert slugify("Đào Hồng Lan") in {s.slug for s in officials if s.entries}
    finally:
        app.close()
