"""Composing a digest: which entries a subscriber gets for a period, and the message itself.

Entries are grouped by official (in registry order; an entry with several officials goes
under the first and shows all as tags), entries with no official last, newest first in each
group. The HTML (table layout, about 600 px, CSS inlined with css-inline) and the plain text
come from autoescaped Jinja2 templates. Headers are built by the standard library's e-mail
policy, which RFC 2047-encodes the Vietnamese subject and refuses line breaks; values from
config or seeds are stripped of every line-break character before they reach a header.
"""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.header import Header
from email.message import Message
from email.utils import format_datetime, formataddr
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

import css_inline
import jinja2

from .. import tokens
from ..config import Config
from ..model import EntryHead, Subscriber, vietnam_time
from .periods import Period
from .transport import WIRE, Parcel

# Stand-ins for what differs between subscribers of the same rendering: no markup, no
# character that escaping or CSS inlining would touch.
_NAME = "DIGESTSUBSCRIBERNAME7f3a"
_MANAGE = "https://digest.invalid/manage-7f3a"
_NAME_B, _MANAGE_B = _NAME.encode(), _MANAGE.encode()
_RENDER_CACHE = 256
_MAX_LINE = 998  # octets in a line of a message, CRLF aside (RFC 5322 2.1.1)
_MAX_NAME = 64  # characters of a display name in To and From
_LINE_BREAKS = re.compile("[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]+")
_INLINER = css_inline.CSSInliner(keep_style_tags=False, minify_css=True)


def header_safe(text: str) -> str:
    """A value fit for a header: no line break of any kind, so nothing can be injected."""
    return _LINE_BREAKS.sub(" ", text).strip()


def display_name(name: str) -> str:
    """A name for To or From: header_safe, and cut to 64 characters, so the encoded header
    stays one short line (one of several hundred, encoded as one unfolded word, would exceed
    SMTP's 998 octets)."""
    safe = header_safe(name)
    return safe if len(safe) <= _MAX_NAME else safe[: _MAX_NAME - 1].rstrip() + "…"


@dataclass(frozen=True, slots=True)
class Letter:
    """One subscriber's digest for one period."""

    subscriber: Subscriber
    period: Period
    entries: tuple[EntryHead, ...]  # all matching, newest first (before the cap)
    parcel: Parcel | None  # None when there is nothing to send

    @property
    def message(self) -> Message | None:
        """The message parsed back (for previews and checks; sending uses the parcel)."""
        if self.parcel is None:
            return None
        return email.message_from_bytes(self.parcel.data, policy=email.policy.default)


def matches(subscriber: Subscriber, entry: EntryHead) -> bool:
    """Empty filters mean everything; otherwise the entry must match both lists."""
    if subscriber.officials and not set(subscriber.officials) & set(entry.officials):
        return False
    return not (subscriber.topics and not set(subscriber.topics) & set(entry.topics))


