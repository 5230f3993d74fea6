"""Subscribers: who gets which digest, their consent and link keys; the forms' rate limit.

The rules (who may sign up, when a confirmation mail goes) are the caller's: `change` runs
the caller's decision on one subscriber inside a transaction, and writes what it decided
only if nobody wrote that subscriber in between (the row's `rev`), so two processes
answering the same address at once cannot both send it a confirmation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..model import Choices
from .schema import chunks, dt, form_hits, guarded, notices, outbox, subscribers, ts, writing
from .types import Decide, SubscriberRecord


class _Lost(Exception):
    """Another process wrote the row this transaction read."""


def _busy(exc: sa.exc.OperationalError) -> bool:
    """SQLite's answer when a read transaction turns writer after another wrote (WAL): it
    cannot wait for that, only start again."""
    return "locked" in str(exc.orig) or "busy" in str(exc.orig)


_TRIES = 5  # a write that lost to another process's is decided again, this often at most
_HITS_KEPT = timedelta(hours=2)


def _choices(value: Any) -> Choices | None:
    if value is None:
        return None
    return Choices(value["schedule"], tuple(value["officials"]), tuple(value["topics"]))


def _record(r: sa.Row[Any]) -> SubscriberRecord:
    return SubscriberRecord(
        email=r.email,
        key=r.key,
        name=r.name,
        choices=Choices(r.schedule, tuple(r.officials), tuple(r.topics)),
        state=r.state,
        source=r.source,
        created=dt(r.created),
        since=dt(r.first_seen) if r.first_seen is not None else None,
        unsubscribed=dt(r.unsubscribed) if r.unsubscribed is not None else None,
        consent=r.consent,
        version=r.version,
        requested=_choices(r.requested),
        expires=dt(r.expires) if r.expires is not None else None,
        noticed=dt(r.noticed) if r.noticed is not None else None,
        rev=r.rev,
    )


def _when(moment: datetime | None) -> int | None:
    return ts(moment) if moment is not None else None


def _row(record: SubscriberRecord) -> dict[str, Any]:
    c, wanted = record.choices, record.requested
    return {
        "email": record.email.lower(),
        "key": record.key,
        "name": record.name,
        "schedule": c.schedule,
        "officials": list(c.officials),
        "topics": list(c.topics),
        "state": record.state,
        "source": record.source,
        "created": ts(record.created),
        "first_seen": _when(record.since),
        "unsubscribed": _when(record.unsubscribed),
        "consent": dict(record.consent) if record.consent is not None else None,
        "version": record.version,
        "requested": (
            {"schedule": wanted.schedule, "officials": wanted.officials, "topics": wanted.topics}
            if wanted is not None
            else None
        ),
        "expires": _when(record.expires),
        "noticed": _when(record.noticed),
    }


def _queue(conn: Connection, email: str, kind: str, now: datetime) -> None:
    conn.execute(
        notices.insert().values(
            email=email,
            kind=kind,
            created=ts(now),
            state="pending",
            attempts=0,
            updated=ts(now),
        )
    )


def _forget(conn: Connection, emails: Sequence[str]) -> int:
    """Delete these subscribers and everything kept about them: digests and notices too."""
    gone = 0
    for chunk in chunks(list(emails)):
        gone += conn.execute(subscribers.delete().where(subscribers.c.email.in_(chunk))).rowcount
        conn.execute(outbox.delete().where(outbox.c.subscriber.in_(chunk)))
        conn.execute(notices.delete().where(notices.c.email.in_(chunk)))
    return gone


@guarded
class SqlSubscribers:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def all(self) -> list[SubscriberRecord]:
        with self.engine.connect() as conn:
            query = sa.select(subscribers).order_by(subscribers.c.email)
            return [_record(r) for r in conn.execute(query)]

    def active(self) -> list[SubscriberRecord]:
        with self.engine.connect() as conn:
            query = (
                sa.select(subscribers)
                .where(subscribers.c.state == "active")
                .order_by(subscribers.c.email)
            )
            return [_record(r) for r in conn.execute(query)]

    def find(self, *, email: str | None = None, key: str | None = None) -> SubscriberRecord | None:
        if email is not None:
            where = subscribers.c.email == email.lower()
        elif key is not None:
            where = subscribers.c.key == key
        else:
            raise TypeError("find needs an email or a key")
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(subscribers).where(where)).first()
        return _record(row) if row is not None else None

    def change(self, email: str, decide: Decide, now: datetime) -> SubscriberRecord | None:
        """Run `decide` on the stored subscriber (or None) and store what it returns: the
        record (None: delete it), and the notice to queue with it, in one transaction. The
        record as stored afterwards."""
        key = email.lower()
        for _ in range(_TRIES):
            try:
                with writing(self.engine) as conn:
                    row = conn.execute(
                        sa.select(subscribers).where(subscribers.c.email == key)
                    ).first()
                    old = _record(row) if row is not None else None
                    new, notice = decide(old)
                    if new is old:
                        return old
                    if new is None:
                        if old is not None:
                            _forget(conn, [key])
                        return None
                    if old is None:
                        conn.execute(subscribers.insert().values({**_row(new), "rev": 1}))
                    elif not conn.execute(
                        subscribers.update()
                        .where(subscribers.c.email == key, subscribers.c.rev == old.rev)
                        .values({**_row(new), "rev": old.rev + 1})
                    ).rowcount:
                        raise _Lost
                    if notice is not None:
                        _queue(conn, key, notice, now)
                    # Read back in the transaction: after it, another process may already
                    # have written the address again.
                    stored = conn.execute(
                        sa.select(subscribers).where(subscribers.c.email == key)
                    ).one()
            except (_Lost, sa.exc.IntegrityError):
                continue  # another process wrote this address in between: decide again
            except sa.exc.OperationalError as exc:
                if not _busy(exc):
                    raise
                continue  # SQLite: another writer won the race for the file
            return _record(stored)
        raise RuntimeError(f"{key}: written by others {_TRIES} times while deciding")

    def save(self, records: Sequence[SubscriberRecord]) -> None:
        """Store these records as they are (config and imports), replacing any by address."""
        with writing(self.engine) as conn:
            for record in records:
                values = _row(record)
                done = conn.execute(
                    subscribers.update()
                    .where(subscribers.c.email == values["email"])
                    .values({**values, "rev": subscribers.c.rev + 1})
                ).rowcount
                if not done:
                    conn.execute(subscribers.insert().values({**values, "rev": 1}))

    def delete(self, emails: Iterable[str]) -> int:
        with writing(self.engine) as conn:
            return _forget(conn, [e.lower() for e in emails])

    def expire(self, now: datetime) -> int:
        """Sign-ups not confirmed in time: never-confirmed subscribers are deleted, and a
        returning one's request is dropped. Old rate-limit counts go too. How many lapsed."""
        lapsed = subscribers.c.expires.is_not(None) & (subscribers.c.expires < ts(now))
        with writing(self.engine) as conn:
            gone = conn.execute(
                sa.select(subscribers.c.email).where(lapsed, subscribers.c.state == "pending")
            ).scalars()
            count = _forget(conn, list(gone))
            count += conn.execute(
                subscribers.update()
                .where(lapsed)
                .values(requested=None, expires=None, rev=subscribers.c.rev + 1)
            ).rowcount
            conn.execute(form_hits.delete().where(form_hits.c.window < ts(now - _HITS_KEPT)))
        return count

    def hit(self, client: str, now: datetime, limit: int) -> bool:
        """Count one sign-up from `client` in this hour; False once it has sent `limit`."""
        window = ts(now) // 3600 * 3600
        this = (form_hits.c.client == client) & (form_hits.c.window == window)
        for _ in range(_TRIES):
            try:
                with writing(self.engine) as conn:
                    count = conn.execute(sa.select(form_hits.c.count).where(this)).scalar()
                    if count is None:
                        conn.execute(
                            form_hits.insert().values(client=client, window=window, count=1)
                        )
                        return True
                    if count >= limit:
                        return False
                    if not conn.execute(
                        form_hits.update()
                        .where(this, form_hits.c.count == count)
                        .values(count=count + 1)
                    ).rowcount:
                        raise _Lost
                    return True
            except (_Lost, sa.exc.IntegrityError):
                continue
            except sa.exc.OperationalError as exc:
                if not _busy(exc):
                    raise
        return False

    def notices_since(self, since: datetime) -> int:
        with self.engine.connect() as conn:
            query = sa.select(sa.func.count()).where(notices.c.created >= ts(since))
            return int(conn.execute(query).scalar() or 0)
