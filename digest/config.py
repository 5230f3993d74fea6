"""config.toml -> frozen settings. Every error names the file and the key to fix."""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import socket
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from .errors import ConfigError
from .model import Subscriber
from .text import clean, printable

# The Ministry's page the captures come from.
SOURCE_URL = "https://moh.gov.vn/hoat-dong-cua-lanh-dao-bo"
# What a topic rule can ask the classifier to read from the sentence, beyond phrases:
# a health minister or deputy of another country, and a pair of countries ("Việt Nam - Ba Lan").
SIGNALS = ("foreign-leader", "country-pair")
# The Ministry's leadership roles, as the captures write them.
ROLES = ("Bộ trưởng", "Thứ trưởng Thường trực", "Thứ trưởng")
_NODE = re.compile(r"[A-Za-z0-9._-]{1,63}\Z")
_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*\Z")


@dataclass(frozen=True, slots=True)
class Paths:
    seeds: Path
    store: Path
    public: Path
    templates: Path
    outbox: Path  # Maildir that receives digests when no SMTP host is set


@dataclass(frozen=True, slots=True)
class Tenure:
    role: str  # one of ROLES
    start: date | None  # `from` in config.toml; None: since before the captures
    end: date | None  # `to`; None: still in office

    def covers(self, day: date) -> bool:
        return (self.start is None or self.start <= day) and (self.end is None or day <= self.end)


@dataclass(frozen=True, slots=True)
class Official:
    slug: str
    name: str
    variants: tuple[str, ...]
    roles: tuple[Tenure, ...]

    @property
    def role(self) -> str:
        """The latest role, for display."""
        if not self.roles:
            return ""
        latest = max(self.roles, key=lambda t: (t.end is None, t.end or t.start or date.min))
        return latest.role


@dataclass(frozen=True, slots=True)
class Topic:
    slug: str
    name: str


@dataclass(frozen=True, slots=True)
class Rule:
    topic: str
    phrases: tuple[str, ...]  # each decides the topic in a title, and counts in the body
    exclude: tuple[str, ...]  # uses of those words that are something else
    weak: tuple[str, ...] = ()  # suggest the topic in a title or summary, decide nothing
    signals: tuple[str, ...] = ()  # read from the sentence: see SIGNALS


@dataclass(frozen=True, slots=True)
class Classification:
    officials: tuple[Official, ...] = ()
    topics: tuple[Topic, ...] = ()
    rules: tuple[Rule, ...] = ()
    not_officials: tuple[str, ...] = ()  # names never to discover as leaders
    discover_after: int = 2  # entries that must name a new leader before they get feeds


@dataclass(frozen=True, slots=True)
class Site:
    base_url: str  # where the public folder is served, ending in "/"
    title: str
    feed_size: int  # entries in each current feed document
    # The page the captures come from: every page names it, so nobody takes this site for
    # the Ministry's own.
    source_url: str = SOURCE_URL


@dataclass(frozen=True, slots=True)
class Server:
    host: str
    port: int
    workers: int = 1  # processes serving the port, a socket each; the daemon is the first
    header_timeout: int = 10  # seconds a request's headers may take to arrive
    max_header_bytes: int = 32 * 1024  # a request's headers, at most
    keepalive_timeout: int = 5  # seconds an idle connection is kept open
    # Proxies whose X-Forwarded-For names the client (the forms' rate limit counts clients).
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()


@dataclass(frozen=True, slots=True)
class Subscriptions:
    """Readers signing up on the site themselves (docs/subscriptions.md)."""

    open: bool = True  # the sign-up forms are on the site and answered
    confirm_hours: int = 48  # an unconfirmed sign-up lapses (and is deleted) after this
    per_client_per_hour: int = 10  # sign-ups one client may send in an hour
    confirmations_per_hour: int = 200  # confirmation mails sent in an hour, all addresses


