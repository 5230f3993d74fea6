"""The timer: APScheduler 3.11 wakes the digest sender at the configured times.

The outbox in the store is the source of truth; APScheduler only says "now". Its traps are
avoided by construction: `misfire_grace_time=None` (the default 1 s would drop a run after a
busy second), jobs are added once to an in-memory store (so `replace_existing` cannot drop
runs missed while down: missed periods are found in the outbox at start-up instead), and the
job only sets an event (so `AsyncIOExecutor.shutdown()` cancelling coroutine jobs cannot cut a
message in half; the sending happens in the daemon's own task).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from ..config import Digests
from ..model import VIETNAM

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Timer:
    def __init__(self, digests: Digests, wake: asyncio.Event) -> None:
        self.wake = wake
        self.scheduler = AsyncIOScheduler(
            timezone=VIETNAM,
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
        )
        daily = CronTrigger(
            hour=digests.daily_at.hour,
            minute=digests.daily_at.minute,
            second=digests.daily_at.second,
            timezone=VIETNAM,
        )
        weekly = CronTrigger(
            day_of_week=_DAYS[digests.weekly_day],
            hour=digests.weekly_at.hour,
            minute=digests.weekly_at.minute,
            second=digests.weekly_at.second,
            timezone=VIETNAM,
        )
        self.scheduler.add_job(self._ring, daily, id="daily")
        self.scheduler.add_job(self._ring, weekly, id="weekly")

    async def _ring(self) -> None:
        self.wake.set()

    def start(self) -> None:
        self.scheduler.start()

    def next_times(self) -> dict[str, datetime]:
        return {job.id: job.next_run_time for job in self.scheduler.get_jobs()}

    def shutdown(self) -> None:
        self.scheduler.shutdown(wait=False)
