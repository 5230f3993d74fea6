"""periods.py: which period a digest covers — here the week a Monday's digest closes."""

from __future__ import annotations

import pytest

from mail.mailworld import Smtp, World, body, vn


@pytest.mark.both_engines
def test_weekly_digest_on_monday(world: World, smtp: Smtp) -> None:
    handler, _ = smtp
    world.at(vn(2026, 11, 23, 7, 0, 1))  # a Monday
    world.run()
    weekly = [m for m in handler.messages if m["To"].addresses[0].addr_spec == "weekly@example.org"]
    assert len(weekly) == 1
    assert weekly[0]["Subject"].startswith(
        "Bản tin tuần hoạt động lãnh đạo Bộ Y tế — 17/11–23/11/2026"
    )
    assert "Hợp tác quốc tế" in body(weekly[0], "plain")