@dataclass(frozen=True, slots=True)
class Watch:
    poll: bool  # poll the folder instead of inotify (network and container file systems)
    debounce_ms: int  # how long a burst of changes may last to become one build
    settle_ms: int  # how long a changed file must stay the same before it is read


@dataclass(frozen=True, slots=True)
class Digests:
    daily_at: time  # Vietnam time
    weekly_day: int  # 0 = Monday
    weekly_at: time
    max_items: int
    max_attempts: int  # transient failures before a digest is given up as dead
    processes: int = 1  # processes rendering and delivering one run's digests


@dataclass(frozen=True, slots=True)
class Smtp:
    host: str | None  # None: deliver into the Maildir outbox instead
    port: int
    security: str  # "starttls" | "tls" | "none"
    username: str | None
    from_address: str
    from_name: str
    timeout: float
    password_file: Path | None  # a path, never the secret itself
    connections: int = 4  # SMTP connections a send uses at once

    def password(self) -> str | None:
        """From DIGEST_SMTP_PASSWORD, a systemd credential, or password_file; never logged."""
        return secret("DIGEST_SMTP_PASSWORD", "smtp-password", self.password_file)


@dataclass(frozen=True, slots=True)
class Store:
    """Where the store is, and this daemon's name among those sharing it."""

    url: str  # a SQLAlchemy URL without its password: sqlite:///… or postgresql+psycopg://…
    node: str
    password_file: Path | None = None

    @property
    def shared(self) -> bool:
        """Several daemons may share it (PostgreSQL), each on its own machine and folder."""
        return self.url.startswith("postgresql")

    def password(self) -> str | None:
        """From DIGEST_STORE_PASSWORD, a systemd credential, or password_file; never logged."""
        return secret("DIGEST_STORE_PASSWORD", "store-password", self.password_file)


def secret(variable: str, credential: str, file: Path | None) -> str | None:
    """A secret from the environment, a systemd credential, or a file, in that order."""
    if variable in os.environ:
        return os.environ[variable]
    candidates = [file] if file else []
    if "CREDENTIALS_DIRECTORY" in os.environ:
        candidates.append(Path(os.environ["CREDENTIALS_DIRECTORY"]) / credential)
    for path in candidates:
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError:
            continue
    return None


def _cores() -> int:
    """The cores this process may run on (at most 64, the most [build] workers takes)."""
    usable = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    return min(len(usable) if usable else os.cpu_count() or 1, 64)


@dataclass(frozen=True, slots=True)
class Build:
    # Processes that tag a large build's entries and render and write its files beside the
    # one that reads and writes the store; 1 does everything in that one.
    workers: int = field(default_factory=_cores)


@dataclass(frozen=True, slots=True)
class Config:
    source: Path  # the config file itself; relative paths in it are relative to its folder
    paths: Paths
    site: Site
    store: Store
    server: Server = Server("127.0.0.1", 8080)
    watch: Watch = Watch(poll=False, debounce_ms=50, settle_ms=50)
    build: Build = field(default_factory=Build)
    classification: Classification = Classification()
    subscribers: tuple[Subscriber, ...] = ()
    subscriptions: Subscriptions = Subscriptions()
    digests: Digests = Digests(time(7), 0, time(7), 50, 6)
    smtp: Smtp = Smtp(None, 587, "starttls", None, "digest@localhost", "", 30.0, None)
    warnings: tuple[str, ...] = ()  # settings that work but are probably wrong, one line each

    def command(self, *args: str) -> list[str]:
        """The command line of another digest process on this config (a serving worker, a
        delivering process); it logs in the format of this one ($DIGEST_LOG_FORMAT)."""
        return [sys.executable, "-m", "digest", "--config", str(self.source), *args]


