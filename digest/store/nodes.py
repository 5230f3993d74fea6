"""Which daemon ingests: a lease that one node holds and another takes over when it dies.

On PostgreSQL the lease is a session-level advisory lock held on a connection of its own:
the server releases it the moment the holder's session ends (its process killed, or its
machine silent past the keepalives set in schema.open_engine), so no clock and no timeout of
ours decide who is alive. pg_locks with pg_stat_activity tell who holds it, by the
application name each node connects with. On SQLite there is one daemon per store file (the
writer lock) and it always holds the lease.
"""

from __future__ import annotations

import threading

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .schema import LEASE_LOCK, LOCKS, guarded


@guarded
class SqlNodes:
    def __init__(self, engine: Engine, node: str) -> None:
        self.engine = engine
        self.node = node
        self.shared = engine.dialect.name == "postgresql"
        self._lease: Connection | None = None
        self._lock = threading.Lock()  # the daemon asks from its build thread and its loop

    def take_lease(self) -> bool:
        with self._lock:
            return self._take()

    def _take(self) -> bool:
        """Hold the ingest lease if nobody does; True while this node holds it. A lease lost
        with its connection (the server restarted) is reported lost, then taken again."""
        if not self.shared:
            return True
        if self._lease is not None:
            try:
                self._lease.execute(sa.select(1)).scalar()
                self._lease.commit()
                return True
            except sa.exc.DBAPIError:
                self._drop()  # the session, and the lock with it, is gone
        conn = self.engine.connect()
        try:
            query = sa.select(sa.func.pg_try_advisory_lock(LOCKS, LEASE_LOCK))
            taken = bool(conn.execute(query).scalar())
            conn.commit()
        except BaseException:
            conn.invalidate()
            conn.close()
            raise
        if not taken:
            conn.close()
            return False
        self._lease = conn
        return True

    def release_lease(self) -> None:
        with self._lock:
            self._release()

    def _release(self) -> None:
        if self._lease is not None:
            try:
                self._lease.execute(sa.select(sa.func.pg_advisory_unlock(LOCKS, LEASE_LOCK)))
                self._lease.commit()
            except sa.exc.DBAPIError:
                pass  # the session is gone: so is the lock
            self._drop()

    def _drop(self) -> None:
        if self._lease is not None:
            self._lease.invalidate()  # never back to the pool: it may still hold the lock
            self._lease.close()
            self._lease = None

    def lease_holder(self) -> str | None:
        """The name of the node holding the ingest lease, or None."""
        if not self.shared:
            return self.node
        query = sa.text(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = :space "
            "AND l.objid = :key AND l.objsubid = 2"
        )
        with self.engine.connect() as conn:
            name = conn.execute(query, {"space": LOCKS, "key": LEASE_LOCK}).scalar()
        return str(name).removeprefix("digest ") if name is not None else None
