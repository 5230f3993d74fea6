"""Every error digest raises on purpose: one root, an exit code each, and the built-in each
one also is, so callers can catch either. The message always says what to do next."""

from __future__ import annotations


class DigestError(Exception):
    """Something the operator can fix; `exit_code` is what the command exits with."""

    exit_code = 1


class ConfigError(DigestError, ValueError):
    """The configuration cannot be used; the message names the file, the key and why."""

    exit_code = 2


class StoreError(DigestError, RuntimeError):
    """The store cannot be opened or written; the message says what to check. The database
    error that caused it is kept as `__cause__`."""

    exit_code = 3


class LockedError(DigestError, RuntimeError):
    """Another digest process is writing the same store and public folder."""

    exit_code = 4


class ServeError(DigestError, OSError):
    """The HTTP port cannot be listened on."""


class MailError(DigestError):
    """A message was not delivered; the subclass says whether trying again is right."""


class TransientMailError(MailError, ConnectionError):
    """Not delivered, and trying later may work (4xx, refused or dropped connection)."""


class PermanentMailError(MailError):
    """Not delivered, and trying again will not help (5xx, a refused recipient)."""


class UnknownOutcomeError(MailError, TimeoutError):
    """The server may or may not have accepted the message: never send it again."""


class ClaimLostError(MailError, RuntimeError):
    """This process's claim on a digest was settled by another (it was taken for dead): it
    must not send, and nothing was sent."""
