"""The facade: one `Digest` made by `make_digest`, for the commands and the daemon.

It opens the store and runs the stages in order — ingest (ingest.py: sources, parse, merge,
classify, into the store), then publish (site/) — and answers questions about what is stored.
The mail stage is not here: the daemon runs it as a service beside the watcher.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
from typing import Protocol

from .classify import Subject, subjects
from .config import Config
from .ingest import BuildReport, Ingest
from .model import Entry, Problem, Progress, no_progress
from .process import Helpers
from .site import Publisher, PublishReport
from .store import Store, open_store


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC).replace(microsecond=0)


class Digest:
    def __init__(self, config: Config, store: Store, clock: Clock) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        # Helper processes for a large build, shared by the ingest and the publish after it.
        self.helpers = Helpers(config)
        self.ingest = Ingest(config, store.entries, self.helpers)
        self.publisher = Publisher(config, store.entries, store.index, self.helpers)

    def build(
        self, progress: Progress = no_progress, *, only: Collection[str] | None = None
    ) -> BuildReport:
        """Ingest what changed in the seeds folder; writes nothing when nothing changed.
        `only` names the files a watcher saw change (see Ingest.build). Helpers it starts
        stay for the publish after it."""
        try:
            return self.ingest.build(self.clock.now(), progress, only=only)
        except BaseException:
            self.helpers.close()
            raise

    def publish(self, progress: Progress = no_progress, *, verify: bool = True) -> PublishReport:
        """Bring the public folder up to date with the store; rewrites only what changed.
        Without `verify`, files deleted by hand from the public folder are not noticed. The
        build's helpers stop when it ends."""
        try:
            return self.publisher.publish(progress, verify=verify)
        finally:
            self.helpers.close()

    def subjects(self) -> tuple[list[Subject], list[Subject]]:
        """(officials, topics) with their entry counts and latest entries."""
        stats = self.store.index.channel_stats()
        return subjects(self.config.classification, stats, self.store.entries.discovered())

    def cluster(self) -> dict[str, object]:
        """For /healthz: who ingests, and how far behind the change log each node publishes."""
        now = self.clock.now()
        return {
            "node": self.store.nodes.node,
            "ingest_lease": self.store.nodes.lease_holder(),
            "publish": [
                {
                    "node": n.name,
                    "behind": n.head - n.seq,
                    "lag_seconds": round((now - n.oldest_unpublished).total_seconds())
                    if n.oldest_unpublished
                    else 0,
                }
                for n in self.store.index.nodes()
            ],
        }

    def entries(self) -> list[Entry]:
        return self.store.entries.entries()

    def problems(self) -> list[Problem]:
        return self.store.entries.problems()

    def close(self) -> None:
        self.helpers.close()
        self.store.close()


def make_digest(config: Config, *, clock: Clock | None = None) -> Digest:
    """The one way to get a Digest: opens the configured store."""
    settings = config.store
    store = open_store(settings.url, node=settings.node, password=settings.password())
    return Digest(config, store, clock or SystemClock())


__all__ = ["BuildReport", "Clock", "Digest", "SystemClock", "make_digest"]
