"""Delivering a rendered message: over SMTP with aiosmtplib (its only user), or into a Maildir.

What matters for "exactly once" is knowing what happened. SMTP is driven step by step
(MAIL, RCPT, DATA) so a failure is classified precisely:

- before DATA, or a 4xx answer at any step: TransientMailError (a ConnectionError): retry;
- a 5xx answer, e.g. a refused recipient: PermanentMailError: do not retry;
- the connection dropping or timing out during DATA: UnknownOutcomeError (a TimeoutError):
  the server may have accepted the message, so it is never sent again.

`before_data` is called right before DATA (or the Maildir's write): the outbox records then
that the outcome may become unknown. A process killed before that point sent nothing.

The Maildir writes each message under a name derived from its Message-ID, through tmp/ and a
rename into new/, so delivery is atomic and a second delivery of the same message is a no-op.
"""

from __future__ import annotations

import contextlib
import email
import email.encoders
import hashlib
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.policy import compat32
from pathlib import Path
from typing import Protocol

import aiosmtplib

from ..config import Config, Smtp
from ..errors import MailError, PermanentMailError, TransientMailError, UnknownOutcomeError

# Headers are encoded and folded when the message is built (email.header.Header); the modern
# SMTP policy would parse and refold every one of them again, at 15 ms a message.
WIRE = compat32.clone(linesep="\r\n")


@dataclass(frozen=True, slots=True)
class Parcel:
    """A message ready for the wire: CRLF line ends, headers encoded."""

    message_id: str
    recipient: str
    data: bytes
    # 8bit parts: sent with BODY=8BITMIME (RFC 6152), or as base64 to a server without it.
    eight_bit: bool = False


def seven_bit(data: bytes) -> bytes:
    """The message with every 8bit part re-encoded as base64, for a server without
    8BITMIME (rare: the slow way is fine)."""
    message = email.message_from_bytes(data, policy=WIRE)
    for part in message.walk():
        if part.get("Content-Transfer-Encoding", "").lower() == "8bit":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            del part["Content-Transfer-Encoding"]
            part.set_payload(payload)
            email.encoders.encode_base64(part)
    return message.as_bytes(policy=WIRE)


# Called just before the point of no return: SMTP's DATA, the Maildir's write.
BeforeData = Callable[[], Awaitable[None]]


async def _nothing() -> None:
    return None


class Mailer(Protocol):
    async def send(self, parcel: Parcel, *, before_data: BeforeData = _nothing) -> None: ...
    def delivered(self, message_id: str) -> bool | None: ...
    async def close(self) -> None: ...


def _classify(exc: aiosmtplib.SMTPResponseException, what: str) -> MailError:
    text = f"{what}: {exc.code} {exc.message}"
    if 500 <= exc.code < 600:
        return PermanentMailError(text)
    return TransientMailError(text)


class SmtpMailer:
    """One SMTP connection, opened on first use and reused for the following messages."""

    def __init__(self, settings: Smtp, *, password: str | None) -> None:
        self.settings = settings
        self._password = password  # kept out of every message and log line
        self._smtp: aiosmtplib.SMTP | None = None

    def __repr__(self) -> str:
        return f"SmtpMailer({self.settings.host}:{self.settings.port}, {self.settings.security})"

    async def _connection(self) -> aiosmtplib.SMTP:
        if self._smtp is not None and self._smtp.is_connected:
            return self._smtp
        s = self.settings
        smtp = aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            use_tls=s.security == "tls",
            # True insists on STARTTLS (aiosmtplib's None would fall back to plain text).
            start_tls=s.security == "starttls",
            timeout=s.timeout,
        )
        try:
            await smtp.connect()
            if smtp.is_ehlo_or_helo_needed:  # its extensions decide how a message is sent
                await smtp.ehlo()
            if s.username:
                await smtp.login(s.username, self._password or "")
        except aiosmtplib.SMTPResponseException as exc:
            await _quietly_close(smtp)
            raise TransientMailError(
                f"connect to {s.host}:{s.port}: {exc.code} {exc.message}"
            ) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            await _quietly_close(smtp)
            raise TransientMailError(f"connect to {s.host}:{s.port}: {exc}") from None
        self._smtp = smtp
        return smtp

    async def send(self, parcel: Parcel, *, before_data: BeforeData = _nothing) -> None:
        smtp = await self._connection()
        sender = self.settings.from_address
        recipient = parcel.recipient
        data, options = parcel.data, []
        if parcel.eight_bit:
            if smtp.supports_extension("8bitmime"):
                options.append("BODY=8BITMIME")
            else:
                data = seven_bit(data)
        try:
            await smtp.mail(sender, options=options)
            await smtp.rcpt(recipient)
        except aiosmtplib.SMTPResponseException as exc:
            await _reset(smtp)
            raise _classify(exc, f"refused {recipient}") from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            await self._drop()
            raise TransientMailError(f"before the message was sent: {exc}") from None
        try:
            await before_data()
        except BaseException:
            await _reset(smtp)  # no DATA: the next message starts afresh on this connection
            raise
        try:
            await smtp.data(data)
        except aiosmtplib.SMTPResponseException as exc:
            await _reset(smtp)
            raise _classify(exc, "message refused") from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            await self._drop()
            raise UnknownOutcomeError(f"connection lost while sending the message: {exc}") from None

    def delivered(self, message_id: str) -> bool | None:
        return None  # an SMTP server cannot be asked

    async def _drop(self) -> None:
        if self._smtp is not None:
            await _quietly_close(self._smtp)
        self._smtp = None

    async def close(self) -> None:
        if self._smtp is not None and self._smtp.is_connected:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await self._smtp.quit()
        await self._drop()


async def _reset(smtp: aiosmtplib.SMTP) -> None:
    try:
        await smtp.rset()
    except (aiosmtplib.SMTPException, OSError):
        await _quietly_close(smtp)


async def _quietly_close(smtp: aiosmtplib.SMTP) -> None:
    with contextlib.suppress(aiosmtplib.SMTPException, OSError):
        smtp.close()


class MaildirMailer:
    """Delivery into a Maildir (tmp/, new/, cur/), readable by any mail client."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for folder in ("tmp", "new", "cur"):
            (root / folder).mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"MaildirMailer({self.root})"

    @staticmethod
    def _name(message_id: str) -> str:
        return hashlib.sha256(message_id.encode()).hexdigest()[:32] + ".digest"

    def delivered(self, message_id: str) -> bool:
        name = self._name(message_id)
        if (self.root / "new" / name).exists():
            return True
        return any((self.root / "cur").glob(name + "*"))  # a client adds ":2,S" when read

    async def send(self, parcel: Parcel, *, before_data: BeforeData = _nothing) -> None:
        message_id = parcel.message_id
        await before_data()
        if self.delivered(message_id):
            return
        name = self._name(message_id)
        temporary = self.root / "tmp" / f"{name}.{os.getpid()}"
        try:
            with temporary.open("wb") as f:
                f.write(parcel.data)
                f.flush()
                os.fsync(f.fileno())
            temporary.replace(self.root / "new" / name)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise TransientMailError(f"cannot write to {self.root}: {exc.strerror}") from None

    async def close(self) -> None:
        return None


def make_mailer(config: Config) -> Mailer:
    """SMTP when [smtp] host is set, the Maildir outbox otherwise."""
    if config.smtp.host is None:
        return MaildirMailer(config.paths.outbox)
    return SmtpMailer(config.smtp, password=config.smtp.password())
