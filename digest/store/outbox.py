"""The outbox: the mail side of the store.

The outbox, keyed by (subscriber, period), is the source of truth for digests; its two writes
per digest (claim, finish) and the mark that DATA begins are SQL compiled once. Notices
(confirmation mails) go through the same states, one row each. The secret every subscriber
link is signed with is made the first time it is asked for.
"""

from __future__ import annotations

import secrets as secrets_module
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.engine import Engine

from .schema import chunks, dt, guarded, meta, notices, outbox, ts, writing
from .types import OUTBOX_STATES, NoticeRow, OutboxRow

_SECRET_KEY = "unsubscribe_secret"  # noqa: S105 - the meta key's name, not a secret


# The two writes of every digest, built once: building a statement costs more than running it.
_THIS_PERIOD = sa.and_(
    outbox.c.subscriber == sa.bindparam("_subscriber"), outbox.c.period == sa.bindparam("_period")
)
_CLAIM = (
    outbox.update()
    .where(
        _THIS_PERIOD,
        sa.or_(
            outbox.c.state == "pending",
            sa.and_(outbox.c.state == "failed", outbox.c.next_attempt <= sa.bindparam("_now")),
        ),
    )
    .values(
        state="sending",
        attempts=outbox.c.attempts + 1,
        updated=sa.bindparam("_now"),
        items=sa.bindparam("items"),
        message_id=None,
    )
)
# Recorded just before the message's DATA: from then on, only the server knows.
_DATA_BEGINS = (
    outbox.update()
    .where(_THIS_PERIOD, outbox.c.state == "sending")
    .values(message_id=sa.bindparam("message_id"))
)
_FINISH = (
    outbox.update()
    .where(_THIS_PERIOD)
    .values(
        {
            name: sa.bindparam(name)
            for name in ("state", "items", "message_id", "error", "next_attempt", "updated")
        }
    )
)


class _Prepared:
    """A statement compiled once to SQLite's SQL, run on a pooled DBAPI connection: for the
    two writes of every digest, SQLAlchemy's work per execution cost twice SQLite's."""

    def __init__(self, statement: sa.Update) -> None:
        compiled = statement.compile(dialect=sqlite_dialect(paramstyle="named"))
        self.sql = str(compiled)
        self.defaults = dict(compiled.params)  # its literals ('sending', …) are parameters


_CLAIM_SQL = _Prepared(_CLAIM)
_DATA_SQL = _Prepared(_DATA_BEGINS)
_FINISH_SQL = _Prepared(_FINISH)


def _outbox_row(r: sa.Row[Any]) -> OutboxRow:
    return OutboxRow(
        r.subscriber,
        r.period,
        dt(r.slot),
        r.state,
        r.attempts,
        dt(r.next_attempt) if r.next_attempt is not None else None,
        r.items,
        r.message_id,
        r.error,
        dt(r.updated),
    )