_SECTIONS: dict[str, set[str]] = {
    "paths": {"seeds", "store", "public", "templates", "outbox"},
    "store": {"url", "password_file", "password"},
    "node": {"name"},
    "officials": {"slug", "name", "variants", "roles"},
    "topics": {"slug", "name"},
    "rules": {"topic", "phrases", "exclude", "weak", "signals"},
    "classify": {"defaults", "not_officials", "discover_after"},
    "site": {"base_url", "title", "feed_size", "source_url"},
    "server": {
        "host",
        "port",
        "workers",
        "header_timeout",
        "max_header_bytes",
        "keepalive_timeout",
        "trusted_proxies",
    },
    "subscriptions": {"open", "confirm_hours", "per_client_per_hour", "confirmations_per_hour"},
    "watch": {"poll", "debounce_ms", "settle_ms"},
    "build": {"workers"},
    "subscribers": {"email", "name", "schedule", "officials", "topics"},
    "digests": {"daily_at", "weekly_day", "weekly_at", "max_items", "max_attempts", "processes"},
    "smtp": {
        "host",
        "port",
        "security",
        "username",
        "from_address",
        "from_name",
        "timeout",
        "password_file",
        "connections",
        "password",  # known only to be refused with a message saying where it belongs
    },
}
DEFAULT_TITLE = "Tổng hợp tin lãnh đạo Bộ Y tế"
_URL = re.compile(r"https?://[^\s/?#]+(/[^\s?#]*)?\Z")
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+\Z")
_DOMAIN = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}\Z")


def address_problem(value: str, *, local_host: bool = False) -> str | None:
    """Why `value` is not an address we can put in a header and send to, or None. Checked
    where addresses enter (config, forms), so a line break never reaches a mail header."""
    if not value.isprintable() or any(c.isspace() for c in value):
        return "has spaces or control characters"
    if len(value) > 254:
        return "is longer than 254 characters"
    if value.count("@") != 1:
        return "must have exactly one @"
    local, domain = value.split("@")
    if not local or len(local) > 64 or not _LOCAL_PART.match(local):
        return "has an invalid part before the @"
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return "has an invalid part before the @"
    if not (_DOMAIN.match(domain) or (local_host and domain == "localhost")):
        return "has an invalid domain after the @"
    return None


_ARRAYS = {"officials", "topics", "rules", "subscribers"}
_DEFAULT_PATHS = {
    "seeds": "seeds",
    "store": "var/digest.sqlite",
    "public": "public",
    "templates": "templates",
    "outbox": "var/outbox",
}


