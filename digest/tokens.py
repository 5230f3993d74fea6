"""Signed links: HMAC-SHA256 with the store's secret, one purpose each.

A token is scoped to a purpose and to what it names (a subscriber's key, a version, an
expiry), so one can never stand in for another: a confirmation link cannot manage, a feed
link cannot unsubscribe. 128 bits, as hex, compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac

_SEPARATOR = "\x1f"  # never in an address, a key or a number


def sign(secret: str, purpose: str, *parts: str) -> str:
    message = _SEPARATOR.join((purpose, *parts))
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()[:32]


def check(secret: str, token: str, purpose: str, *parts: str) -> bool:
    return _same(sign(secret, purpose, *parts), token)


def unsubscribe(secret: str, email: str) -> str:
    """The one-click unsubscribe token of every digest sent since 0.1 (RFC 8058 links in
    mailboxes must keep working): the address alone, with no purpose."""
    return hmac.new(secret.encode(), email.lower().encode(), hashlib.sha256).hexdigest()[:32]


def unsubscribe_ok(secret: str, email: str, token: str) -> bool:
    return _same(unsubscribe(secret, email), token)


def _same(expected: str, given: str) -> bool:
    # As bytes: compare_digest refuses str with non-ASCII characters, and links are
    # percent-decoded, so a token can carry any.
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))
