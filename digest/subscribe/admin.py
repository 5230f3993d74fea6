"""The operator's side: `digest subscribers list|add|remove|export|import`.

Adding or importing is the operator's word that the reader agreed (recorded as the consent,
with how). Two things only readers can do: subscribe again after unsubscribing, and change
a config.toml subscriber's choices (the file's). An import is idempotent: the same file twice
changes nothing the second time; every bad row is one line naming the file and row. An
export keeps each subscriber's state, and an import honours it: an opt-out stays one, and a
sign-up never confirmed is not made a subscriber by moving it.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from ..classify import Subject
from ..errors import ConfigError
from ..model import Choices
from ..store import SubscriberRecord, SubscriberStore, new_key
from . import rules

COLUMNS = ("email", "name", "schedule", "officials", "topics", "state", "source", "since")


def row(record: SubscriberRecord) -> dict[str, Any]:
    """A subscriber as exported (and listed with --json): what import reads back, and more."""
    c = record.choices
    return {
        "email": record.email,
        "name": record.name,
        "schedule": c.schedule,
        "officials": list(c.officials),
        "topics": list(c.topics),
        "state": record.state,
        "source": record.source,
        "since": record.since.isoformat() if record.since else None,
        "unsubscribed": record.unsubscribed.isoformat() if record.unsubscribed else None,
        "consent": dict(record.consent) if record.consent else None,
    }


def export(records: Iterable[SubscriberRecord], fmt: str) -> str:
    rows = [row(r) for r in records]
    if fmt == "json":
        return json.dumps(rows, ensure_ascii=False, indent=2) + "\n"
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow(
            r | {"officials": " ".join(r["officials"]), "topics": " ".join(r["topics"])}
        )
    return out.getvalue()


@dataclass
class Report:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0  # sign-ups never confirmed: not subscribers
    problems: list[str] = field(default_factory=list)


class Admin:
    def __init__(
        self,
        people: SubscriberStore,
        officials: Sequence[Subject],
        topics: Sequence[Subject],
        now: datetime,
        *,
        configured: Collection[str] = (),
    ) -> None:
        self.people = people
        self.officials = {s.slug for s in officials}
        self.topics = {s.slug for s in topics}
        self.now = now
        self.configured = {e.lower() for e in configured}  # addresses config.toml lists

    def choices(self, schedule: str, officials: Sequence[str], topics: Sequence[str]) -> Choices:
        """Checked choices; ValueError says what is wrong, in one line."""
        if schedule not in ("daily", "weekly"):
            raise ValueError(f'schedule {schedule!r} must be "daily" or "weekly"')
        for slug, known, what in [
            *((s, self.officials, "official") for s in officials),
            *((s, self.topics, "topic") for s in topics),
        ]:
            if slug not in known:
                raise ValueError(f"unknown {what} {slug!r}; see `digest {what}s`")
        return Choices(schedule, tuple(dict.fromkeys(officials)), tuple(dict.fromkeys(topics)))

    def add(self, email: str, name: str, choices: Choices, *, via: str, **how: str) -> str:
        """'added', 'updated' or 'unchanged'; ValueError when only the reader may do it."""
        address, problem = rules.normal_address(email)
        if problem:
            raise ValueError(f"{email!r} is not an e-mail address: it {problem}")
        said: list[str] = []

        def decide(old: SubscriberRecord | None) -> tuple[SubscriberRecord | None, None]:
            if old is None:
                said.append("added")
                return SubscriberRecord(
                    email=address,
                    key=new_key(),
                    name=name,
                    choices=choices,
                    state="active",
                    source=via,
                    created=self.now,
                    since=self.now,
                    consent=rules.consent(via, self.now, **how),
                ), None
            if address in self.configured:  # the file's: asking for what it says is no change
                if (old.name, old.choices) == (name, choices):
                    said.append("unchanged")
                    return old, None
                raise ValueError(f"{address} is in config.toml: change its [[subscribers]] block")
            if old.state == "unsubscribed":
                when = old.unsubscribed.date().isoformat() if old.unsubscribed else "earlier"
                raise ValueError(
                    f"{address} unsubscribed on {when}: only they can subscribe again "
                    "(on the site's sign-up page)"
                )
            new = replace(old, name=name, choices=choices)
            if old.source == "config":  # a block since removed: the operator's by hand now
                new = replace(new, source=via)
            if old.state == "pending":  # the operator vouches for the address
                new = replace(
                    new,
                    state="active",
                    since=self.now,
                    consent=rules.consent(via, self.now, **how),
                    requested=None,
                    expires=None,
                )
            said.append("unchanged" if new == old else "updated")
            return (old if new == old else new), None

        self.people.change(address, decide, self.now)
        return said[-1]

    def remove(self, email: str) -> bool:
        address, problem = rules.normal_address(email)
        if problem:
            raise ValueError(f"{email!r} is not an e-mail address: it {problem}")
        if address in self.configured:
            raise ValueError(f"{address} is in config.toml: remove its [[subscribers]] block")
        return bool(self.people.delete([address]))

    def opt_out(self, email: str) -> str:
        """Record that `email` unsubscribed (an import of someone who had): 'added',
        'updated' or 'unchanged'."""
        address, problem = rules.normal_address(email)
        if problem:
            raise ValueError(f"{email!r} is not an e-mail address: it {problem}")
        outcome, before = rules.Outcome(), self.people.find(email=address)
        self.people.change(
            address,
            lambda old: rules.unsubscribe(old, email=address, now=self.now, outcome=outcome),
            self.now,
        )
        if before is None:
            return "added"
        return "unchanged" if before.state == "unsubscribed" else "updated"

    def import_file(self, path: Path) -> Report:
        report = Report()
        first: dict[str, str] = {}  # address -> where the file first lists it
        for where, item in _read(path):
            address, _ = rules.normal_address(str(item.get("email") or ""))
            if address and address in first:
                report.problems.append(
                    f"{path}:{where}: {address} is listed again (first at {first[address]})"
                )
                continue
            first[address] = where
            state = str(item.get("state") or "active")
            if state == "pending":
                report.skipped += 1
                continue
            try:
                if state == "unsubscribed":
                    said = self.opt_out(address)
                    setattr(report, said, getattr(report, said) + 1)
                    continue
                if state != "active":
                    raise ValueError(f"state {state!r} must be active, unsubscribed or pending")
                officials, topics = _slugs(item.get("officials")), _slugs(item.get("topics"))
                choices = self.choices(str(item.get("schedule") or "daily"), officials, topics)
                said = self.add(
                    str(item.get("email") or ""),
                    str(item.get("name") or ""),
                    choices,
                    via="import",
                    file=path.name,
                )
            except ValueError as exc:
                report.problems.append(f"{path}:{where}: {exc}")
                continue
            setattr(report, said, getattr(report, said) + 1)
        return report


def _read(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(where, row) of a CSV (with a header row) or JSON (an array of objects) file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it: {exc}") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
        if not isinstance(data, list):
            raise ConfigError(f"{path}: must be a JSON array of objects, as `export` writes")
        return [
            (f"item {i}", item if isinstance(item, dict) else {"email": None})
            for i, item in enumerate(data, start=1)
        ]
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or "email" not in reader.fieldnames:
        raise ConfigError(f"{path}:1: the first row must name the columns, email among them")
    return [(str(reader.line_num), dict(item)) for item in reader]


def _slugs(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return value.replace(",", " ").split()
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise ValueError(f"{value!r} must be slugs (a list, or separated by spaces)")
