"""The `digest` command line."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib.metadata
import json
import logging
import os
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time
from pathlib import Path
from time import monotonic
from typing import TYPE_CHECKING, Any

from .app import Digest, make_digest
from .classify import Subject
from .config import Config, load
from .errors import DigestError
from .ingest import BuildReport
from .locks import writer_lock
from .mail import Outcome, Sender, make_sender
from .mail.compose import bodies
from .model import VIETNAM, Entry, Problem, rfc3339
from .process import collect_less, stop_on_signals

if TYPE_CHECKING:
    from .search.web import SearchPages
    from .subscribe.admin import Admin
    from .subscribe.web import Forms
from .text import printable

log = logging.getLogger("digest")

EXIT_USAGE = 2  # as argparse: a command's own arguments are wrong

_RECORD_FIELDS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        body.update({k: v for k, v in vars(record).items() if k not in _RECORD_FIELDS})
        if record.exc_info:
            body["error"] = self.formatException(record.exc_info)
        return json.dumps(body, ensure_ascii=False, default=str)


def setup_logging(fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)


def _display(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def _problem_line(config: Config, problem: Problem) -> str:
    where = printable(_display(config.paths.seeds / problem.file))
    return f"{where}:{problem.line}: {printable(problem.message)}"


def entry_json(entry: Entry) -> dict[str, Any]:
    """The public JSON shape of an entry (`digest entries --json`); later stages rely on it."""
    return {
        "id": entry.id,
        "title": entry.title,
        "published": rfc3339(entry.published),
        "updated": rfc3339(entry.updated),
        "summary": entry.summary,
        "summary_truncated": entry.summary_truncated,
        "content": "\n\n".join(entry.content) if entry.content is not None else None,
        "officials": list(entry.officials),
        "topics": list(entry.topics),
        "related": list(entry.related),
        "sources": [{"file": s.file, "line": s.line} for s in entry.sources],
    }


def _print_report(config: Config, report: BuildReport) -> None:
    for problem in report.problems:
        print(_problem_line(config, problem), file=sys.stderr)
    print(
        f"files: {report.files_seen} seen, {report.files_parsed} parsed, "
        f"{report.files_unchanged} unchanged, {report.files_failed} failed"
        + (f", {report.files_renamed} renamed" if report.files_renamed else "")
        + (f", {report.files_removed} removed" if report.files_removed else "")
    )
    print(
        f"entries: {report.entries_new} new, {report.entries_updated} updated, "
        f"{report.entries_total} total"
        + (f", {report.entries_retagged} re-tagged" if report.entries_retagged else "")
    )
    hint = "; `digest problems` lists them" if report.problems_total else ""
    print(f"problems: {report.problems_total}{hint}")


class BuildProgress:
    """Progress of a long build: a bar on a terminal, a log line every few seconds otherwise,
    and nothing at all for a build that is done within a second."""

    def __init__(self) -> None:
        self.started = monotonic()
        self.logged = self.started
        self.bar: Any = None
        self.tasks: dict[str, Any] = {}

    def __call__(self, stage: str, done: int, total: int, entries: int) -> None:
        now = monotonic()
        if now - self.started < 1:
            return
        label = "files parsed" if stage == "files" else "files published"
        if sys.stderr.isatty():
            if self.bar is None:
                from rich.progress import Progress

                self.bar = Progress(transient=True)
                self.bar.start()
            if stage not in self.tasks:
                self.tasks[stage] = self.bar.add_task(label, total=total)
            self.bar.update(
                self.tasks[stage],
                completed=done,
                description=f"{label} ({entries} entries)" if entries else label,
            )
        elif now - self.logged >= 5 or done == total:
            self.logged = now
            log.info(
                "%s: %d/%d%s", label, done, total, f", {entries} entries so far" if entries else ""
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _cmd_build(app: Digest, _args: argparse.Namespace) -> int:
    progress = BuildProgress()
    try:
        with writer_lock(app.config.paths.store, app.config.paths.public):
            report = app.build(progress)
            published = app.publish(progress)
    finally:
        progress.close()
    _print_report(app.config, report)
    print(
        f"published: {published.written} written, {published.unchanged} unchanged, "
        f"{published.removed} removed"
    )
    return 0


def _cmd_entries(app: Digest, args: argparse.Namespace) -> int:
    found = app.entries()
    if args.json:
        json.dump([entry_json(e) for e in found], sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return 0
    for e in found:
        when = e.published.astimezone(VIETNAM).strftime("%d/%m/%Y %H:%M")
        print(f"{when}  {e.id[:8]}  {e.title}")
    return 0


def _print_subjects(subjects: Sequence[Subject], *, officials: bool) -> None:
    rows = [
        [
            s.slug,
            f"{s.name} ({s.role})" if s.role else s.name,
            str(s.entries),
            s.latest.astimezone(VIETNAM).strftime("%d/%m/%Y %H:%M") if s.latest else "-",
            *([("yes" if s.in_config else "not in config")] if officials else []),
        ]
        for s in subjects
    ]
    header = ["slug", "name", "entries", "latest (Vietnam time)"]
    header += ["in config"] if officials else []
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def _sender(app: Digest) -> Sender:
    return make_sender(app.config, app.store, app.clock.now)


def _forms(app: Digest, sender: Sender) -> tuple[Forms, SearchPages]:
    """The readers' pages: sign-up and its kin, and search (only where HTTP is served)."""
    from .daemon import pages
    from .search.web import SearchPages
    from .subscribe.web import Forms

    shown = pages(app.config)
    return (
        Forms(app.config, app.store, sender, app.clock.now, pages=shown),
        SearchPages(app.config, app.store, pages=shown),
    )


