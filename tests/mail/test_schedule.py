"""schedule.py: the timer rings at the send times periods.py computes, in Vietnam time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from digest.mail.periods import slots
from digest.mail.schedule import Timer
from digest.model import VIETNAM
from mail.mailworld import World, vn


def test_slots_and_timer_in_vietnam_time(world: World) -> None:
    digests = world.config.digests
    found = slots("daily", digests, vn(2026, 11, 21, 7, 0), vn(2026, 11, 23, 7, 0))
    assert found == [vn(2026, 11, 22, 7, 0), vn(2026, 11, 23, 7, 0)]
    weekly = slots("weekly", digests, vn(2026, 11, 1), vn(2026, 11, 30, 8))
    assert [d.day for d in weekly] == [2, 9, 16, 23, 30] and all(d.weekday() == 0 for d in weekly)

    async def check() -> dict[str, datetime]:
        timer = Timer(digests, asyncio.Event())
        timer.start()
        try:
            jobs = {j.id: j for j in timer.scheduler.get_jobs()}
            assert all(j.misfire_grace_time is None for j in jobs.values())
            return timer.next_times()
        finally:
            timer.shutdown()

    times = asyncio.run(check())
    assert times["daily"].astimezone(VIETNAM).time().isoformat() == "07:00:00"
    assert times["weekly"].astimezone(VIETNAM).weekday() == 0
    assert times["daily"] - datetime.now(UTC) <= timedelta(days=1)
