"""The readers' pages, answered by the daemon: sign up, confirm, manage, leave, and a
personal digest feed. Vietnamese, in the site's style, from the site's templates.

    GET  /dang-ky[?quan-chuc=SLUG|chu-de=SLUG]   the sign-up form (also on every site page)
    POST /dang-ky                                 a sign-up: the same answer for any address
    GET  /xac-nhan?s&h&t   POST /xac-nhan          the mailed link's page, and its button
    GET  /quan-ly?s&t      POST /quan-ly           what the reader gets; opt-out; deletion
    GET  /unsubscribe?email&token, POST            one-click unsubscribe (RFC 8058)
    GET  /ban-tin/KEY.atom?t=TOKEN                 the reader's digests as an Atom feed

Defences (docs/subscriptions.md says why these): no cookies, so nothing a cross-site form
could borrow, and every POST from a browser must come from this site (Origin and
Sec-Fetch-Site); the manage and confirm forms carry their signed token; a honeypot field;
sign-ups counted per client and hour in the store (shared by every process); the client is
the socket's peer unless it is a trusted proxy; bodies over 16 KB are refused.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from .. import tokens
from ..classify import Subject, subjects
from ..config import Config
from ..mail import Sender
from ..mail.compose import manage_url
from ..mail.periods import next_period
from ..model import Choices, vietnam_time
from ..server import HTML, Pages, Receive, Scope, Send, log_error, read_body, respond
from ..store import Store, SubscriberRecord
from . import rules
from .feed import digest_feed

log = logging.getLogger("digest.subscribe")

_ATOM = b"application/atom+xml; charset=utf-8"
_SCHEDULES = ("daily", "weekly")
_OFFICIAL, _TOPIC, _SCHEDULE = "quan-chuc", "chu-de", "lich"
_HONEYPOT = "trang-web"  # hidden from people; bots fill it
_PATHS = frozenset({"/dang-ky", "/xac-nhan", "/quan-ly", "/unsubscribe"})
_FEED_PREFIX = "/ban-tin/"


class Forms:
    def __init__(
        self,
        config: Config,
        store: Store,
        sender: Sender,
        now: Callable[[], datetime],
        *,
        pages: Pages,
    ) -> None:
        self.config = config
        self.settings = config.subscriptions
        self.store = store
        self.people = store.subscribers
        self.sender = sender
        self.now = now
        self.pages = pages
        self.env = pages.env  # the same templates: compiled once
        self.base = config.site.base_url
        self._secret: str | None = None

    @property
    def secret(self) -> str:
        if self._secret is None:
            self._secret = self.store.outbox.secret()
        return self._secret

    def handles(self, path: str) -> bool:
        return path in _PATHS or path.startswith(_FEED_PREFIX)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, path = scope["method"], scope["path"]
        allowed = b"GET, HEAD" if path.startswith(_FEED_PREFIX) else b"GET, HEAD, POST"
        if method not in allowed.decode().split(", "):
            log_error(scope, 405)
            await respond(send, 405, b"Method not allowed\n", [(b"allow", allowed)])
            return
        if path == "/dang-ky" and not self.settings.open:  # readers already in keep their pages
            await self._page(send, 404, self.pages.not_found())
            return
        head = method == "HEAD"
        form: dict[str, list[str]] = {}
        body: bytes | None = b""
        if method == "POST":
            body = await read_body(receive)
            if body is None:
                await respond(send, 413, b"Request body too large or incomplete\n")
                return
            if not _same_origin(scope, self.base):
                log_error(scope, 403)
                page = self.pages.message("Không gửi được biểu mẫu", _CROSS_SITE)
                await self._page(send, 403, page)
                return
        try:  # no form of ours has 200 fields, nor a link of ours 50
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"), max_num_fields=50)
            form = parse_qs((body or b"").decode("utf-8", "replace"), max_num_fields=200)
        except ValueError:
            log_error(scope, 400)
            await respond(send, 400, b"Too many fields\n")
            return
        request = _Request(method, query, form, self.client(scope))
        if path.startswith(_FEED_PREFIX):
            feed = await asyncio.to_thread(self._feed, path.removeprefix(_FEED_PREFIX), request)
            if feed is None:
                await self._page(send, 404, self.pages.not_found())
                return
            headers = [(b"cache-control", b"private, max-age=300")]
            await respond(send, 200, feed, headers, content_type=_ATOM, head=head)
            return
        handler = {
            "/dang-ky": self._sign_up,
            "/xac-nhan": self._confirm,
            "/quan-ly": self._manage,
            "/unsubscribe": self._unsubscribe,
        }[path]
        # The store is a blocking API: its calls run beside the loop, which keeps serving.
        status, page = await asyncio.to_thread(handler, request)
        if request.mailed:
            self.sender.nudge()
        if status >= 400:
            log_error(scope, status)
        await self._page(send, status, page, head=head)

    # -- the client, for the rate limit --------------------------------------------------------

    def client(self, scope: Scope) -> str:
        """The socket's peer; behind a trusted proxy, the address X-Forwarded-For gives
        before the trusted ones (read from the right: the left is the client's to forge)."""
        peer = (scope.get("client") or ("unknown", 0))[0]
        trusted = self.config.server.trusted_proxies
        if not trusted or not _within(peer, trusted):
            return str(peer)
        forwarded = b",".join(v for k, v in scope.get("headers", ()) if k == b"x-forwarded-for")
        hops = [h.strip() for h in forwarded.decode("latin-1").split(",") if h.strip()]
        for hop in reversed(hops):
            if not _within(hop, trusted):
                return hop
        return str(peer)

    # -- sign-up -------------------------------------------------------------------------------

    def _sign_up(self, request: _Request) -> tuple[int, bytes]:
        officials, topics = self._subjects()
        if request.method != "POST":
            wanted = Choices(
                "daily",
                tuple(s for s in request.query.get(_OFFICIAL, []) if s in _slugs(officials)),
                tuple(s for s in request.query.get(_TOPIC, []) if s in _slugs(topics)),
            )
            return 200, self._render("site/subscribe.html", choices=wanted, email="", error="")
        address, problem = rules.normal_address(request.one("email"))
        choices, bad = _choices(request.form, officials, topics)
        if problem or bad:
            error = f"Địa chỉ e-mail chưa đúng: {_PROBLEMS.get(problem or '', 'hãy xem lại')}."
            if bad:
                error = "Lựa chọn không hợp lệ; hãy chọn lại."
            page = self._render("site/subscribe.html", choices=choices, email=address, error=error)
            return 400, page
        if request.one(_HONEYPOT):  # a person never sees the field
            log.info("sign-up with the hidden field filled: ignored", extra={"event": "signup"})
            return 200, self._sent(address)
        now = self.now()
        if not self.people.hit(request.client, now, self.settings.per_client_per_hour):
            log.warning(
                "sign-ups from %s over %d in an hour: refused",
                request.client,
                self.settings.per_client_per_hour,
                extra={"event": "signup", "state": "limited", "client": request.client},
            )
            return 429, self.pages.message(
                "Quá nhiều yêu cầu",
                "Máy của bạn đã gửi nhiều yêu cầu đăng ký trong một giờ qua. "
                "Hãy thử lại sau một giờ nữa.",
            )
        hour = self.people.notices_since(now - timedelta(hours=1))
        may_mail = hour < self.settings.confirmations_per_hour
        if not may_mail:
            log.warning(
                "more than %d confirmation mails this hour: sign-ups wait",
                self.settings.confirmations_per_hour,
                extra={"event": "signup", "state": "paused"},
            )
        outcome = rules.Outcome()
        lapse = timedelta(hours=self.settings.confirm_hours)
        self.people.change(
            address,
            lambda old: rules.sign_up(
                old,
                email=address,
                choices=choices,
                now=now,
                lapse=lapse,
                may_mail=may_mail,
                outcome=outcome,
            ),
            now,
        )
        request.mailed = outcome.said == "mailed"
        log.info("sign-up: %s", outcome.said, extra={"event": "signup", "state": outcome.said})
        return 200, self._sent(address)

    def _sent(self, address: str) -> bytes:
        return self.pages.message(
            "Hãy mở hộp thư của bạn",
            f"Chúng tôi gửi thư tới {address} để hỏi lại trước khi gửi bản tin. "
            "Hãy mở thư và làm theo hướng dẫn trong đó.",
            "Nếu vài phút nữa chưa thấy thư, hãy xem thư mục Spam (Thư rác). "
            "Mỗi địa chỉ chỉ nhận một thư như vậy trong 24 giờ.",
        )

    # -- confirmation --------------------------------------------------------------------------

    def _confirm(self, request: _Request) -> tuple[int, bytes]:
        fields = request.form if request.method == "POST" else request.query
        key, at, token = (fields.get(k, [""])[0] for k in ("s", "h", "t"))
        now = self.now()
        record = self.people.find(key=key) if key else None
        valid = (
            record is not None
            and at.isdigit()
            and int(at) >= now.timestamp()
            and tokens.check(self.secret, token, "confirm", key, at)
        )
        if record is None or not valid:
            return 400, self._lapsed()
        if request.method != "POST":
            if record.requested is None:  # used already: say so only if it still holds
                if record.state != "active":
                    return 400, self._lapsed()
                return 200, self._confirmed(record, fresh=False)
            describe = self.sender.notices.describe(record.requested)
            carry = {"s": key, "h": at, "t": token}
            return 200, self._render(
                "site/confirm.html", email=record.email, choices=describe, carry=carry
            )
        outcome = rules.Outcome()
        via = rules.consent("web", now, form="xac-nhan")
        stored = self.people.change(
            record.email, lambda old: rules.confirm(old, now=now, via=via, outcome=outcome), now
        )
        if outcome.said == "lapsed" or stored is None:
            return 400, self._lapsed()
        log.info("confirmed", extra={"event": "signup", "state": outcome.said})
        return 200, self._confirmed(stored, fresh=outcome.said == "confirmed")

    def _confirmed(self, record: SubscriberRecord, *, fresh: bool) -> bytes:
        first = next_period(record.choices.schedule, self.now(), self.config.digests).slot
        return self.pages.message(
            "Đã xác nhận đăng ký" if fresh else "Đăng ký đã được xác nhận",
            f"Địa chỉ {record.email} sẽ nhận bản tin hoạt động của lãnh đạo Bộ Y tế.",
            f"Bản tin đầu tiên sẽ đến vào {vietnam_time(first)} (giờ Việt Nam), "
            "với các tin đăng từ lúc bạn xác nhận.",
            "Cuối mỗi bản tin có đường dẫn để đổi nội dung nhận hoặc hủy đăng ký.",
            links={"Quản lý đăng ký": self._manage_url(record)},
        )

    def _lapsed(self) -> bytes:
        return self.pages.message(
            "Đường dẫn không còn dùng được",
            "Đường dẫn này không đúng, đã hết hạn hoặc đã được dùng. "
            "Nếu bạn muốn nhận bản tin, hãy đăng ký lại.",
            links={"Đăng ký nhận bản tin": f"{self.base}dang-ky"},
        )

    # -- the manage page -----------------------------------------------------------------------

    def _manage(self, request: _Request) -> tuple[int, bytes]:
        fields = request.form if request.method == "POST" else request.query
        key, token = fields.get("s", [""])[0], fields.get("t", [""])[0]
        record = self.people.find(key=key) if key else None
        if record is None or not tokens.check(
            self.secret, token, "manage", key, str(record.version)
        ):
            # The token is what proves the page is the reader's: without it, nothing.
            return 403 if request.method == "POST" else 400, self._lapsed()
        if request.method != "POST":
            return 200, self._manage_page(record, said="")
        now, outcome = self.now(), rules.Outcome()
        action = request.one("hanh-dong")
        officials, topics = self._subjects()
        if action == "xoa":
            self.people.delete([record.email])
            log.info("deleted on request", extra={"event": "subscribers", "state": "deleted"})
            return 200, self.pages.message(
                "Đã xóa dữ liệu của bạn",
                f"Chúng tôi đã xóa địa chỉ {record.email} cùng mọi thông tin về các bản tin "
                "đã gửi tới đó. Bạn sẽ không nhận thêm thư nào.",
            )
        choices, bad = _choices(request.form, officials, topics)
        decisions: dict[str, Callable[[SubscriberRecord | None], Any]] = {
            "luu": lambda old: rules.choose(old, choices=choices, outcome=outcome),
            "huy": lambda old: rules.unsubscribe(old, email=record.email, now=now, outcome=outcome),
            "dang-ky-lai": lambda old: rules.resubscribe(
                old, now=now, via=rules.consent("manage", now), outcome=outcome
            ),
            "doi-duong-dan": lambda old: rules.rotate(old, outcome=outcome),
        }
        if action not in decisions or (action == "luu" and bad):
            return 400, self._manage_page(record, said="Lựa chọn không hợp lệ; hãy chọn lại.")
        stored = self.people.change(record.email, decisions[action], now)
        if stored is None:
            return 400, self._lapsed()
        return 200, self._manage_page(stored, said=_SAID.get(outcome.said, ""))

    def _manage_page(self, record: SubscriberRecord, *, said: str) -> bytes:
        token = tokens.sign(self.secret, "manage", record.key, str(record.version))
        feed = tokens.sign(self.secret, "feed", record.key, str(record.version))
        feed_url = f"{self.base}ban-tin/{record.key}.atom?{urlencode({'t': feed})}"
        first = next_period(record.choices.schedule, self.now(), self.config.digests).slot
        return self._render(
            "site/manage.html",
            record=record,
            carry={"s": record.key, "t": token},
            choices=record.choices,
            said=said,
            feed_url=feed_url,
            next_digest=vietnam_time(first),
            describe=self.sender.notices.describe(record.choices),
        )

    def _manage_url(self, record: SubscriberRecord) -> str:
        return manage_url(self.base, self.secret, record.key, record.version)

    # -- one-click unsubscribe -----------------------------------------------------------------

    def _unsubscribe(self, request: _Request) -> tuple[int, bytes]:
        """RFC 8058 one-click unsubscribe: POST does it; GET only shows a button, because
        mail scanners follow links."""
        email = request.query.get("email", [""])[0]
        token = request.query.get("token", [""])[0]
        if request.method == "POST":
            address, problem = rules.normal_address(email)
            if problem or not tokens.unsubscribe_ok(self.secret, address, token):
                return 400, self.pages.message(
                    "Đường dẫn không hợp lệ",
                    "Đường dẫn hủy đăng ký này không đúng hoặc không đầy đủ. Hãy bấm vào "
                    "đường dẫn ở cuối một bản tin bạn đã nhận.",
                )
            now, outcome = self.now(), rules.Outcome()
            self.people.change(
                address,
                lambda old: rules.unsubscribe(old, email=address, now=now, outcome=outcome),
                now,
            )
            log.info("unsubscribed", extra={"event": "subscribers", "state": "unsubscribed"})
            return 200, self.pages.message(
                "Đã hủy đăng ký",
                f"Địa chỉ {email} sẽ không nhận bản tin nữa.",
                "Nếu đổi ý, bạn có thể đăng ký lại trên trang.",
                links={"Đăng ký lại": f"{self.base}dang-ky"},
            )
        action = f"{self.base}unsubscribe?" + urlencode({"email": email, "token": token})
        return 200, self.pages.message(
            "Hủy đăng ký bản tin",
            f"Bạn muốn ngừng nhận bản tin gửi tới {email}?",
            form={"action": action, "button": "Hủy đăng ký"},
        )

    # -- the reader's feed ---------------------------------------------------------------------

    def _feed(self, name: str, request: _Request) -> bytes | None:
        """The reader's feed; None (a 404, whatever was wrong) unless the link is theirs."""
        key = name.removesuffix(".atom")
        record = self.people.find(key=key) if name.endswith(".atom") else None
        token = request.query.get("t", [""])[0]
        if (
            record is None
            or record.state != "active"
            or not tokens.check(self.secret, token, "feed", key, str(record.version))
        ):
            return None
        own = f"{self.base}ban-tin/{key}.atom?{urlencode({'t': token})}"
        return digest_feed(self.sender, record, self.now(), url=own, home=self._manage_url(record))

    # -- rendering -----------------------------------------------------------------------------

    def _subjects(self) -> tuple[list[Subject], list[Subject]]:
        stats = self.store.index.channel_stats()
        return subjects(self.config.classification, stats, self.store.entries.discovered())

    def _render(self, template: str, **context: Any) -> bytes:
        officials, topics = self._subjects()
        return (
            self.env.get_template(template)
            .render(
                site=self.config.site,
                root=self.base,
                feeds=[],
                officials=officials,
                topics=topics,
                consent=rules.CONSENT,
                hours=self.settings.confirm_hours,
                **context,
            )
            .encode()
        )

    async def _page(self, send: Send, status: int, page: bytes, *, head: bool = False) -> None:
        # Pages with a reader's links are nobody else's: never cached, their address never sent
        # to another site (same-origin, not no-referrer: with no-referrer, Chromium's POSTs
        # from the page say `Origin: null`, which the cross-site check refuses).
        extra = [(b"referrer-policy", b"same-origin"), (b"x-frame-options", b"DENY")]
        await respond(send, status, page, extra, content_type=HTML, head=head)


class _Request:
    def __init__(
        self,
        method: str,
        query: Mapping[str, list[str]],
        form: Mapping[str, list[str]],
        client: str,
    ) -> None:
        self.method = method
        self.query = query
        self.form = form
        self.client = client
        self.mailed = False  # a notice was queued: the mail stage is told at once

    def one(self, name: str) -> str:
        return self.form.get(name, [""])[0].strip()


_CROSS_SITE = (
    "Biểu mẫu này chỉ nhận được từ chính trang của chúng tôi. Hãy mở trang và gửi lại từ đó."
)
_PROBLEMS = {
    "has spaces or control characters": "có dấu cách hoặc ký tự lạ",
    "is longer than 254 characters": "dài quá 254 ký tự",
    "must have exactly one @": "cần đúng một dấu @",
    "has an invalid part before the @": "phần trước dấu @ không hợp lệ",
    "has an invalid domain after the @": "tên miền sau dấu @ không hợp lệ",
}
_SAID = {
    "saved": "Đã lưu lựa chọn của bạn.",
    "managed": "Nội dung bạn nhận do người quản trị đặt; hãy liên hệ họ để thay đổi.",
    "unsubscribed": "Đã hủy đăng ký: bạn sẽ không nhận bản tin nữa.",
    "confirmed": "Đã đăng ký lại: bạn sẽ nhận bản tin từ lần gửi tới.",
    "rotated": "Đã đổi đường dẫn: đường dẫn cũ tới trang này và tới nguồn tin riêng hết hiệu lực.",
    "inactive": "Bạn đang không nhận bản tin; hãy đăng ký lại trước.",
    "active": "Bạn đang nhận bản tin.",
}


def _slugs(found: Sequence[Subject]) -> set[str]:
    return {s.slug for s in found}


def _choices(
    form: Mapping[str, list[str]], officials: Sequence[Subject], topics: Sequence[Subject]
) -> tuple[Choices, bool]:
    """The choices a form sent, in the site's order, and whether anything was not a choice."""
    schedule = form.get(_SCHEDULE, ["daily"])[0]
    picked = {k: set(form.get(k, [])) for k in (_OFFICIAL, _TOPIC)}
    bad = schedule not in _SCHEDULES or not (
        picked[_OFFICIAL] <= _slugs(officials) and picked[_TOPIC] <= _slugs(topics)
    )
    choices = Choices(
        schedule if schedule in _SCHEDULES else "daily",
        tuple(s.slug for s in officials if s.slug in picked[_OFFICIAL]),
        tuple(s.slug for s in topics if s.slug in picked[_TOPIC]),
    )
    return choices, bad


def _within(
    address: str, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def _same_origin(scope: Scope, base_url: str) -> bool:
    """Whether a POST comes from this site. Browsers say where a form was on (Origin, and
    Sec-Fetch-Site); a request that says neither is no browser's, so no one else's page
    can have made it."""
    headers = {k: v for k, v in scope.get("headers", ())}
    site = headers.get(b"sec-fetch-site", b"").decode("latin-1")
    if site and site not in ("same-origin", "none"):
        return False
    origin = headers.get(b"origin", b"").decode("latin-1")
    if not origin:
        return True
    host = headers.get(b"host", b"").decode("latin-1")
    return urlsplit(origin).netloc in {host, urlsplit(base_url).netloc} - {""}
