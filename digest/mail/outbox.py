"""Digests exactly once: periods, the outbox state machine, delivery and catch-up.

The outbox table, keyed by (subscriber, period), is the source of truth:

    pending -> sending -> sent | empty | failed -> (retry) sending ... | dead | unknown

A period is claimed (pending/failed -> sending) in a committed transaction before any mail
leaves, so two processes or two runs never send the same period. After the attempt:
delivered -> sent; nothing matched -> empty (no e-mail); a transient failure -> failed with a
growing wait, dead after max_attempts; a permanent one -> dead; an unknown outcome -> unknown,
never sent again. A row still `sending` at start-up belonged to a process that died: with a
Maildir, whose delivery is atomic and named after the Message-ID, it is resolved by looking;
over SMTP nobody can tell, so it becomes unknown rather than risk a second message. The
Message-ID is recorded only just before DATA begins: a row without one never reached that
point and is simply sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from ..config import Config
from ..errors import (
    ClaimLostError,
    PermanentMailError,
    TransientMailError,
    UnknownOutcomeError,
)
from ..model import VIETNAM, EntryHead, Subscriber
from ..store import (
    EntryStore,
    NoticeRow,
    OutboxRow,
    OutboxStore,
    SubscriberRecord,
    SubscriberStore,
)
from .compose import Composer, Letter
from .notices import Notices
from .periods import Period, next_period, slots, window
from .roster import Roster, reconcile
from .schedule import Timer
from .shards import (
    SHARDED_FROM,
    DeliveryLock,
    new_owner,
    shard,
    shard_command,
    terminate_on,
)
from .transport import Mailer, make_mailer

log = logging.getLogger("digest.mail")
T = TypeVar("T")

_BACKOFF = (60, 300, 1800, 7200, 21600)  # seconds before retry 1, 2, 3, …
_IDLE = 60.0  # the sender looks at the outbox at least this often (retries)
_NOTICE_POLL = 2.0  # and at the notices this often: sign-ups other processes answered
_NOTICE_ATTEMPTS = 4  # transient failures before a confirmation mail is given up
_SWEEP = timedelta(hours=1)  # lapsed sign-ups are deleted this often
_CLAIMED = 8  # digests a delivering connection claims at a time on a shared store


@dataclass(frozen=True, slots=True)
class Upcoming:
    """The next send time of one schedule, and who it is for."""

    schedule: str
    at: datetime
    subscribers: int
    new: int  # of them, appearing for the first time: this will be their first digest


@dataclass(frozen=True, slots=True)
class Outcome:
    subscriber: str
    period: str
    state: str
    items: int


class Sender:
    """The mail stage: plans periods, delivers digests exactly once, and is the daemon's
    mail service (`service`)."""

    def __init__(
        self,
        config: Config,
        outbox: OutboxStore,
        subscribers: SubscriberStore,
        entries: EntryStore,
        now: Callable[[], datetime],
        mailer_factory: Callable[[Config], Mailer] = make_mailer,
    ) -> None:
        self.config = config
        self.outbox = outbox
        self.subscribers = subscribers
        self.entries = entries
        self.now = now
        self.mailer_factory = mailer_factory
        self._composer: Composer | None = None
        self._people: dict[str, SubscriberRecord] = {}  # this run's active subscribers
        self._notices: Notices | None = None
        self._nudge = asyncio.Event()  # set when this process queued a notice
        self._windows: dict[tuple[datetime, datetime, datetime | None], list[EntryHead]] = {}
        # This process's number on the rows it claims: only it may send or settle them while
        # it lives (store/outbox.py), and on a shared store the server knows whether it does.
        self.owner = new_owner()

    @property
    def composer(self) -> Composer:
        # Made when first needed: the signing secret is created then, not by read-only commands.
        if self._composer is None:
            self._composer = Composer(self.config, self.outbox.secret())
        return self._composer

    @property
    def notices(self) -> Notices:
        if self._notices is None:
            self._notices = Notices(self.config, self.outbox.secret())
        return self._notices

    def nudge(self) -> None:
        """A notice was queued in this process: send it now, not at the next poll."""
        self._nudge.set()

    # -- planning -------------------------------------------------------------------------------

    def roster(self, now: datetime, *, record: bool = True) -> Roster:
        """Everyone in the store with config.toml's [[subscribers]] applied (and stored,
        unless this is a dry run)."""
        roster = reconcile(self.subscribers.all(), self.config.subscribers, now)
        if record and (roster.save or roster.delete):
            self.subscribers.save(roster.save)
            self.subscribers.delete(roster.delete)
        self._people = {r.email: r for r in roster.active}
        return roster

    def plan(
        self, now: datetime, *, schedule: str | None = None, record: bool = True
    ) -> list[tuple[SubscriberRecord, Period]]:
        """Every period due by `now` not yet recorded (catch-up included); recorded as pending
        unless this is a dry run."""
        active = [
            r
            for r in self.roster(now, record=record).active
            if schedule is None or r.choices.schedule == schedule
        ]
        last = self.outbox.last_slots()
        found = []
        for r in active:
            since = r.since or now
            start = max(since, last.get(r.email, since))
            for slot in slots(r.choices.schedule, self.config.digests, start, now):
                found.append((r, Period(r.choices.schedule, slot)))
        if record:
            self.outbox.add_periods([(r.email, p.key, p.slot) for r, p in found], now)
        return found

    def upcoming(self, now: datetime) -> list[Upcoming]:
        """When each schedule sends next, to how many subscribers, and how many of them are
        new (a new subscriber's first digest comes at the next send time of their schedule,
        with what was published in the period before it)."""
        active = self.roster(now, record=False).active
        had = self.outbox.last_slots()
        found = []
        for schedule in ("daily", "weekly"):
            emails = [r.email for r in active if r.choices.schedule == schedule]
            if emails:
                at = next_period(schedule, now, self.config.digests).slot
                new = sum(e not in had for e in emails)
                found.append(Upcoming(schedule, at, len(emails), new))
        return found

    def dry_run(self, *, schedule: str | None = None) -> Iterator[Letter]:
        """The letters a send now would deliver, one at a time, recording and sending nothing."""
        now = self.now()
        due = self.plan(now, schedule=schedule, record=False)
        due = [
            (self._people[r.subscriber], Period(r.period.partition(":")[0], r.slot))
            for r in self._due(now, schedule)
            if r.subscriber in self._people
        ] + due
        for record, period in due:
            yield self.letter(record.subscriber, period, record.since or now, now)

    def preview(self, subscriber: Subscriber, schedule: str, since: datetime | None) -> Letter:
        """A subscriber's next digest as it stands now, or one over any window since `since`."""
        now = self.now()
        period = next_period(schedule, now, self.config.digests)
        if since is None:
            stored = self.subscribers.find(email=subscriber.email)
            first = stored.since if stored is not None and stored.since else now
            return self.letter(subscriber, period, first, now)
        entries = self.entries.heads(since, now)
        label = f"Từ {since.astimezone(VIETNAM):%d/%m/%Y} đến {now.astimezone(VIETNAM):%d/%m/%Y}"
        return self.composer.compose(subscriber, period, entries, now=now, label=label)

    def letter(
        self, subscriber: Subscriber, period: Period, first_seen: datetime, now: datetime
    ) -> Letter:
        after, published_after = window(first_seen, period)
        key = (after, period.slot, published_after)
        entries = self._windows.get(key)
        if entries is None:  # subscribers of the same period share one query
            if len(self._windows) >= 64:
                self._windows.clear()
            entries = self._windows[key] = self.entries.heads_new(
                after, period.slot, published_after=published_after
            )
        return self.composer.compose(subscriber, period, entries, now=now)

    # -- sending ----------------------------------------------------------------------------------

    def recover(self, mailer: Mailer) -> list[Outcome]:
        """Settle rows a dead process left in `sending`; the ones now unknown."""
        now = self.now()
        unknown = []
        for notice in self.outbox.interrupted_notices():
            # Not worth a second mail in a mailbox: the reader can sign up again.
            error = "interrupted while sending; not sent again"
            self.outbox.finish_notice(notice.id, "unknown", now, error=error)
        for row in self.outbox.interrupted():
            # The Message-ID is recorded just before DATA: without one, nothing left this
            # process for that period and it is safe to try again.
            delivered = mailer.delivered(row.message_id) if row.message_id else False
            if delivered is False:
                # Due again at once: from its slot, so that the run recovering it, whose
                # clock started a moment earlier, delivers it too. Only while it is still the
                # dead owner's: another node may have settled and claimed it since.
                error = "interrupted; not delivered"
                self.outbox.finish(
                    row.subscriber,
                    row.period,
                    "failed",
                    now,
                    error=error,
                    next_attempt=row.slot,
                    owner=row.owner,
                )
                continue
            state = "sent" if delivered else "unknown"
            settled = self.outbox.finish(
                row.subscriber,
                row.period,
                state,
                now,
                items=row.items,
                message_id=row.message_id,
                error=None if delivered else "interrupted while sending; not sent again",
                owner=row.owner,
            )
            if settled and not delivered:
                log.error(
                    "digest %s for %s: outcome unknown after an interruption; not sent again",
                    row.period,
                    row.subscriber,
                    extra={"event": "mail", "state": "unknown", "period": row.period},
                )
                unknown.append(Outcome(row.subscriber, row.period, "unknown", row.items or 0))
        return unknown

    async def deliver(
        self, row: OutboxRow, mailer: Mailer, *, claimed: bool = False
    ) -> Outcome | None:
        """Send one due digest, claiming it first unless this process `claimed` it already;
        None if another process has it."""
        record = self._people.get(row.subscriber)
        now = self.now()
        mine = self.owner if claimed else None
        if record is None:  # unsubscribed or removed since the period was recorded
            error = "no longer subscribed"
            await self._store(
                self.outbox.finish, row.subscriber, row.period, "dead", now, error=error, owner=mine
            )
            return Outcome(row.subscriber, row.period, "dead", 0)
        schedule, _, _ = row.period.partition(":")
        period = Period(schedule, row.slot)
        letter = self.letter(record.subscriber, period, record.since or now, now)
        items = len(letter.entries)
        if not claimed and not self.outbox.claim(
            row.subscriber, row.period, now, owner=self.owner, items=items
        ):
            return None  # another run took it
        if letter.parcel is None:
            await self._store(
                self.outbox.finish,
                row.subscriber,
                row.period,
                "empty",
                now,
                items=0,
                owner=self.owner,
            )
            return self._logged(row, "empty", 0)
        message_id = letter.parcel.message_id

        async def data_begins() -> None:
            # From here a crash leaves an outcome only the server knows; before it, the
            # digest is simply sent again.
            if not await self._store(
                self.outbox.data_begins,
                row.subscriber,
                row.period,
                message_id,
                owner=self.owner,
                items=items,
            ):
                raise ClaimLostError(f"digest {row.period} for {row.subscriber}: claim lost")

        state, error, retry = "sent", "", None
        try:
            await mailer.send(letter.parcel, before_data=data_begins)
        except ClaimLostError as exc:
            log.warning("%s; not sent", exc, extra={"event": "mail", "state": "lost"})
            return None
        except TransientMailError as exc:
            attempts = row.attempts + (0 if claimed else 1)
            error = str(exc)
            if attempts >= self.config.digests.max_attempts:
                state = "dead"
            else:
                state = "failed"
                retry = now + timedelta(seconds=_BACKOFF[min(attempts - 1, len(_BACKOFF) - 1)])
        except PermanentMailError as exc:
            state, error = "dead", str(exc)
        except UnknownOutcomeError as exc:
            state, error = "unknown", str(exc)
        await self._store(
            self.outbox.finish,
            row.subscriber,
            row.period,
            state,
            self.now(),
            items=items,
            message_id=message_id,
            error=error or None,
            next_attempt=retry,
            owner=self.owner,
        )
        return self._logged(row, state, items, error)

    async def _store(self, write: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A store call of the delivery loop. On a database server it is a network round
        trip: made from a thread, the other connections' SMTP goes on meanwhile (it cost a
        third of a PostgreSQL node's time). On SQLite, a local write, made here."""
        if self.outbox.shared:
            return await asyncio.to_thread(write, *args, **kwargs)
        return write(*args, **kwargs)

    def _logged(self, row: OutboxRow, state: str, items: int, error: str = "") -> Outcome:
        # Each delivery at DEBUG (the outbox keeps them: `digest outbox`), a run's counts at
        # INFO; every digest that did not arrive at ERROR.
        level = logging.DEBUG if state in ("sent", "empty") else logging.ERROR
        log.log(
            level,
            "digest %s for %s: %s (%d items)%s",
            row.period,
            row.subscriber,
            state,
            items,
            f": {error}" if error else "",
            extra={"event": "mail", "state": state, "period": row.period, "items": items},
        )
        return Outcome(row.subscriber, row.period, state, items)

    async def run(
        self,
        *,
        schedule: str | None = None,
        recover: bool = False,
        stop: asyncio.Event | None = None,
    ) -> list[Outcome]:
        """Plan what is due now and deliver it; one bad recipient never blocks the others.
        Once `stop` is set no further digest is taken: those in flight finish, the rest stay
        due for the next run.

        With `[digests] processes` above 1 and enough due, the other processes
        (`digest send-shard`) each deliver the subscribers of their shard and this one the
        rest; a share whose process fails is delivered here."""
        stop = stop or asyncio.Event()
        now = self.now()
        self._windows.clear()  # entries change between runs
        self.plan(now, schedule=schedule)
        settled: list[Outcome] = []  # left unknown by a process that died
        with self._delivering() as lock:
            if recover or self.outbox.shared:
                settled += await self._recover(lock)
            due = self._due(now, schedule)
            shards = self.config.digests.processes if len(due) >= SHARDED_FROM else 1
            owners = [new_owner() for _ in range(1, shards)]
            helpers = [
                await asyncio.create_subprocess_exec(
                    *shard_command(self.config, k, shards, now.isoformat(), schedule, owner),
                    stdout=asyncio.subprocess.PIPE,
                )
                for k, owner in enumerate(owners, start=1)
            ]
            # Stopping this run stops theirs: they finish what they have in flight.
            relay = asyncio.create_task(terminate_on(stop, helpers))
            try:
                outcomes = await self._deliver_share(now, schedule, due, 0, shards, stop)
            finally:
                reports = [await helper.communicate() for helper in helpers]
                relay.cancel()
            failed: set[int] = set()
            for (k, helper), (out, _) in zip(enumerate(helpers, start=1), reports, strict=True):
                if helper.returncode == 0:
                    outcomes += [Outcome(**json.loads(line)) for line in out.splitlines()]
                else:
                    failed.add(k)
                    log.error(
                        "delivering process %d (shard %d of %d) exited with %s%s",
                        helper.pid,
                        k,
                        shards,
                        helper.returncode,
                        "" if stop.is_set() else "; its share is delivered by this one",
                        extra={"event": "mail", "state": "error", "code": helper.returncode},
                    )
            if failed:
                # What it left `sending`, now that nobody sends: once the server has seen
                # its session end too (its presence lock, free again), which can lag the
                # process's exit by a moment.
                for k in failed:
                    await asyncio.to_thread(self._wait_gone, owners[k - 1])
                settled += await self._recover(lock)
                rest = [
                    r for r in self._due(now, schedule) if shard(r.subscriber, shards) in failed
                ]
                outcomes += await self._deliver_share(now, schedule, rest, 0, 1, stop)
        delivered = len(outcomes)
        outcomes = settled + outcomes
        counts = Counter(o.state for o in outcomes)
        if outcomes:
            log.info(
                "digests: %s",
                ", ".join(f"{n} {state}" for state, n in sorted(counts.items())),
                extra={"event": "mail", "state": "run", **counts},
            )
        if stop.is_set() and delivered < len(due):
            log.warning(
                "stopped with %d of %d digests delivered; the next run sends the rest",
                delivered,
                len(due),
                extra={"event": "mail", "state": "stopped"},
            )
        return outcomes

    async def run_shard(
        self,
        at: datetime,
        index: int,
        shards: int,
        *,
        owner: int,
        schedule: str | None = None,
        stop: asyncio.Event | None = None,
    ) -> list[Outcome]:
        """`digest send-shard`: deliver shard `index` of what a run planned at `at` found due
        (on a shared store: whatever it claims first), claiming as `owner`."""
        self.owner = owner
        with self._delivering():
            self.roster(at, record=False)  # the run that started this one stored it
            due = [] if self.outbox.shared else self._due(at, schedule)
            return await self._deliver_share(at, schedule, due, index, shards, stop)

    def _wait_gone(self, owner: int) -> None:
        """Return once no live process holds `owner`'s presence (at once on SQLite, where
        the delivery file lock does this)."""
        with self.outbox.presence(owner):
            pass

    @contextlib.contextmanager
    def _delivering(self) -> Iterator[DeliveryLock | None]:
        """While this process may have claims in flight: on a shared store the server knows
        (presence); on SQLite, the delivery file lock."""
        if self.outbox.shared:
            with self.outbox.presence(self.owner):
                yield None
        else:
            with DeliveryLock(self.config) as lock:
                yield lock

    async def _deliver_share(
        self,
        now: datetime,
        schedule: str | None,
        due: list[OutboxRow],
        index: int,
        shards: int,
        stop: asyncio.Event | None,
    ) -> list[Outcome]:
        """This process's share: on a shared store, what it claims first, a few at a time
        (every node and process claims from the same rows, skipping each other's); on
        SQLite, the subscribers of shard `index`."""
        stop = stop or asyncio.Event()
        if self.outbox.shared:
            return await self._deliver_claimed(now, schedule, stop)
        return await self.deliver_all(
            [r for r in due if shard(r.subscriber, shards) == index], stop
        )

    def _due(self, now: datetime, schedule: str | None) -> list[OutboxRow]:
        return [
            row
            for row in self.outbox.due(now)
            if schedule is None or row.period.startswith(schedule + ":")
        ]

    async def _recover(self, lock: DeliveryLock | None) -> list[Outcome]:
        """Settle `sending` rows of processes that died; the ones that became unknown."""
        mailer = self.mailer_factory(self.config)
        try:
            if lock is None:  # the server tells the dead owners from the live
                return self.recover(mailer)
            with lock.alone() as alone:
                if alone:  # no other process is delivering: the rows are a dead one's
                    return self.recover(mailer)
                log.info(
                    "another process is delivering digests; rows left sending are "
                    "settled by a later run",
                    extra={"event": "mail", "state": "recover-later"},
                )
                return []
        finally:
            await mailer.close()

    async def deliver_all(self, due: list[OutboxRow], stop: asyncio.Event) -> list[Outcome]:
        if not due:
            return []
        queue = iter(enumerate(due))
        outcomes: list[Outcome | None] = [None] * len(due)

        async def work(mailer: Mailer) -> None:
            for i, row in queue:
                if stop.is_set():
                    return
                outcomes[i] = await self.deliver(row, mailer)

        await self._with_mailers(len(due), work)
        return [o for o in outcomes if o is not None]

    async def _deliver_claimed(
        self, now: datetime, schedule: str | None, stop: asyncio.Event
    ) -> list[Outcome]:
        outcomes: list[Outcome] = []

        async def work(mailer: Mailer) -> None:
            while not stop.is_set():
                rows = await self._store(
                    self.outbox.claim_due, now, owner=self.owner, limit=_CLAIMED, schedule=schedule
                )
                if not rows:
                    return
                for i, row in enumerate(rows):
                    if stop.is_set():
                        self.outbox.release(self.owner, rows[i:])  # due again, for anyone
                        return
                    if outcome := await self.deliver(row, mailer, claimed=True):
                        outcomes.append(outcome)

        await self._with_mailers(None, work)
        return outcomes

    async def _with_mailers(
        self, due: int | None, work: Callable[[Mailer], Awaitable[None]]
    ) -> None:
        """Run `work` on several connections, each delivering one digest at a time: one
        server's round trips overlap the others' and the next digest's rendering."""
        width = self.config.smtp.connections if self.config.smtp.host else 1
        mailers = [self.mailer_factory(self.config) for _ in range(min(width, due or width))]
        try:
            failures = await asyncio.gather(*map(work, mailers), return_exceptions=True)
            for failure in failures:
                if isinstance(failure, BaseException):
                    raise failure
        finally:
            for mailer in mailers:
                await mailer.close()

    def health(self) -> dict[str, object]:
        counts = self.outbox.outbox_counts()
        digests = {k: counts[k] for k in ("pending", "failed", "unknown", "dead")}
        return {"digests": digests, "degraded": bool(counts["unknown"] or counts["dead"])}

    # -- the daemon service ------------------------------------------------------------------------

    async def service(self, stop: asyncio.Event) -> None:
        """Send at the configured times, retry failures, catch up after downtime; send
        confirmation mails within seconds; delete sign-ups never confirmed."""
        timer_rang = asyncio.Event()
        timer = Timer(self.config.digests, timer_rang)
        timer.start()
        try:
            await self._guarded(stop, recover=True)  # missed periods are sent once, now
            swept = self.now() - _SWEEP
            while not stop.is_set():
                await self._quietly(self.send_notices(stop), "sending notices")
                if self.now() - swept >= _SWEEP:
                    swept = self.now()
                    await self._quietly(self._sweep(), "deleting lapsed sign-ups")
                retry = self.outbox.next_retry()
                wait = _NOTICE_POLL
                if retry is not None:
                    wait = min(wait, max(0.0, (retry - self.now()).total_seconds()))
                waiters = [asyncio.create_task(e.wait()) for e in (timer_rang, stop, self._nudge)]
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED), wait
                    )
                for task in waiters:
                    task.cancel()
                self._nudge.clear()
                retry_due = retry is not None and retry <= self.now()
                if not stop.is_set() and (timer_rang.is_set() or retry_due):
                    timer_rang.clear()
                    await self._guarded(stop)
        finally:
            timer.shutdown()

    async def _sweep(self) -> None:
        lapsed = self.subscribers.expire(self.now())
        if lapsed:
            log.info(
                "%d sign-up(s) never confirmed: deleted",
                lapsed,
                extra={"event": "subscribers", "state": "lapsed", "count": lapsed},
            )

    async def _quietly(self, work: Awaitable[object], what: str) -> None:
        try:
            await work
        except Exception as exc:  # the daemon and the next attempt go on
            log.exception("%s failed: %s", what, exc, extra={"event": "mail", "state": "error"})

    async def send_notices(self, stop: asyncio.Event) -> int:
        """Send the queued confirmation mails; how many were sent."""
        due = self.outbox.notices_due(self.now())
        if not due:
            return 0
        sent = 0
        mailer = self.mailer_factory(self.config)
        try:
            for notice in due:
                if stop.is_set():
                    break
                sent += await self._send_notice(notice, mailer)
        finally:
            await mailer.close()
        return sent

    async def _send_notice(self, notice: NoticeRow, mailer: Mailer) -> int:
        now = self.now()
        if not self.outbox.claim_notice(notice.id, now):
            return 0  # another process took it
        record = self.subscribers.find(email=notice.email)
        stale = record is None or (
            record.requested is None if notice.kind == "confirm" else record.state != "active"
        )
        if record is None or stale:
            why = "nothing to confirm any more" if notice.kind == "confirm" else "not active"
            self.outbox.finish_notice(notice.id, "dropped", now, error=why)
            return 0
        parcel = self.notices.compose(notice.kind, record, now)
        state, error, retry = "sent", None, None
        try:
            await mailer.send(parcel)
        except TransientMailError as exc:
            error = str(exc)
            if notice.attempts + 1 >= _NOTICE_ATTEMPTS:
                state = "dead"
            else:
                state = "failed"
                retry = now + timedelta(seconds=_BACKOFF[notice.attempts])
        except UnknownOutcomeError as exc:
            state, error = "unknown", str(exc)
        except PermanentMailError as exc:
            state, error = "dead", str(exc)
        self.outbox.finish_notice(
            notice.id, state, now, message_id=parcel.message_id, error=error, next_attempt=retry
        )
        log.log(
            logging.INFO if state == "sent" else logging.WARNING,
            "%s mail to %s: %s%s",
            notice.kind,
            notice.email,
            state,
            f": {error}" if error else "",
            extra={"event": "notice", "state": state, "kind": notice.kind},
        )
        return state == "sent"

    async def _guarded(self, stop: asyncio.Event, *, recover: bool = False) -> None:
        await self._quietly(self.run(recover=recover, stop=stop), "digest run")


__all__ = ["Outcome", "Sender", "Upcoming"]
