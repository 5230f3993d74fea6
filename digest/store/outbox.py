"""The outbox: the mail side of the store.

The outbox, keyed by (subscriber, period), is the source of truth for digests; its two writes
per digest (claim, finish) and the mark that DATA begins are SQL compiled once. Notices
(confirmation mails) go through the same states, one row each. The secret every subscriber
link is signed with is made the first time it is asked for.
"""

from __future__ import annotations

import contextlib
import secrets as secrets_module
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection, Engine

from .schema import OWNERS, chunks, dt, guarded, insert, meta, notices, outbox, ts, writing
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
        owner=sa.bindparam("_owner"),
    )
)
# Only the claim's owner writes a `sending` row: a process that lost its claim (declared dead
# while it was only slow) can neither send nor record.
_OWNED = sa.and_(
    _THIS_PERIOD, outbox.c.state == "sending", outbox.c.owner == sa.bindparam("_owner")
)
# Recorded just before the message's DATA: from then on, only the server knows.
_DATA_BEGINS = (
    outbox.update()
    .where(_OWNED)
    .values(message_id=sa.bindparam("message_id"), items=sa.bindparam("items"))
)
_OUTCOME: dict[str, Any] = {
    name: sa.bindparam(name)
    for name in ("state", "items", "message_id", "error", "next_attempt", "updated")
}
_FINISH = outbox.update().where(_THIS_PERIOD).values(_OUTCOME)
_FINISH_OWNED = outbox.update().where(_OWNED).values(_OUTCOME)


class _Prepared:
    """A statement compiled once per database, run on a pooled DBAPI connection: for the
    writes of every digest, SQLAlchemy's work per execution cost twice SQLite's."""

    def __init__(self, statement: sa.Update, dialect: sa.Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = str(compiled)
        self.defaults = dict(compiled.params)  # its literals ('sending', …) are parameters


class _Statements:
    def __init__(self, dialect: sa.Dialect) -> None:
        if dialect.name == "sqlite":  # parameters by name, as PostgreSQL's driver takes them
            dialect = sqlite.dialect(paramstyle="named")
        self.claim = _Prepared(_CLAIM, dialect)
        self.data = _Prepared(_DATA_BEGINS, dialect)
        self.finish = _Prepared(_FINISH, dialect)
        self.finish_owned = _Prepared(_FINISH_OWNED, dialect)


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
        r.owner,
    )


