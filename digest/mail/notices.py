"""Mails that are not digests: the confirmation of a sign-up, and "you are already
subscribed" (with the manage link) when an active address is signed up again.

They go to the address, never to whoever filled in the form, and say in plain words that
nothing happens if the reader ignores them. Built with the standard library's e-mail policy
(the header values are ours and the address was checked where it entered).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, make_msgid
from urllib.parse import urlencode

import css_inline

from .. import tokens
from ..config import Config
from ..model import Choices, vietnam_time
from ..store import SubscriberRecord
from .compose import display_name, mail_templates, manage_url
from .transport import Parcel

SUBJECTS = {
    "confirm": "Xác nhận đăng ký bản tin lãnh đạo Bộ Y tế",
    "already": "Bạn đã đăng ký bản tin lãnh đạo Bộ Y tế",
}
_INLINER = css_inline.CSSInliner(keep_style_tags=False, minify_css=True)


def confirm_url(base_url: str, secret: str, key: str, expires: datetime) -> str:
    at = str(int(expires.timestamp()))
    token = tokens.sign(secret, "confirm", key, at)
    return f"{base_url}xac-nhan?{urlencode({'s': key, 'h': at, 't': token})}"


class Notices:
    def __init__(self, config: Config, secret: str) -> None:
        self.config = config
        self.secret = secret
        self.env = mail_templates(config)
        names = config.classification
        self.official_names = {o.slug: o.name for o in names.officials}
        self.topic_names = {t.slug: t.name for t in names.topics}
        self.domain = config.smtp.from_address.rpartition("@")[2] or "localhost"

    def describe(self, choices: Choices) -> list[str]:
        """The choices in words, a line each."""
        every = "Hằng ngày" if choices.schedule == "daily" else "Hằng tuần"
        return [
            f"{every}, lúc {self._send_time(choices.schedule)} (giờ Việt Nam)",
            "Lãnh đạo: " + _names(choices.officials, self.official_names, "tất cả"),
            "Chủ đề: " + _names(choices.topics, self.topic_names, "tất cả"),
        ]

    def _send_time(self, schedule: str) -> str:
        d = self.config.digests
        if schedule == "daily":
            return d.daily_at.strftime("%H:%M")
        days = ("thứ Hai", "thứ Ba", "thứ Tư", "thứ Năm", "thứ Sáu", "thứ Bảy", "Chủ nhật")
        return f"{d.weekly_at:%H:%M} {days[d.weekly_day]}"

    def compose(self, kind: str, record: SubscriberRecord, now: datetime) -> Parcel:
        site = self.config.site
        context: dict[str, object] = {
            "site_title": site.title,
            "site_url": f"{site.base_url}index.html",
            "email": record.email,
        }
        if kind == "confirm":
            assert record.requested is not None and record.expires is not None
            context |= {
                "confirm_url": confirm_url(site.base_url, self.secret, record.key, record.expires),
                "until": vietnam_time(record.expires),
                "choices": self.describe(record.requested),
            }
        else:
            context |= {
                "manage_url": manage_url(site.base_url, self.secret, record.key, record.version),
                "choices": self.describe(record.choices),
            }
        text = self.env.get_template(f"mail/{kind}.txt").render(context)
        html = _INLINER.inline(self.env.get_template(f"mail/{kind}.html").render(context))
        message = EmailMessage(policy=SMTP)
        smtp = self.config.smtp
        message["Subject"] = SUBJECTS[kind]
        message["From"] = formataddr((display_name(smtp.from_name), smtp.from_address), "utf-8")
        message["To"] = record.email
        message["Date"] = format_datetime(now)
        message_id = make_msgid(domain=self.domain)
        message["Message-ID"] = message_id
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        return Parcel(message_id, record.email, message.as_bytes())


def _names(slugs: Sequence[str], names: dict[str, str], every: str) -> str:
    return ", ".join(names.get(s, s) for s in slugs) if slugs else every
