"""Signed links: each token checks only for its own purpose, parts and secret."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from digest import tokens

SECRET = "5e" * 32
OTHER_SECRET = "5f" * 32
KEY = "b8upt7YMTnfHXtg--G3LVw"
EMAIL = "lan@example.org"
HEX = "0123456789abcdef"

# (purpose, parts) of each kind of link: confirm signs the key and its expiry, manage and
# feed the key and the link version.
LINKS = [
    ("confirm", (KEY, "1768957200")),
    ("manage", (KEY, "0")),
    ("feed", (KEY, "0")),
]


def legacy(secret: str, email: str) -> str:
    """The 0.1 one-click token, written out: HMAC-SHA256 of the lower-cased address."""
    return hmac.new(secret.encode(), email.lower().encode(), hashlib.sha256).hexdigest()[:32]


def altered(token: str) -> list[str]:
    """Every token that differs from `token` in exactly one (hex) character."""
    return [token[:i] + c + token[i + 1 :] for i in range(len(token)) for c in HEX if c != token[i]]


@pytest.mark.parametrize(("purpose", "parts"), LINKS)
def test_a_token_is_128_bits_of_lower_case_hex_and_checks_for_what_it_signed(
    purpose: str, parts: tuple[str, ...]
) -> None:
    token = tokens.sign(SECRET, purpose, *parts)
    assert len(token) == 32 and set(token) <= set(HEX)
    assert tokens.sign(SECRET, purpose, *parts) == token  # the same link every time
    assert tokens.check(SECRET, token, purpose, *parts)


@pytest.mark.parametrize(
    ("purpose", "parts", "other"),
    [
        (purpose, parts, other)
        for purpose, parts in LINKS
        for other in ("confirm", "manage", "feed", "unsubscribe", "")
        if other != purpose
    ],
)
def test_a_token_does_not_check_for_another_purpose(
    purpose: str, parts: tuple[str, ...], other: str
) -> None:
    token = tokens.sign(SECRET, purpose, *parts)
    assert not tokens.check(SECRET, token, other, *parts)


@pytest.mark.parametrize(("purpose", "parts"), LINKS)
def test_a_token_does_not_check_for_other_parts_or_another_secret(
    purpose: str, parts: tuple[str, ...]
) -> None:
    token = tokens.sign(SECRET, purpose, *parts)
    key, number = parts
    others = [
        ("AAAAAAAAAAAAAAAAAAAAAA", number),  # another subscriber's key
        (key, str(int(number) + 1)),  # another version (rotated) or expiry
        (key.lower(), number),  # keys are case-sensitive
        (key, number, ""),  # one part more
        (key,),  # one part less
        (key + number,),  # the same characters, split otherwise
        (key[:-1], key[-1] + number),
    ]
    for other in others:
        assert not tokens.check(SECRET, token, purpose, *other), other
    assert not tokens.check(OTHER_SECRET, token, purpose, *parts)
    assert not tokens.check("", token, purpose, *parts)


def test_a_purpose_cannot_borrow_characters_from_the_parts() -> None:
    assert tokens.sign(SECRET, "manage", KEY, "0") != tokens.sign(SECRET, "manage" + KEY, "0")
    assert tokens.sign(SECRET, "feed", "0") != tokens.sign(SECRET, "feed0")


@pytest.mark.parametrize(("purpose", "parts"), LINKS)
def test_any_altered_character_fails_the_check(purpose: str, parts: tuple[str, ...]) -> None:
    token = tokens.sign(SECRET, purpose, *parts)
    variants = altered(token)
    assert len(variants) == 32 * 15
    assert not any(tokens.check(SECRET, v, purpose, *parts) for v in variants)
    for cut in (token[:-1], token + "0", token[1:], "", token.upper(), token * 2):
        assert not tokens.check(SECRET, cut, purpose, *parts), cut


def test_a_non_ascii_character_in_a_token_fails_the_check() -> None:
    token = tokens.sign(SECRET, "manage", KEY, "0")
    assert not tokens.check(SECRET, "é" + token[1:], "manage", KEY, "0")


def test_the_legacy_unsubscribe_token_is_the_hmac_of_the_lower_cased_address() -> None:
    assert tokens.unsubscribe(SECRET, EMAIL) == legacy(SECRET, EMAIL)
    # Written out once more, byte for byte: the 0.1 token in mailboxes.
    digest = hmac.new(b"5e" * 32, b"lan@example.org", hashlib.sha256).hexdigest()
    assert tokens.unsubscribe(SECRET, EMAIL) == digest[:32]
    assert tokens.unsubscribe(SECRET, "Lan@Example.ORG") == digest[:32]
    assert tokens.unsubscribe(OTHER_SECRET, EMAIL) == legacy(OTHER_SECRET, EMAIL) != digest[:32]


def test_the_legacy_unsubscribe_token_checks_for_its_address_in_any_case() -> None:
    token = legacy(SECRET, EMAIL)
    for email in (EMAIL, "LAN@EXAMPLE.ORG", "Lan@Example.org"):
        assert tokens.unsubscribe_ok(SECRET, email, token), email
    assert tokens.unsubscribe_ok(SECRET, EMAIL, legacy(SECRET, "LAN@example.org"))


def test_the_legacy_unsubscribe_token_checks_for_nothing_else() -> None:
    token = legacy(SECRET, EMAIL)
    assert not tokens.unsubscribe_ok(SECRET, "lan@example.com", token)
    assert not tokens.unsubscribe_ok(SECRET, "lan2@example.org", token)
    assert not tokens.unsubscribe_ok(SECRET, " lan@example.org", token)
    assert not tokens.unsubscribe_ok(OTHER_SECRET, EMAIL, token)
    assert not any(tokens.unsubscribe_ok(SECRET, EMAIL, v) for v in altered(token))
    assert not tokens.unsubscribe_ok(SECRET, EMAIL, "")
    assert not tokens.unsubscribe_ok(SECRET, EMAIL, token.upper())
    # A link of another kind, even one naming the address, does not unsubscribe.
    for purpose in ("confirm", "manage", "feed"):
        assert not tokens.unsubscribe_ok(SECRET, EMAIL, tokens.sign(SECRET, purpose, EMAIL))
    # Nor does the legacy token stand in for a link with a purpose.
    assert not tokens.check(SECRET, token, "manage", EMAIL)


def test_a_non_ascii_legacy_token_is_refused() -> None:
    assert not tokens.unsubscribe_ok(SECRET, EMAIL, "é" * 32)