class _Reader:
    def __init__(self, source: Path, data: Mapping[str, Any]) -> None:
        self.source = source
        self.data = data
        self.warnings: list[str] = []

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {key}: {message}")

    def check_keys(self) -> None:
        for section, value in self.data.items():
            if section not in _SECTIONS:
                raise self.fail(section, f"unknown section; known: {', '.join(sorted(_SECTIONS))}")
            tables = value if section in _ARRAYS and isinstance(value, list) else [value]
            if section in _ARRAYS and not isinstance(value, list):
                raise self.fail(section, f"must be an array of tables: write [[{section}]]")
            for index, table in enumerate(tables):
                where = f"{section}[{index}]" if section in _ARRAYS else section
                if not isinstance(table, Mapping):
                    raise self.fail(where, "must be a table")
                for key in table:
                    if key not in _SECTIONS[section]:
                        known = ", ".join(sorted(_SECTIONS[section]))
                        raise self.fail(f"{where}.{key}", f"unknown key; known: {known}")

    def array(self, section: str) -> list[tuple[str, Mapping[str, Any]]]:
        return [(f"{section}[{i}]", t) for i, t in enumerate(self.data.get(section, []))]

    def text(self, where: str, table: Mapping[str, Any], key: str) -> str:
        value = table.get(key)
        if not isinstance(value, str) or not clean(value):
            raise self.fail(f"{where}.{key}", "must be a non-empty string")
        return clean(value)

    def texts(self, where: str, table: Mapping[str, Any], key: str) -> tuple[str, ...]:
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and clean(v) for v in value):
            raise self.fail(f"{where}.{key}", "must be a list of non-empty strings")
        return tuple(clean(v) for v in value)

    def slug(self, where: str, table: Mapping[str, Any], seen: set[str]) -> str:
        value = self.text(where, table, "slug")
        if not _SLUG.match(value):
            raise self.fail(
                f"{where}.slug", f"{value!r} must be lower-case ASCII words joined by -"
            )
        if value in seen:
            raise self.fail(f"{where}.slug", f"duplicate slug {value!r}")
        seen.add(value)
        return value

    def day(self, where: str, value: object) -> date | None:
        if value is None:
            return None
        if isinstance(value, date) and not hasattr(value, "hour"):
            return value
        raise self.fail(where, f"must be a date written like 2024-06-01, not {value!r}")

    def tenures(self, where: str, table: Mapping[str, Any]) -> tuple[Tenure, ...]:
        value = table.get("roles", [])
        if not isinstance(value, list):
            raise self.fail(
                f"{where}.roles", "must be a list of {role = ..., from = ..., to = ...}"
            )
        found: list[Tenure] = []
        for i, role in enumerate(value):
            at = f"{where}.roles[{i}]"
            if not isinstance(role, Mapping) or set(role) - {"role", "from", "to"}:
                raise self.fail(
                    at, "must be a table with keys role, from (optional), to (optional)"
                )
            title = self.text(at, role, "role")
            if title not in ROLES:
                raise self.fail(f"{at}.role", f"{title!r} is not one of {', '.join(ROLES)}")
            start = self.day(f"{at}.from", role.get("from"))
            end = self.day(f"{at}.to", role.get("to"))
            if start and end and end < start:
                raise self.fail(f"{at}.to", f"{end} is before from = {start}")
            found.append(Tenure(title, start, end))
        return tuple(found)

    def url(self, key: str, value: object) -> str:
        if not isinstance(value, str) or not _URL.match(value):
            raise self.fail(key, "must be an http(s) URL such as https://example.org/")
        return value

    def site(self, server: Server) -> Site:
        table = self.table("site")
        local = f"http://{_url_host(server.host)}:{server.port}/"
        if "base_url" in table:
            base_url = self.url("site.base_url", table["base_url"]).rstrip("/") + "/"
            self._check_base_url(base_url, server)
        else:
            base_url = local  # where `digest run` serves: links work on this machine
        title = table.get("title", DEFAULT_TITLE)
        if not isinstance(title, str) or not clean(title):
            raise self.fail("site.title", "must be a non-empty string")
        size = table.get("feed_size", 50)
        if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= 1000:
            raise self.fail("site.feed_size", "must be a whole number from 1 to 1000")
        source = self.url("site.source_url", table.get("source_url", SOURCE_URL))
        return Site(base_url, clean(title), size, source)

    def _check_base_url(self, base_url: str, server: Server) -> None:
        """A base_url on this machine's own address that names another port than the server's
        is the classic mistake after changing [server] port: every link would point nowhere."""
        parts = urlsplit(base_url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        local = parts.hostname in ("127.0.0.1", "localhost", "::1", server.host)
        if local and port != server.port:
            self.warnings.append(
                f"{self.source}: site.base_url: {base_url} names port {port}, but [server] port "
                f"is {server.port}: feed, page and mail links will not reach this server; fix "
                "base_url, or remove it to use the server's own address"
            )

    def whole(self, section: str, key: str, default: int, low: int, high: int) -> int:
        value = self.table(section).get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise self.fail(f"{section}.{key}", f"must be a whole number from {low} to {high}")
        return value

    def server(self) -> Server:
        host = self.table("server").get("host", "127.0.0.1")
        if not isinstance(host, str) or not host.strip():
            raise self.fail("server.host", "must be a host name or address such as 127.0.0.1")
        return Server(
            host.strip(),
            self.whole("server", "port", 8080, 0, 65535),
            self.whole("server", "workers", 1, 1, 16),
            self.whole("server", "header_timeout", 10, 1, 300),
            self.whole("server", "max_header_bytes", 32 * 1024, 1024, 1024 * 1024),
            self.whole("server", "keepalive_timeout", 5, 1, 300),
            self.networks("server", "trusted_proxies"),
        )

    def networks(
        self, section: str, key: str
    ) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        found = []
        for value in self.texts(section, self.table(section), key):
            try:
                found.append(ipaddress.ip_network(value, strict=False))
            except ValueError:
                raise self.fail(
                    f"{section}.{key}", f"{value!r} is not an address or network such as 10.0.0.0/8"
                ) from None
        return tuple(found)

    def subscriptions(self) -> Subscriptions:
        table = self.table("subscriptions")
        open_ = table.get("open", True)
        if not isinstance(open_, bool):
            raise self.fail("subscriptions.open", "must be true or false")
        return Subscriptions(
            open_,
            self.whole("subscriptions", "confirm_hours", 48, 1, 24 * 30),
            self.whole("subscriptions", "per_client_per_hour", 10, 1, 100_000),
            self.whole("subscriptions", "confirmations_per_hour", 200, 1, 1_000_000),
        )

    def watch(self) -> Watch:
        poll = self.table("watch").get("poll", False)
        if not isinstance(poll, bool):
            raise self.fail("watch.poll", "must be true or false")
        return Watch(
            poll,
            self.whole("watch", "debounce_ms", 50, 1, 60_000),
            self.whole("watch", "settle_ms", 50, 0, 60_000),
        )

    def subscribers(self, rules: Classification) -> tuple[Subscriber, ...]:
        officials = {o.slug for o in rules.officials}
        topics = {t.slug for t in rules.topics}
        seen: set[str] = set()
        found = []
        for where, table in self.array("subscribers"):
            email = self.text(where, table, "email")
            if why := address_problem(email):
                raise self.fail(f"{where}.email", f"{email!r} is not an e-mail address: it {why}")
            if email.lower() in seen:
                raise self.fail(f"{where}.email", f"{email!r} is listed twice")
            seen.add(email.lower())
            name = self.text(where, table, "name") if "name" in table else ""
            schedule = table.get("schedule", "daily")
            if schedule not in ("daily", "weekly"):
                raise self.fail(f"{where}.schedule", 'must be "daily" or "weekly"')
            wanted = {"officials": officials, "topics": topics}
            filters = {}
            for key, known in wanted.items():
                filters[key] = self.texts(where, table, key)
                for slug in filters[key]:
                    if slug not in known:
                        raise self.fail(
                            f"{where}.{key}", f"unknown slug {slug!r}; see `digest {key}`"
                        )
            found.append(Subscriber(email, name, schedule, filters["officials"], filters["topics"]))
        return tuple(found)

    def clock_time(self, section: str, key: str, default: str) -> time:
        value = self.table(section).get(key, default)
        if isinstance(value, time):
            return value
        try:
            return time.fromisoformat(str(value))
        except ValueError:
            raise self.fail(f"{section}.{key}", 'must be a time such as "07:00"') from None

    def digests(self) -> Digests:
        day = self.table("digests").get("weekly_day", "monday")
        if not isinstance(day, str) or day.lower() not in _WEEKDAYS:
            raise self.fail("digests.weekly_day", f"must be one of {', '.join(_WEEKDAYS)}")
        return Digests(
            self.clock_time("digests", "daily_at", "07:00"),
            _WEEKDAYS.index(day.lower()),
            self.clock_time("digests", "weekly_at", "07:00"),
            self.whole("digests", "max_items", 50, 1, 1000),
            self.whole("digests", "max_attempts", 6, 1, 100),
            self.whole("digests", "processes", 1, 1, 16),
        )

    def smtp(self) -> Smtp:
        table = self.table("smtp")
        if "password" in table:
            raise self.fail(
                "smtp.password",
                "secrets never go in config.toml: set DIGEST_SMTP_PASSWORD, a systemd "
                "credential named smtp-password, or smtp.password_file",
            )
        host = table.get("host") or None
        if host is not None and (not isinstance(host, str) or not host.strip()):
            raise self.fail("smtp.host", "must be a host name, or empty for the Maildir outbox")
        security = table.get("security", "starttls")
        if security not in ("starttls", "tls", "none"):
            raise self.fail("smtp.security", 'must be "starttls", "tls" or "none"')
        default_port = {"starttls": 587, "tls": 465, "none": 25}[security]
        from_address = table.get("from_address", "digest@localhost")
        if not isinstance(from_address, str):
            raise self.fail("smtp.from_address", "must be a string such as digest@example.org")
        if why := address_problem(from_address, local_host=True):
            raise self.fail(
                "smtp.from_address",
                f"{printable(from_address)!r} is not an e-mail address: it {why}",
            )
        username = table.get("username") or None
        if username is not None and not isinstance(username, str):
            raise self.fail("smtp.username", "must be a string")
        from_name = table.get("from_name", "Bản tin lãnh đạo Bộ Y tế")
        if not isinstance(from_name, str):
            raise self.fail("smtp.from_name", "must be a string")
        password_file = (
            self.path("smtp", "password_file", "") if table.get("password_file") else None
        )
        return Smtp(
            host.strip() if host else None,
            self.whole("smtp", "port", default_port, 1, 65535),
            security,
            username,
            from_address,
            clean(from_name),
            float(self.whole("smtp", "timeout", 30, 1, 600)),
            password_file,
            self.whole("smtp", "connections", 4, 1, 32),
        )

    def store(self, paths: Paths) -> Store:
        table = self.table("store")
        if "password" in table:
            raise self.fail(
                "store.password",
                "secrets never go in config.toml: set DIGEST_STORE_PASSWORD, a systemd "
                "credential named store-password, or store.password_file",
            )
        url = table.get("url") or f"sqlite:///{paths.store}"
        if not isinstance(url, str):
            raise self.fail("store.url", "must be a string")
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise self.fail("store.url", f"{printable(url)!r} is not a database URL") from None
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")  # the driver we ship
        if parsed.drivername not in ("sqlite", "postgresql+psycopg"):
            raise self.fail(
                "store.url",
                "must start with sqlite:/// (a file) or postgresql+psycopg:// (a server)",
            )
        if parsed.password is not None:
            raise self.fail(
                "store.url",
                "has a password: secrets never go in config.toml; set DIGEST_STORE_PASSWORD, "
                "a systemd credential named store-password, or store.password_file",
            )
        if parsed.drivername == "sqlite" and not parsed.database:
            raise self.fail("store.url", "names no file: write sqlite:///path/to/digest.sqlite")
        password_file = (
            self.path("store", "password_file", "") if table.get("password_file") else None
        )
        store = Store(parsed.render_as_string(hide_password=False), "local", password_file)
        # One daemon per SQLite file; on a server each daemon needs a name of its own.
        name = self.table("node").get("name") or (socket.gethostname() if store.shared else "local")
        if not isinstance(name, str) or not _NODE.match(name):
            raise self.fail(
                "node.name", "must be 1 to 63 letters, digits, dots, dashes or underscores"
            )
        return replace(store, node=name)

    def classification(self, base: Classification | None = None) -> Classification:
        """The registry and taxonomy of this file, on top of `base` (the shipped one): an
        official or topic with a slug already there replaces it, rules add to a topic's."""
        settings = self.table("classify")
        if base is not None and settings.get("defaults", True) is False:
            base = None  # this config carries its whole own taxonomy
        seen: set[str] = set()
        officials = {
            o.slug: o
            for o in (
                Official(
                    slug=self.slug(w, t, seen),
                    name=self.text(w, t, "name"),
                    variants=self.texts(w, t, "variants"),
                    roles=self.tenures(w, t),
                )
                for w, t in self.array("officials")
            )
        }
        topic_slugs: set[str] = set()
        topics = {
            t.slug: t
            for t in (
                Topic(self.slug(w, t, topic_slugs), self.text(w, t, "name"))
                for w, t in self.array("topics")
            )
        }
        known_topics = topic_slugs | {t.slug for t in (base.topics if base else ())}
        rules: list[Rule] = []
        for w, t in self.array("rules"):
            topic = self.text(w, t, "topic")
            if topic not in known_topics:
                raise self.fail(f"{w}.topic", f"unknown topic {topic!r}; add it under [[topics]]")
            phrases = self.texts(w, t, "phrases")
            signals = self.texts(w, t, "signals")
            if not phrases and not signals:
                raise self.fail(f"{w}.phrases", "must list at least one phrase")
            for signal in signals:
                if signal not in SIGNALS:
                    raise self.fail(
                        f"{w}.signals", f"unknown signal {signal!r}; known: {', '.join(SIGNALS)}"
                    )
            weak = self.texts(w, t, "weak")
            rules.append(Rule(topic, phrases, self.texts(w, t, "exclude"), weak, signals))
        ignored = self.texts("classify", settings, "not_officials")
        discover_after = self.whole("classify", "discover_after", 2, 1, 100)
        if base is None:
            return Classification(
                tuple(officials.values()),
                tuple(topics.values()),
                tuple(rules),
                ignored,
                discover_after,
            )
        merged_officials = [officials.pop(o.slug, o) for o in base.officials]
        merged_topics = [topics.pop(t.slug, t) for t in base.topics]
        return Classification(
            (*merged_officials, *officials.values()),
            (*merged_topics, *topics.values()),
            (*base.rules, *rules),
            (*base.not_officials, *ignored),
            discover_after if "discover_after" in settings else base.discover_after,
        )

    def table(self, section: str) -> Mapping[str, Any]:
        value = self.data.get(section, {})
        if not isinstance(value, Mapping):
            raise self.fail(section, "must be a table")
        return value

    def path(self, section: str, key: str, default: str) -> Path:
        value = self.table(section).get(key, default)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"{section}.{key}", "must be a non-empty path string")
        path = Path(value).expanduser()
        return path if path.is_absolute() else (self.source.parent / path).resolve()