def _health(app: Digest, sender: Sender) -> Callable[[], dict[str, Any]]:
    """What /healthz adds to the build's state: the digests, and the nodes on the store."""
    return lambda: {**sender.health(), "cluster": app.cluster()}


def _cmd_run(app: Digest, args: argparse.Namespace) -> int:
    from .daemon import run  # the server stack is only needed by the daemon

    sender = _sender(app)  # the mail stage, run beside the watcher
    with writer_lock(app.config.paths.store, app.config.paths.public):
        forms = _forms(app, sender)
        return run(app, (sender.service,), health_extra=_health(app, sender), forms=forms)


def _cmd_serve_worker(app: Digest, args: argparse.Namespace) -> int:
    from .daemon import serve_worker

    sender = _sender(app)
    return serve_worker(
        app,
        fd=args.fd,
        parent=args.parent,
        health_extra=_health(app, sender),
        forms=_forms(app, sender),
    )


def _upcoming(sender: Sender) -> list[str]:
    lines = []
    for u in sender.upcoming(sender.now()):
        when = u.at.astimezone(VIETNAM).strftime("%a %d/%m/%Y %H:%M")
        new = f" ({u.new} new: it will be their first digest)" if u.new else ""
        who = f"{u.subscribers} subscriber" + ("s" if u.subscribers != 1 else "")
        lines.append(f"next {u.schedule} digest: {when} Vietnam time, {who}{new}")
    return lines or ["no subscribers yet: readers sign up on the site, or `digest subscribers add`"]


def _cmd_send(app: Digest, args: argparse.Namespace) -> int:
    sender = _sender(app)
    if args.dry_run:
        letters = 0
        for letter in sender.dry_run(schedule=args.period):
            what = f"{len(letter.entries)} items" if letter.parcel else "empty, no e-mail"
            print(f"{letter.subscriber.email}  {letter.period.key}  {what}")
            letters += 1
        print("would send: " + (f"{letters} digests" if letters else "nothing is due now"))
        print("\n".join(_upcoming(sender)))
        return 0

    async def send() -> list[Outcome]:
        return await sender.run(schedule=args.period, recover=True, stop=stop_on_signals())

    with writer_lock(app.config.paths.store, app.config.paths.public):
        outcomes = asyncio.run(send())
    for o in outcomes:
        print(f"{o.subscriber}  {o.period}  {o.state}  {o.items} items")
    counts = Counter(o.state for o in outcomes)
    print("digests: " + (", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none due"))
    print("\n".join(_upcoming(sender)))
    bad = counts["dead"] + counts["unknown"] + counts["failed"]
    if bad:
        print(
            f"{bad} digests did not arrive or may not have: `digest outbox` shows which and why",
            file=sys.stderr,
        )
    return 1 if bad else 0


def _cmd_send_shard(app: Digest, args: argparse.Namespace) -> int:
    sender = _sender(app)
    at = datetime.fromisoformat(args.at)

    async def send() -> list[Outcome]:
        stop = stop_on_signals()  # stops taking digests; those in flight finish
        return await sender.run_shard(
            at, args.shard, args.of, owner=args.owner, schedule=args.period, stop=stop
        )

    outcomes = asyncio.run(send())
    for o in outcomes:  # read by the process that started this one
        print(json.dumps(dataclasses.asdict(o)))
    return 0