@guarded
class SqlOutbox:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.shared = engine.dialect.name == "postgresql"
        self._sql = _Statements(engine.dialect)
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")

    def secret(self) -> str:
        """The key of every subscriber's signed links, made on first use."""
        query = sa.select(meta.c.value).where(meta.c.key == _SECRET_KEY)
        with self.engine.connect() as conn:
            found = conn.execute(query).scalar()
        if found is None:
            with writing(self.engine) as conn:
                # Two daemons starting at once: the first one's secret is everyone's.
                new = {"key": _SECRET_KEY, "value": secrets_module.token_hex(32)}
                conn.execute(insert(conn, meta).values(new).on_conflict_do_nothing())
                found = conn.execute(query).scalar()
        return str(found)

    @contextlib.contextmanager
    def presence(self, owner: int) -> Iterator[None]:
        """While this block runs, claims made by `owner` belong to a live process. On
        PostgreSQL a session holds the advisory lock (OWNERS, owner): the server lets go
        when the process dies or its machine stops answering keepalives, and that — not a
        guess by another node — is what makes its rows recoverable. On SQLite the caller's
        file lock does this (mail/shards.py)."""
        if not self.shared:
            yield
            return
        with self.engine.connect() as conn:
            conn.execute(sa.select(sa.func.pg_advisory_lock(OWNERS, owner)))
            conn.commit()
            try:
                yield
            finally:
                conn.execute(sa.select(sa.func.pg_advisory_unlock(OWNERS, owner)))
                conn.commit()

    def claim_due(
        self, now: datetime, *, owner: int, limit: int, schedule: str | None = None
    ) -> list[OutboxRow]:
        """Claim up to `limit` due digests for `owner` (pending/failed -> sending), oldest
        slot first, committed before any mail leaves. Rows another process is claiming at
        the same moment are skipped, not waited for (FOR UPDATE SKIP LOCKED)."""
        ready = sa.or_(
            outbox.c.state == "pending",
            sa.and_(outbox.c.state == "failed", outbox.c.next_attempt <= ts(now)),
        )
        if schedule is not None:
            ready = sa.and_(ready, outbox.c.period.startswith(schedule + ":", autoescape=True))
        chosen = (
            sa.select(outbox.c.subscriber, outbox.c.period)
            .where(ready)
            .order_by(outbox.c.slot, outbox.c.subscriber)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        claim = (
            outbox.update()
            .where(sa.tuple_(outbox.c.subscriber, outbox.c.period).in_(chosen))
            .values(
                state="sending",
                attempts=outbox.c.attempts + 1,
                updated=ts(now),
                message_id=None,
                owner=owner,
            )
            .returning(*outbox.c)
        )
        with self._one_statement() as conn:
            rows = [_outbox_row(r) for r in conn.execute(claim)]
        return sorted(rows, key=lambda r: (r.slot, r.subscriber))

    def release(self, owner: int, rows: Sequence[OutboxRow]) -> None:
        """Give back claimed rows that were never begun (a stopping process): due again."""
        with writing(self.engine) as conn:
            for chunk in chunks([(r.subscriber, r.period) for r in rows]):
                conn.execute(
                    outbox.update()
                    .where(
                        sa.tuple_(outbox.c.subscriber, outbox.c.period).in_(chunk),
                        outbox.c.owner == owner,
                        outbox.c.state == "sending",
                        outbox.c.message_id.is_(None),
                    )
                    .values(
                        state=sa.case((outbox.c.attempts <= 1, "pending"), else_="failed"),
                        attempts=outbox.c.attempts - 1,
                        owner=None,
                    )
                )

    def last_slots(self) -> dict[str, datetime]:
        """Each subscriber's latest recorded period slot, whatever its state."""
        with self.engine.connect() as conn:
            query = sa.select(outbox.c.subscriber, sa.func.max(outbox.c.slot)).group_by(
                outbox.c.subscriber
            )
            return {r[0]: dt(r[1]) for r in conn.execute(query)}

    def add_periods(self, rows: Sequence[tuple[str, str, datetime]], now: datetime) -> None:
        """Record periods as pending; a period already recorded is left as it is (also when
        another daemon records it at the same moment)."""
        with writing(self.engine) as conn:
            for chunk in chunks(list(rows)):
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
                ]
                conn.execute(insert(conn, outbox).on_conflict_do_nothing(), new)

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
        self,
        subscriber: str,
        period: str,
        now: datetime,
        *,
        owner: int,
        items: int | None = None,
    ) -> bool:
        """pending/failed -> sending, for `owner`, committed before any mail is sent; False
        if another run took it."""
        values = {
            "_subscriber": subscriber,
            "_period": period,
            "_now": ts(now),
            "_owner": owner,
            "items": items,
        }
        return self._write(self._sql.claim, values) == 1

    def data_begins(
        self, subscriber: str, period: str, message_id: str, *, owner: int, items: int
    ) -> bool:
        """Record, committed, that the message is about to be handed over (SMTP DATA, or the
        Maildir's rename): a row interrupted before this is safe to send again. False if the
        row is no longer this owner's claim: then nothing may be sent."""
        values = {
            "_subscriber": subscriber,
            "_period": period,
            "_owner": owner,
            "message_id": message_id,
            "items": items,
        }
        return self._write(self._sql.data, values) == 1

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
        owner: int | None = None,
    ) -> bool:
        """Record an outcome; with `owner`, only if the row is still that owner's claim.
        False if it was not recorded."""
        assert state in OUTBOX_STATES
        values = {
            "_subscriber": subscriber,
            "_period": period,
            "_owner": owner,
            "state": state,
            "items": items,
            "message_id": message_id,
            "error": error,
            "next_attempt": ts(next_attempt) if next_attempt else None,
            "updated": ts(now),
        }
        return (
            self._write(self._sql.finish if owner is None else self._sql.finish_owned, values) == 1
        )

    @contextlib.contextmanager
    def _one_statement(self) -> Iterator[Connection]:
        """A connection for one statement committed on its own: on PostgreSQL in autocommit
        (one round trip, where BEGIN, the statement and COMMIT are three); on SQLite in a
        write transaction (BEGIN IMMEDIATE: see schema.writing)."""
        if self.shared:
            with self._autocommit.connect() as conn:
                yield conn
        else:
            with writing(self.engine) as conn:
                yield conn

    def _write(self, prepared: _Prepared, values: dict[str, Any]) -> int:
        """One statement in a transaction of its own, committed; the rows it changed."""
        parameters = {**prepared.defaults, **values}
        if self.shared:
            with self._one_statement() as conn:
                return int(conn.exec_driver_sql(prepared.sql, parameters).rowcount)
        raw = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            try:
                cursor.execute(prepared.sql, parameters)
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
        """Rows left in `sending` by a process that died while sending them. On PostgreSQL,
        those whose owner holds no presence lock: the server, which sees every node's
        session, decides. On SQLite, every such row: the caller holds the delivery file lock
        alone, so no other process is sending."""
        query = sa.select(outbox).where(outbox.c.state == "sending")
        with self.engine.connect() as conn:
            if self.shared:
                query = query.where(outbox.c.owner.is_(None) | outbox.c.owner.not_in(_live(conn)))
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


def _live(conn: Connection) -> list[int]:
    """Owners whose process holds its presence lock now."""
    locks = sa.text(
        "SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND classid = :space AND objsubid = 2"
    )
    return list(conn.execute(locks, {"space": OWNERS}).scalars())


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