def mail_templates(config: Config) -> jinja2.Environment:
    """The mail templates: HTML autoescaped, text as written."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(config.paths.templates)),
        autoescape=jinja2.select_autoescape(["html"], default_for_string=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


class Composer:
    def __init__(self, config: Config, secret: str) -> None:
        self.config = config
        self.site = config.site
        self.secret = secret
        self.env = mail_templates(config)
        self.html = self.env.get_template("mail/digest.html")
        self.text = self.env.get_template("mail/digest.txt")
        names = config.classification
        self.official_names = {o.slug: o.name for o in names.officials}
        self.official_order = {o.slug: i for i, o in enumerate(names.officials)}
        self.topic_names = {t.slug: t.name for t in names.topics}
        self.domain = config.smtp.from_address.rpartition("@")[2] or "localhost"
        self._rendered: dict[tuple[object, ...], tuple[_Rendered, _Rendered]] = {}
        self._headers: dict[tuple[str, datetime], bytes] = {}
        # (filters, id of the entry list) -> (that list, kept alive so the id stays its own,
        # the matching entries, a key for them)
        self._filtered: dict[
            tuple[object, ...], tuple[Sequence[EntryHead], tuple[EntryHead, ...], str]
        ] = {}

    def message_id(self, subscriber: Subscriber, period: Period) -> str:
        key = f"{subscriber.email.lower()}|{period.key}"
        return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{self.domain}>"

    def unsubscribe_url(self, subscriber: Subscriber) -> str:
        """One-click unsubscribe (RFC 8058), for the List-Unsubscribe header."""
        token = tokens.unsubscribe(self.secret, subscriber.email)
        query = urlencode({"email": subscriber.email, "token": token})
        return f"{self.site.base_url}unsubscribe?{query}"

    def manage_url(self, subscriber: Subscriber) -> str:
        """The reader's page: what they get, opt-out, deletion, their feed. Before a config
        subscriber is first stored it has no key: its opt-out link stands in."""
        if not subscriber.key:
            return self.unsubscribe_url(subscriber)
        return manage_url(self.site.base_url, self.secret, subscriber.key, subscriber.version)

    def _groups(self, entries: Sequence[EntryHead]) -> list[dict[str, Any]]:
        buckets: dict[str, list[EntryHead]] = {}
        for entry in entries:
            known = [s for s in entry.officials if s in self.official_order]
            lead = min(known, key=self.official_order.__getitem__) if known else ""
            if not lead and entry.officials:
                lead = entry.officials[0]  # a discovered official
            buckets.setdefault(lead, []).append(entry)
        order = sorted(buckets, key=lambda s: (s == "", self.official_order.get(s, 999), s))
        groups = []
        for slug in order:
            label = self.official_names.get(slug, slug) if slug else "Tin khác của Bộ Y tế"
            items = [self._item(e) for e in buckets[slug]]
            groups.append({"label": label, "count": len(items), "items": items})
        return groups

    def _item(self, entry: EntryHead) -> dict[str, str]:
        tags = [self.official_names.get(s, s) for s in entry.officials]
        tags += [self.topic_names.get(s, s) for s in entry.topics]
        return {
            "title": entry.title,
            "url": f"{self.site.base_url}entries/{entry.id}.html",
            "when": vietnam_time(entry.published),
            "summary": entry.summary + (" …" if entry.summary_truncated else ""),
            "tags": " · ".join(tags),
        }

    def _feeds(self, subscriber: Subscriber) -> list[dict[str, str]]:
        base = self.site.base_url
        feeds = [
            {"label": self.official_names.get(s, s), "url": f"{base}feeds/officials/{s}.atom"}
            for s in subscriber.officials
        ] + [
            {"label": self.topic_names.get(s, s), "url": f"{base}feeds/topics/{s}.atom"}
            for s in subscriber.topics
        ]
        return feeds or [{"label": "Tất cả", "url": f"{base}feeds/all.atom"}]

    def subject(self, period: Period, total: int, label: str | None = None) -> str:
        kind = "Bản tin" if period.schedule == "daily" else "Bản tin tuần"
        when = (label or period.label()).removeprefix("Ngày ").removeprefix("Tuần ")
        return f"{kind} hoạt động lãnh đạo Bộ Y tế — {when} ({total} tin)"

    def compose(
        self,
        subscriber: Subscriber,
        period: Period,
        entries: Sequence[EntryHead],
        *,
        now: datetime,
        label: str | None = None,
    ) -> Letter:
        chosen, key = self._chosen(subscriber, entries)
        if not chosen:
            return Letter(subscriber, period, chosen, None)
        subject = self.subject(period, len(chosen), label)
        text, html = self._bodies(subscriber, period, chosen, key, label, subject)
        name, manage = header_safe(subscriber.name), self.manage_url(subscriber)
        parts = (
            text.filled(name, manage),
            html.filled(escape(name), escape(manage)),
        )
        smtp = self.config.smtp
        unsubscribe = self.unsubscribe_url(subscriber)
        token = tokens.unsubscribe(self.secret, subscriber.email)
        mailto = f"mailto:{smtp.from_address}?subject={quote(f'unsubscribe {token}')}"
        # Every header value is header_safe. Only To, Message-ID and List-Unsubscribe differ
        # between recipients; the rest is encoded once per subject (folding headers in the
        # email package cost a millisecond a message).
        head = Message()
        head["To"] = formataddr((display_name(subscriber.name), subscriber.email), "utf-8")
        message_id = self.message_id(subscriber, period)
        head["Message-ID"] = message_id
        head["List-Unsubscribe"] = f"<{mailto}>, <{unsubscribe}>"
        boundary = "=_digest_" + hashlib.sha256(message_id.encode()).hexdigest()[:24]
        # Content-Type goes in by hand: given a multipart type and no parts, the generator would
        # write an empty skeleton. Without it, the header block ends with its blank line.
        headers = self._shared_headers(subject, now) + head.as_bytes(policy=WIRE).removesuffix(
            b"\r\n"
        )
        content_type = f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'
        body, eight_bit = _body(boundary, parts)
        data = headers + content_type.encode() + body
        parcel = Parcel(message_id, subscriber.email, data, eight_bit=eight_bit)
        return Letter(subscriber, period, chosen, parcel)

    def _shared_headers(self, subject: str, now: datetime) -> bytes:
        """The header lines every recipient of this subject at this time gets, encoded."""
        key = (subject, now)
        found = self._headers.get(key)
        if found is None:
            head = Message()
            # compat32 takes Header objects and folds them with the name in mind (typeshed
            # says str).
            head["Subject"] = Header(header_safe(subject), "utf-8", header_name="Subject")  # type: ignore[assignment]
            smtp = self.config.smtp
            head["From"] = formataddr((display_name(smtp.from_name), smtp.from_address), "utf-8")
            head["Date"] = format_datetime(now)
            head["List-Id"] = Header(
                f"{header_safe(self.site.title)} <digest.{self.domain}>",
                "utf-8",
                header_name="List-Id",
            )  # type: ignore[assignment]
            head["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
            head["Auto-Submitted"] = "auto-generated"
            head["MIME-Version"] = "1.0"
            found = head.as_bytes(policy=WIRE).removesuffix(b"\r\n")
            if len(self._headers) >= _RENDER_CACHE:
                self._headers.clear()
            self._headers[key] = found
        return found

    def _chosen(
        self, subscriber: Subscriber, entries: Sequence[EntryHead]
    ) -> tuple[tuple[EntryHead, ...], str]:
        """The entries matching the subscriber's filters, and a key naming that selection;
        computed once per filter and list of entries."""
        memo = (subscriber.officials, subscriber.topics, id(entries))
        found = self._filtered.get(memo)
        if found is None or found[0] is not entries:
            chosen = tuple(e for e in entries if matches(subscriber, e))
            key = hashlib.sha256("".join(e.rev + e.id for e in chosen).encode()).hexdigest()
            if len(self._filtered) >= _RENDER_CACHE:
                self._filtered.clear()
            found = self._filtered[memo] = (entries, chosen, key)
        return found[1], found[2]

    def _bodies(
        self,
        subscriber: Subscriber,
        period: Period,
        chosen: tuple[EntryHead, ...],
        selection: str,
        label: str | None,
        subject: str,
    ) -> tuple[_Rendered, _Rendered]:
        """Text and inlined HTML, rendered once for every subscriber with the same filters
        and entries; their name and unsubscribe link are filled in afterwards."""
        key = (
            subscriber.officials,
            subscriber.topics,
            period,
            label,
            bool(subscriber.name),
            selection,
        )
        cached = self._rendered.get(key)
        if cached is not None:
            return cached
        shown = chosen[: self.config.digests.max_items]
        context = {
            "subject": subject,
            "heading": "Hoạt động của lãnh đạo Bộ Y tế",
            "period_label": label or period.label(),
            "total": len(chosen),
            "name": _NAME if subscriber.name else "",
            "groups": self._groups(shown),
            "more": len(chosen) - len(shown),
            "site_url": f"{self.site.base_url}index.html",
            "site_title": self.site.title,
            "feeds": self._feeds(subscriber),
            "manage_url": _MANAGE,
        }
        bodies = (
            _Rendered.of(self.text.render(context)),
            _Rendered.of(_INLINER.inline(self.html.render(context))),
        )
        if len(self._rendered) >= _RENDER_CACHE:
            self._rendered.clear()
        self._rendered[key] = bodies
        return bodies


@dataclass(frozen=True, slots=True)
class _Rendered:
    """A body as rendered for a selection, with the name and manage-link placeholders; its
    line ends and longest line are worked out once, not once per subscriber."""

    data: bytes  # CRLF line ends, one at the end
    longest: int  # octets in the longest line
    placeholders: int  # how many there are
    plain: bool  # no NUL: may go unencoded

    @classmethod
    def of(cls, content: str) -> _Rendered:
        lines = content.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n").split("\n")
        data = "\r\n".join(lines).encode() + b"\r\n"
        longest = max(map(len, data.split(b"\r\n")))
        placeholders = content.count(_NAME) + content.count(_MANAGE)
        return cls(data, longest, placeholders, "\0" not in content)

    def filled(self, name: str, manage: str) -> tuple[str, bytes]:
        """(Content-Transfer-Encoding, payload) with this subscriber's name and link, which
        carry no line break. They go unencoded (8bit; 7bit if ASCII) when every line fits
        SMTP's 998 octets: a quarter smaller than base64 for the reader, nothing to encode.
        A part with a longer line, or a NUL, goes as base64."""
        name_b, manage_b = name.encode(), manage.encode()
        data = self.data.replace(_NAME_B, name_b).replace(_MANAGE_B, manage_b)
        # Lines grow at most by every placeholder landing on the longest: measure only then.
        growth = max(0, len(name_b) - len(_NAME_B), len(manage_b) - len(_MANAGE_B))
        fits = self.longest + self.placeholders * growth <= _MAX_LINE or all(
            len(line) <= _MAX_LINE for line in data.split(b"\r\n")
        )
        if self.plain and fits:
            return ("7bit" if data.isascii() else "8bit"), data
        return "base64", base64.encodebytes(data.replace(b"\r\n", b"\n")).replace(b"\n", b"\r\n")


def _body(boundary: str, parts: tuple[tuple[str, bytes], ...]) -> tuple[bytes, bool]:
    """multipart/alternative written directly, no line-by-line generator (the email
    package's own way cost more than everything else in sending a digest); and whether a
    part is 8bit."""
    out = []
    for subtype, (cte, payload) in zip(("plain", "html"), parts, strict=True):
        out.append(
            f'--{boundary}\r\nContent-Type: text/{subtype}; charset="utf-8"\r\n'
            f"Content-Transfer-Encoding: {cte}\r\n\r\n".encode()
        )
        out.append(payload)
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), any(cte == "8bit" for cte, _ in parts)


def manage_url(base_url: str, secret: str, key: str, version: int) -> str:
    token = tokens.sign(secret, "manage", key, str(version))
    return f"{base_url}quan-ly?{urlencode({'s': key, 't': token})}"


def bodies(message: Message) -> tuple[str, str]:
    """(text, html) of a digest message, decoded, with "\n" line ends (8bit parts keep the
    wire's CRLF)."""
    found = {}
    for part in message.walk():
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            text = payload.decode(part.get_content_charset() or "utf-8")
            found[part.get_content_subtype()] = text.replace("\r\n", "\n")
    return found.get("plain", ""), found.get("html", "")


__all__ = ["Composer", "Letter", "bodies", "header_safe", "matches"]