def _cmd_preview(app: Digest, args: argparse.Namespace) -> int:
    sender = _sender(app)
    roster = sender.roster(app.clock.now(), record=False)
    found = [r.subscriber for r in roster.records if r.email == args.email.lower()]
    if not found:
        print(
            f"digest: {args.email} is not a subscriber; add it with `digest subscribers add` "
            f"or a [[subscribers]] block in {app.config.source}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    subscriber = found[0]
    since = None
    if args.since:
        try:
            since = datetime.combine(date.fromisoformat(args.since), time(), tzinfo=VIETNAM)
        except ValueError:
            print(f"digest: --since {args.since!r}: write a date like 2025-01-31", file=sys.stderr)
            return EXIT_USAGE
    letter = sender.preview(subscriber, args.period or subscriber.schedule, since)
    message = letter.message
    if message is None:
        print(f"no entries for {subscriber.email} in {letter.period.label()}: no e-mail")
        return 0
    text, html = bodies(message)
    if args.html:
        Path(args.html).write_text(html, encoding="utf-8")
    if args.text or not args.html:
        subject = str(message["Subject"])
        print(f"Subject: {subject}\n")
        print(text)
    return 0


def _cmd_outbox(app: Digest, args: argparse.Namespace) -> int:
    rows = app.store.outbox.outbox_rows(args.limit)
    print(f"{'subscriber':32}  {'period':18}  {'state':8}  tries  items  updated (Vietnam)  error")
    for r in rows:
        when = r.updated.astimezone(VIETNAM).strftime("%d/%m/%Y %H:%M")
        items = str(r.items) if r.items is not None else "-"
        print(
            f"{r.subscriber:32}  {r.period:18}  {r.state:8}  {r.attempts:5}  "
            f"{items:>5}  {when:17}  {r.error or ''}"
        )
    return 0


def _cmd_problems(app: Digest, args: argparse.Namespace) -> int:
    """Every current problem of the captures: what a build, the daemon and /healthz count."""
    found = app.problems()
    if args.json:
        rows = [{"file": p.file, "line": p.line, "message": p.message} for p in found]
        json.dump(rows, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return 0
    for problem in found:
        print(_problem_line(app.config, problem))
    print(f"problems: {len(found)}")
    return 0


def _admin(app: Digest) -> Admin:
    from .subscribe.admin import Admin

    configured = {s.email for s in app.config.subscribers}
    return Admin(app.store.subscribers, *app.subjects(), app.clock.now(), configured=configured)


def _cmd_subscribers(app: Digest, args: argparse.Namespace) -> int:
    from .subscribe import admin

    people = app.store.subscribers
    if args.action == "list":
        records = people.all()
        if args.json:
            json.dump([admin.row(r) for r in records], sys.stdout, ensure_ascii=False, indent=2)
            sys.stdout.write("\n")
            return 0
        print(f"{'email':36}  {'state':12}  {'source':6}  {'schedule':8}  officials / topics")
        for r in records:
            c = r.choices
            chosen = " ".join(c.officials) or "all"
            chosen += " / " + (" ".join(c.topics) or "all")
            print(f"{r.email:36}  {r.state:12}  {r.source:6}  {c.schedule:8}  {chosen}")
        states = Counter(r.state for r in records)
        print("subscribers: " + (", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "0"))
        return 0
    if args.action == "export":
        sys.stdout.write(admin.export(people.all(), args.format))
        return 0
    manager = _admin(app)
    try:
        if args.action == "add":
            choices = manager.choices(args.schedule, args.official, args.topic)
            said = manager.add(args.email, args.name, choices, via="cli")
            print(f"{args.email.lower()}: {said}")
        elif args.action == "remove":
            gone = manager.remove(args.email)
            print(f"{args.email.lower()}: " + ("removed" if gone else "not a subscriber"))
        else:
            report = manager.import_file(args.file)
            for line in report.problems:
                print(printable(line), file=sys.stderr)
            print(
                f"imported: {report.added} added, {report.updated} updated, "
                f"{report.unchanged} unchanged, {report.skipped} never confirmed (skipped), "
                f"{len(report.problems)} bad"
            )
            return 1 if report.problems else 0
    except ValueError as exc:
        print(f"digest: {printable(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def _cmd_officials(app: Digest, _args: argparse.Namespace) -> int:
    _print_subjects(app.subjects()[0], officials=True)
    return 0


def _cmd_topics(app: Digest, _args: argparse.Namespace) -> int:
    _print_subjects(app.subjects()[1], officials=False)
    return 0


def _version() -> str:
    try:
        return importlib.metadata.version("digest")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout without installing
        return "unknown"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="digest",
        description="Feeds, pages and e-mail digests of the Ministry of Health leadership.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=Path(os.environ.get("DIGEST_CONFIG", "config.toml")),
        help="config file (default: $DIGEST_CONFIG or ./config.toml)",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=os.environ.get("DIGEST_LOG_FORMAT", "text"),
        help="log lines as text for people or JSON for machines (default: $DIGEST_LOG_FORMAT "
        "or text)",
    )
    parser.add_argument("--version", action="version", version=f"digest {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="build, then watch seeds/, serve the site and mail")
    run.set_defaults(handler=_cmd_run)
    build = commands.add_parser("build", help="ingest new and changed seed files")
    build.set_defaults(handler=_cmd_build)
    entries = commands.add_parser("entries", help="list stored entries, newest first")
    entries.add_argument("--json", action="store_true", help="print a JSON array")
    entries.set_defaults(handler=_cmd_entries)
    officials = commands.add_parser("officials", help="leaders, their entries, and discoveries")
    officials.set_defaults(handler=_cmd_officials)
    topics = commands.add_parser("topics", help="topics and their entries")
    topics.set_defaults(handler=_cmd_topics)
    problems = commands.add_parser("problems", help="what is wrong in the captures now")
    problems.add_argument("--json", action="store_true", help="print a JSON array")
    problems.set_defaults(handler=_cmd_problems)
    send = commands.add_parser("send", help="send the digests that are due now")
    send.add_argument("--period", choices=("daily", "weekly"), help="only this schedule")
    send.add_argument("--dry-run", action="store_true", help="print what would be sent")
    send.set_defaults(handler=_cmd_send)
    preview = commands.add_parser("preview", help="render one subscriber's digest, send nothing")
    preview.add_argument("email")
    preview.add_argument("--period", choices=("daily", "weekly"), help="default: theirs")
    preview.add_argument("--since", metavar="DATE", help="entries published since DATE instead")
    preview.add_argument("--html", metavar="FILE", help="write the HTML part to FILE")
    preview.add_argument("--text", action="store_true", help="print the text part")
    preview.set_defaults(handler=_cmd_preview)
    people = commands.add_parser("subscribers", help="list, add, remove, export, import")
    actions = people.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="every subscriber and their state")
    listing.add_argument("--json", action="store_true", help="print a JSON array")
    add = actions.add_parser("add", help="add a subscriber (active at once)")
    add.add_argument("email")
    add.add_argument("--name", default="")
    add.add_argument("--schedule", choices=("daily", "weekly"), default="daily")
    add.add_argument("--official", action="append", default=[], metavar="SLUG")
    add.add_argument("--topic", action="append", default=[], metavar="SLUG")
    remove = actions.add_parser("remove", help="delete a subscriber and what is kept of them")
    remove.add_argument("email")
    export = actions.add_parser("export", help="every subscriber, to standard output")
    export.add_argument("--format", choices=("csv", "json"), default="csv")
    load_file = actions.add_parser("import", help="add or update subscribers from a file")
    load_file.add_argument("file", type=Path, help="CSV or JSON, as `export` writes")
    people.set_defaults(handler=_cmd_subscribers)
    outbox = commands.add_parser("outbox", help="recent digests and their states")
    outbox.add_argument("--limit", type=int, default=50)
    outbox.set_defaults(handler=_cmd_outbox)
    # Started by `digest run` for [server] workers above 1, on the daemon's socket.
    worker = commands.add_parser("serve-worker")
    worker.add_argument("--fd", type=int, required=True)
    worker.add_argument("--parent", type=int, required=True)
    worker.set_defaults(handler=_cmd_serve_worker)
    # Started by a send (`[digests] processes` above 1) for one shard of what it found due.
    shard = commands.add_parser("send-shard")
    shard.add_argument("--shard", type=int, required=True)
    shard.add_argument("--of", type=int, required=True)
    shard.add_argument("--at", required=True)
    shard.add_argument("--owner", type=int, required=True)
    shard.add_argument("--period", choices=("daily", "weekly"))
    shard.set_defaults(handler=_cmd_send_shard)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    collect_less()  # before any work: a build makes millions of short-lived objects
    args = _parser().parse_args(argv)
    setup_logging(args.log_format)
    os.environ["DIGEST_LOG_FORMAT"] = args.log_format  # the processes this one starts log alike
    app: Digest | None = None
    try:
        config = load(args.config)
        for warning in config.warnings:
            log.warning("%s", warning, extra={"event": "config"})
        app = make_digest(config)
        code: int = args.handler(app, args)
        return code
    except DigestError as exc:
        print(f"digest: {printable(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        # The reader (head, less) went away: not an error of ours, and nothing more to say.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        if app is not None:
            app.close()


if __name__ == "__main__":
    sys.exit(main())