@guarded
class SqlOutbox:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def secret(self) -> str:
        """The key of every subscriber's signed links, made on first use."""
        with writing(self.engine) as conn:
            query = sa.select(meta.c.value).where(meta.c.key == _SECRET_KEY)
            found = conn.execute(query).scalar()
            if found is None:
                found = secrets_module.token_hex(32)
                conn.execute(meta.insert(), [{"key": _SECRET_KEY, "value": found}])
        return str(found)

    def last_slots(self) -> dict[str, datetime]:
        """Each subscriber's latest recorded period slot, whatever its state."""
        with self.engine.connect() as conn:
            query = sa.select(outbox.c.subscriber, sa.func.max(outbox.c.slot)).group_by(
                outbox.c.subscriber
            )
            return {r[0]: dt(r[1]) for r in conn.execute(query)}

    def add_periods(self, rows: Sequence[tuple[str, str, datetime]], now: datetime) -> None:
        """Record periods as pending; a period already recorded is left as it is."""
        with writing(self.engine) as conn:
            for chunk in chunks(list(rows)):
                existing = {
                    (r.subscriber, r.period)
                    for r in conn.execute(
                        sa.select(outbox.c.subscriber, outbox.c.period).where(
                            sa.tuple_(outbox.c.subscriber, outbox.c.period).in_(
                                [(s, p) for s, p, _ in chunk]
                            )
                        )
                    )
                }
                new = [
                    {
                        "subscriber": s,
                        "period": p,
                        "slot": ts(slot),
                        "state": "pending",
                        "attempts": 0,
                        "updated": ts(now),
                    }
                    for s, p, slot in chunk
                    if (s, p) not in existing
                ]
                if new:
                    conn.execute(outbox.insert(), new)

    def due(self, now: datetime) -> list[OutboxRow]:
        """Pending periods and failed ones whose retry time has come, oldest slot first."""
        ready = sa.or_(
            outbox.c.state == "pending",
            sa.and_(outbox.c.state == "failed", outbox.c.next_attempt <= ts(now)),
        )
        query = sa.select(outbox).where(ready).order_by(outbox.c.slot, outbox.c.subscriber)
        with self.engine.connect() as conn:
            return [_outbox_row(r) for r in conn.execute(query)]

    def next_retry(self) -> datetime | None:
        query = sa.select(sa.func.min(outbox.c.next_attempt)).where(outbox.c.state == "failed")
        with self.engine.connect() as conn:
            value = conn.execute(query).scalar()
        return dt(value) if value is not None else None

    def claim(
        self, subscriber: str, period: str, now: datetime, *, items: int | None = None
    ) -> bool:
        """pending/failed -> sending, committed before any mail is sent; False if another
        run took it."""
        values = {"_subscriber": subscriber, "_period": period, "_now": ts(now), "items": items}
        return self._write(_CLAIM_SQL, values) == 1

    def data_begins(self, subscriber: str, period: str, message_id: str) -> None:
        """Record, committed, that the message is about to be handed over (SMTP DATA, or the
        Maildir's rename): a row interrupted before this is safe to send again."""
        values = {"_subscriber": subscriber, "_period": period, "message_id": message_id}
        self._write(_DATA_SQL, values)

    def finish(
        self,
        subscriber: str,
        period: str,
        state: str,
        now: datetime,
        *,
        items: int | None = None,
        message_id: str | None = None,
        error: str | None = None,
        next_attempt: datetime | None = None,
    ) -> None:
        assert state in OUTBOX_STATES
        values = {
            "_subscriber": subscriber,
            "_period": period,
            "state": state,
            "items": items,
            "message_id": message_id,
            "error": error,
            "next_attempt": ts(next_attempt) if next_attempt else None,
            "updated": ts(now),
        }
        self._write(_FINISH_SQL, values)

    def _write(self, prepared: _Prepared, values: dict[str, Any]) -> int:
        """One statement in a transaction of its own, committed; the rows it changed."""
        raw = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            try:
                cursor.execute(prepared.sql, {**prepared.defaults, **values})
                raw.commit()
            except self.engine.dialect.loaded_dbapi.Error as exc:
                raw.rollback()
                # As SQLAlchemy would have raised it: `guarded` makes it a StoreError.
                raise sa.exc.DBAPIError(prepared.sql, values, exc) from exc
            except BaseException:
                raw.rollback()
                raise
            return int(cursor.rowcount)
        finally:
            raw.close()  # back to the pool

    def interrupted(self) -> list[OutboxRow]:
        """Rows left in `sending` by a process that died while sending them."""
        query = sa.select(outbox).where(outbox.c.state == "sending")
        with self.engine.connect() as conn:
            return [_outbox_row(r) for r in conn.execute(query)]

    def outbox_rows(self, limit: int = 50) -> list[OutboxRow]:
        query = sa.select(outbox).order_by(outbox.c.updated.desc(), outbox.c.slot.desc())
        with self.engine.connect() as conn:
            return [_outbox_row(r) for r in conn.execute(query.limit(limit))]

    def outbox_counts(self) -> dict[str, int]:
        query = sa.select(outbox.c.state, sa.func.count()).group_by(outbox.c.state)
        with self.engine.connect() as conn:
            found = {r[0]: int(r[1]) for r in conn.execute(query)}
        return {state: found.get(state, 0) for state in OUTBOX_STATES}

    # -- notices ------------------------------------------------------------------------------

    def notices_due(self, now: datetime) -> list[NoticeRow]:
        ready = sa.or_(
            notices.c.state == "pending",
            sa.and_(notices.c.state == "failed", notices.c.next_attempt <= ts(now)),
        )
        query = sa.select(notices).where(ready).order_by(notices.c.id)
        with self.engine.connect() as conn:
            return [_notice(r) for r in conn.execute(query)]

    def claim_notice(self, notice: int, now: datetime) -> bool:
        """pending/failed -> sending, committed before the mail leaves."""
        mine = sa.and_(
            notices.c.id == notice,
            sa.or_(
                notices.c.state == "pending",
                sa.and_(notices.c.state == "failed", notices.c.next_attempt <= ts(now)),
            ),
        )
        with writing(self.engine) as conn:
            claimed = conn.execute(
                notices.update()
                .where(mine)
                .values(state="sending", attempts=notices.c.attempts + 1, updated=ts(now))
            )
            return bool(claimed.rowcount)

    def finish_notice(
        self,
        notice: int,
        state: str,
        now: datetime,
        *,
        message_id: str | None = None,
        error: str | None = None,
        next_attempt: datetime | None = None,
    ) -> None:
        values = {
            "state": state,
            "message_id": message_id,
            "error": error,
            "next_attempt": ts(next_attempt) if next_attempt else None,
            "updated": ts(now),
        }
        with writing(self.engine) as conn:
            conn.execute(notices.update().where(notices.c.id == notice).values(values))

    def interrupted_notices(self) -> list[NoticeRow]:
        with self.engine.connect() as conn:
            query = sa.select(notices).where(notices.c.state == "sending")
            return [_notice(r) for r in conn.execute(query)]


def _notice(r: sa.Row[Any]) -> NoticeRow:
    return NoticeRow(
        r.id,
        r.email,
        r.kind,
        dt(r.created),
        r.state,
        r.attempts,
        dt(r.next_attempt) if r.next_attempt is not None else None,
        r.message_id,
        r.error,
    )