def _url_host(host: str) -> str:
    """The host part of a URL for `host` as the server binds it."""
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - naming the wildcard, not binding it
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


TAXONOMY = Path(__file__).with_name("taxonomy.toml")


@functools.cache
def default_taxonomy() -> Classification:
    """The registry and taxonomy shipped with the package (digest/taxonomy.toml): new
    versions improve it without anyone editing their config.toml."""
    data = tomllib.loads(TAXONOMY.read_text(encoding="utf-8"))
    reader = _Reader(TAXONOMY, data)
    reader.check_keys()
    return reader.classification()


def load(path: Path) -> Config:
    """Read and check `path`; raise ConfigError with a one-line message on any problem."""
    source = path.resolve()
    try:
        raw = source.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    reader = _Reader(source, data)
    reader.check_keys()
    server = reader.server()
    paths = Paths(**{key: reader.path("paths", key, d) for key, d in _DEFAULT_PATHS.items()})
    config = Config(
        source=source,
        paths=paths,
        site=reader.site(server),
        store=reader.store(paths),
        server=server,
        watch=reader.watch(),
        build=Build(reader.whole("build", "workers", _cores(), 1, 64)),
        classification=reader.classification(default_taxonomy()),
        subscribers=(),
        subscriptions=reader.subscriptions(),
        digests=reader.digests(),
        smtp=reader.smtp(),
    )
    config = replace(
        config,
        subscribers=reader.subscribers(config.classification),
        warnings=tuple(reader.warnings),
    )
    if not (paths.templates / "site").is_dir():
        raise reader.fail("paths.templates", f"{paths.templates} has no site/ templates folder")
    return config
