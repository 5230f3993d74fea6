"""The readers' pages (digest/subscribe/web.py) in a real world: the real store, templates,
Sender and Maildir, driven in-process through PublicApp. Links are followed from the mails
and pages that carry them, forms submitted as a browser submits them.

The tests whose outcome is the store's (notices sent once, sign-ups at once, the rate limits,
confirming and unsubscribing, the personal feed) run on PostgreSQL too (`both_engines`);
the pages' own checks run on SQLite."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from email.message import EmailMessage
from urllib.parse import parse_qsl, urlencode, urlsplit

import feedparser
import pytest
from support import Response, call, toml

from digest import tokens
from digest.model import Choices
from digest.subscribe.rules import CONSENT
from subscribe.conftest import BASE, World, link, main_text, page_forms, target, the_form, vn

ADDRESS = "ban.doc@example.org"
SENT = "Hãy mở hộp thư của bạn"
LAPSED = "Đường dẫn không còn dùng được"
CONFIRM_SUBJECT = "Xác nhận đăng ký bản tin lãnh đạo Bộ Y tế"
ALREADY_SUBJECT = "Bạn đã đăng ký bản tin lãnh đạo Bộ Y tế"
HTML = "text/html; charset=utf-8"


# -- helpers: what a reader does --------------------------------------------------------------


def text_of(message: EmailMessage, subtype: str = "plain") -> str:
    part = message.get_body((subtype,))
    assert part is not None, f"no text/{subtype} part"
    return str(part.get_content())


def mailed_link(message: EmailMessage, path: str) -> str:
    """The one link to `path` in a mail's text part."""
    found = re.findall(re.escape(BASE + path) + r"\?\S+", text_of(message))
    assert len(found) == 1, found
    return str(found[0])


def feed_link(page: bytes) -> str:
    found = re.findall(r'href="(' + re.escape(BASE) + r'ban-tin/[^"]+)"', page.decode())
    assert len(found) == 1, found
    return str(found[0]).replace("&amp;", "&")


def confirm(world: World, message: EmailMessage) -> Response:
    """Open the mailed confirmation link and press its button."""
    page = world.get(target(mailed_link(message, "xac-nhan")))
    assert page.status == 200
    return world.submit(the_form(page.body, "Xác nhận"), "Xác nhận")


def subscribe(world: World, address: str = ADDRESS, *, officials: Sequence[str] = ()) -> str:
    """Sign up, follow the mailed link, confirm: the manage link the answer gives."""
    assert world.sign_up(address, officials=officials).status == 200
    (message,) = world.deliver()
    done = confirm(world, message)
    assert done.status == 200 and "Đã xác nhận đăng ký" in main_text(done.body)
    return link(done.body, "Quản lý đăng ký")


def unsubscribe_target(secret: str, address: str, token: str | None = None) -> str:
    token = tokens.unsubscribe(secret, address) if token is None else token
    return "/unsubscribe?" + urlencode({"email": address, "token": token})


def choices(world: World, address: str = ADDRESS) -> Choices | None:
    record = world.record(address)
    return record.choices if record is not None else None


def state(world: World, address: str = ADDRESS) -> str | None:
    record = world.record(address)
    return record.state if record is not None else None


def assert_page(r: Response, status: int, *said: str) -> None:
    assert r.status == status, (r.status, r.body[:2000])
    assert r.headers["content-type"] == HTML
    for words in said:
        assert words in main_text(r.body), (words, main_text(r.body))


# -- the whole path ---------------------------------------------------------------------------


@pytest.mark.both_engines
def test_the_whole_path_from_the_form_to_deleting_everything(world: World) -> None:
    registry = world.config.classification
    # The form, from an official's page: that official ticked, every choice offered.
    r = world.get("/dang-ky?quan-chuc=dao-hong-lan")
    assert_page(r, 200, "Đăng ký nhận bản tin qua e-mail")
    form = the_form(r.body, "Đăng ký")
    assert form.action == BASE + "dang-ky"
    officials = [o.slug for o in registry.officials]
    assert form.offered["quan-chuc"][: len(officials)] == officials
    assert form.offered["chu-de"] == [t.slug for t in registry.topics]
    assert [(k, v) for k, v in form.fields if k in ("quan-chuc", "chu-de", "lich")] == [
        ("lich", "daily"),
        ("quan-chuc", "dao-hong-lan"),
    ]

    # Signing up: a page saying to look in the mailbox, a pending record, one notice.
    r = world.submit(form, "Đăng ký", {"email": [ADDRESS], "chu-de": ["y-te-co-so"]})
    assert_page(r, 200, SENT, ADDRESS)
    record = world.record(ADDRESS)
    wanted = Choices("daily", ("dao-hong-lan",), ("y-te-co-so",))
    assert record is not None and record.state == "pending" and record.source == "web"
    assert record.requested == wanted and record.consent is None and record.since is None
    assert world.notices() == [(ADDRESS, "confirm", "pending")]

    # The mail: to the address, with the link.
    (message,) = world.deliver()
    assert message["To"] == ADDRESS and message["Subject"] == CONFIRM_SUBJECT
    assert world.notices() == [(ADDRESS, "confirm", "sent")]
    url = mailed_link(message, "xac-nhan")

    # Following it shows the choices and a button; it does not confirm (mail scanners GET).
    for _ in range(2):
        page = world.get(target(url))
        assert_page(page, 200, "Xác nhận đăng ký", ADDRESS, "Lãnh đạo: Đào Hồng Lan")
        assert "Chủ đề: Y tế cơ sở" in main_text(page.body)
    assert state(world) == "pending"

    # Pressing it does.
    world.clock.move(timedelta(minutes=5))
    done = world.submit(the_form(page.body, "Xác nhận"), "Xác nhận")
    assert_page(done, 200, "Đã xác nhận đăng ký")
    # 20/11/2026 10:05 in Vietnam: the next 07:00 is Saturday's.
    assert "Bản tin đầu tiên sẽ đến vào Thứ Bảy, 21/11/2026 07:00" in main_text(done.body)
    record = world.record(ADDRESS)
    assert record is not None and record.state == "active" and record.choices == wanted
    assert record.requested is None and record.since == world.clock.now()
    assert record.consent == {
        "at": world.clock.now().isoformat(timespec="seconds"),
        "via": "web",
        "text": CONSENT,
        "form": "xac-nhan",
    }
    manage = link(done.body, "Quản lý đăng ký")

    # Signing up again a day later: "already subscribed", with the same manage link.
    world.clock.move(timedelta(hours=25))
    assert world.sign_up(ADDRESS).status == 200
    (already,) = world.deliver()
    assert already["To"] == ADDRESS and already["Subject"] == ALREADY_SUBJECT
    assert mailed_link(already, "quan-ly") == manage
    assert choices(world) == wanted

    # The manage page shows the choices; saving new ones stores them.
    page = world.get(target(manage))
    assert_page(page, 200, "Quản lý đăng ký", f"Địa chỉ {ADDRESS} đang nhận bản tin")
    save = the_form(page.body, "luu")
    assert {("quan-chuc", "dao-hong-lan"), ("chu-de", "y-te-co-so")} <= set(save.fields)
    change = {"lich": ["weekly"], "quan-chuc": [], "chu-de": ["y-te-co-so", "dan-so"]}
    page = world.submit(save, "luu", change)
    assert_page(page, 200, "Đã lưu lựa chọn của bạn.")
    saved = Choices("weekly", (), ("y-te-co-so", "dan-so"))
    assert choices(world) == saved
    old_feed = feed_link(page.body)
    assert world.fetch(target(old_feed))[0] == 200

    # New links: the old manage and feed links stop working, the new ones work.
    before = page
    page = world.submit(the_form(page.body, "doi-duong-dan"), "doi-duong-dan")
    assert_page(page, 200, "Đã đổi đường dẫn")
    assert_page(world.get(target(manage)), 400, LAPSED)
    assert world.fetch(target(old_feed))[0] == 404
    new_feed = feed_link(page.body)
    assert new_feed != old_feed and world.fetch(target(new_feed))[0] == 200
    carry = dict((k, v) for k, v in the_form(page.body, "huy").fields if k in ("s", "t"))
    new_manage = "/quan-ly?" + urlencode(carry)
    assert target(manage) != new_manage
    assert_page(world.get(new_manage), 200, f"Địa chỉ {ADDRESS} đang nhận bản tin")
    assert_page(world.submit(the_form(before.body, "huy"), "huy"), 403, LAPSED)
    assert state(world) == "active"

    # Unsubscribing, then back in.
    world.clock.move(timedelta(minutes=1))
    page = world.submit(the_form(page.body, "huy"), "huy")
    assert_page(page, 200, "Đã hủy đăng ký", f"Địa chỉ {ADDRESS} hiện không nhận bản tin")
    record = world.record(ADDRESS)
    assert record is not None and record.state == "unsubscribed"
    assert record.unsubscribed == world.clock.now()
    assert world.fetch(target(new_feed))[0] == 404
    page = world.submit(the_form(page.body, "dang-ky-lai"), "dang-ky-lai")
    assert_page(page, 200, "Đã đăng ký lại", f"Địa chỉ {ADDRESS} đang nhận bản tin")
    record = world.record(ADDRESS)
    assert record is not None and record.state == "active" and record.choices == saved
    assert record.consent is not None and record.consent["via"] == "manage"

    # A weekly digest goes out (Monday 23/11 07:00): the outbox has a row for the address.
    world.clock.moment = vn(2026, 11, 23, 8, 0)
    world.run_digests()
    assert world.sql("select count(*) from outbox where subscriber = :a", a=ADDRESS) == [(1,)]

    # Deleting: the record, its digests and notices gone; the link then means nothing.
    assert world.sql("select count(*) from notices where email = :a", a=ADDRESS) == [(2,)]
    page = world.submit(the_form(page.body, "xoa"), "xoa")
    assert_page(page, 200, "Đã xóa dữ liệu của bạn", ADDRESS)
    assert world.record(ADDRESS) is None
    assert world.sql("select count(*) from outbox where subscriber = :a", a=ADDRESS) == [(0,)]
    assert world.sql("select count(*) from notices where email = :a", a=ADDRESS) == [(0,)]
    assert_page(world.get(new_manage), 400, LAPSED)


# -- no enumeration ----------------------------------------------------------------------------


def test_the_answer_to_a_sign_up_is_the_same_in_every_state(world: World) -> None:
    answers: dict[str, Response] = {}
    answers["unknown"] = world.sign_up(ADDRESS)
    assert state(world) == "pending"
    answers["pending"] = world.sign_up(ADDRESS, topics=["dan-so"])
    (message,) = world.deliver()
    assert confirm(world, message).status == 200
    answers["active"] = world.sign_up(ADDRESS)
    world.clock.move(timedelta(hours=25))
    answers["active, told again"] = world.sign_up(ADDRESS)
    unsubscribed = world.post(unsubscribe_target(world.secret, ADDRESS), origin=None)
    assert unsubscribed.status == 200 and state(world) == "unsubscribed"
    answers["unsubscribed"] = world.sign_up(ADDRESS)
    world.clock.move(timedelta(hours=25))
    answers["unsubscribed, asked again"] = world.sign_up(ADDRESS)
    # The states were what they say: the address got what each state gets.
    assert [kind for _, kind, _ in world.notices()] == ["confirm", "already", "confirm"]
    assert len({(r.status, r.body) for r in answers.values()}) == 1
    assert len({tuple(sorted(r.headers.items())) for r in answers.values()}) == 1
    assert_page(answers["unknown"], 200, SENT, ADDRESS)


# -- floods -------------------------------------------------------------------------------------


def one_address_from_a_thousand_clients(victim: str) -> list[tuple[str, str, dict[str, str]]]:
    """Sign-ups of `victim` through the trusted proxy, each from a client of its own."""
    return [
        (victim, "127.0.0.1", {"x-forwarded-for": f"198.18.{i // 250}.{i % 250 + 1}"})
        for i in range(1000)
    ]


def test_a_thousand_clients_signing_up_one_address_send_it_one_mail(
    make_world: Callable[..., World],
) -> None:
    world = make_world(toml("server", trusted_proxies=["127.0.0.1"]))
    victim = "nan.nhan@example.org"
    answers = world.sign_ups(one_address_from_a_thousand_clients(victim))
    assert {(r.status, r.body) for r in answers} == {(200, answers[0].body)}
    assert_page(answers[0], 200, SENT, victim)
    hits = world.hits()
    assert len(hits) == 1000 and set(hits.values()) == {1}
    assert world.notices() == [(victim, "confirm", "pending")]
    mails = world.deliver()
    assert [m["To"] for m in mails] == [victim]
    assert world.deliver() == []


@pytest.mark.both_engines
def test_a_thousand_clients_at_once_are_each_answered_and_mail_once(
    make_world: Callable[..., World],
) -> None:
    """The same flood all at once, as the daemon answers it: each request's store calls in a
    thread of their own beside the event loop."""
    world = make_world(toml("server", trusted_proxies=["127.0.0.1"]))
    victim = "nan.nhan@example.org"
    answers = world.sign_ups(one_address_from_a_thousand_clients(victim), at_once=1000)
    assert Counter(r.status for r in answers) == {200: 1000}
    assert len(world.hits()) == 1000
    assert world.notices() == [(victim, "confirm", "pending")]
    assert [m["To"] for m in world.deliver()] == [victim]


def test_a_thousand_sign_ups_from_one_client_are_cut_at_the_hourly_limit(world: World) -> None:
    """One after the other, so that which ones pass is known: the first ten."""
    limit = world.config.subscriptions.per_client_per_hour
    assert limit == 10
    addresses = [f"nguoi{i:04d}@example.org" for i in range(1000)]
    answers = world.sign_ups([(a, "203.0.113.9", {}) for a in addresses])
    assert [r.status for r in answers] == [200] * limit + [429] * (1000 - limit)
    assert_page(answers[-1], 429, "Quá nhiều yêu cầu")
    assert world.notices() == [(a, "confirm", "pending") for a in addresses[:limit]]
    assert world.hits() == {"203.0.113.9": limit}
    # Another client is still served, and this one again the next hour.
    assert world.sign_up("khac@example.org", client="203.0.113.10").status == 200
    assert world.sign_up("nguoi9999@example.org", client="203.0.113.9").status == 429
    world.clock.move(timedelta(hours=1))
    assert world.sign_up("nguoi9999@example.org", client="203.0.113.9").status == 200
    assert len(world.notices()) == limit + 2
    assert len(world.deliver()) == limit + 2


@pytest.mark.both_engines
def test_past_the_hourly_cap_on_mails_a_sign_up_gets_the_same_page_and_no_mail(
    make_world: Callable[..., World],
) -> None:
    world = make_world(toml("subscriptions", confirmations_per_hour=3))
    addresses = [f"nguoi{i}@example.org" for i in range(1, 5)]
    answers = [world.sign_up(a, client=f"203.0.113.{i}") for i, a in enumerate(addresses)]
    for address, r in zip(addresses, answers, strict=True):
        assert r.status == 200
        assert r.body == answers[0].body.replace(addresses[0].encode(), address.encode())
    assert world.notices() == [(a, "confirm", "pending") for a in addresses[:3]]
    assert world.record(addresses[3]) is None
    # An hour later, mails go again.
    world.clock.move(timedelta(minutes=61))
    assert world.sign_up(addresses[3], client="203.0.113.4").status == 200
    assert [n[0] for n in world.notices()] == addresses
    assert [m["To"] for m in world.deliver()] == addresses


# -- the client ---------------------------------------------------------------------------------


def test_behind_a_trusted_proxy_the_client_is_the_right_most_untrusted_hop(
    make_world: Callable[..., World],
) -> None:
    world = make_world(toml("server", trusted_proxies=["127.0.0.1", "10.0.0.0/8"]))
    cases = [
        # (socket peer, X-Forwarded-For, the client counted)
        ("127.0.0.1", "203.0.113.7", "203.0.113.7"),
        ("127.0.0.1", "6.6.6.6, 203.0.113.7", "203.0.113.7"),  # the left is the client's
        ("127.0.0.1", "203.0.113.1, 203.0.113.7, 10.1.2.3", "203.0.113.7"),  # two proxies
        ("10.9.9.9", "not-an-address, 203.0.113.8", "203.0.113.8"),
        ("127.0.0.1", "203.0.113.7, not-an-address", "not-an-address"),
        ("198.51.100.4", "203.0.113.7", "198.51.100.4"),  # not from a proxy: the peer
        ("127.0.0.1", "", "127.0.0.1"),  # no header
        ("127.0.0.1", "10.0.0.1, 127.0.0.1", "127.0.0.1"),  # only proxies
    ]
    for i, (peer, forwarded, client) in enumerate(cases):
        before = world.hits()
        headers = {"x-forwarded-for": forwarded} if forwarded else {}
        r = world.sign_up(f"a{i}@example.org", client=peer, headers=headers)
        assert r.status == 200, (peer, forwarded)
        after = world.hits()
        assert after == {**before, client: before.get(client, 0) + 1}, (peer, forwarded)


@pytest.mark.both_engines
def test_forging_the_left_most_hop_does_not_escape_the_limit(
    make_world: Callable[..., World],
) -> None:
    world = make_world(toml("server", trusted_proxies=["127.0.0.1"]))
    statuses = [
        world.sign_up(
            f"a{i}@example.org", headers={"x-forwarded-for": f"192.0.2.{i}, 203.0.113.7"}
        ).status
        for i in range(11)
    ]
    assert statuses == [200] * 10 + [429]
    assert world.hits() == {"203.0.113.7": 10}


def test_without_trusted_proxies_x_forwarded_for_is_ignored(world: World) -> None:
    for i in range(3):
        headers = {"x-forwarded-for": f"203.0.113.{i}"}
        assert world.sign_up(f"a{i}@example.org", headers=headers).status == 200
    assert world.hits() == {"127.0.0.1": 3}


# -- cross-site requests ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "https://evil.example"},
        {"origin": "https://example.org.evil.example"},
        {"origin": "null"},  # a sandboxed frame, a data: URL
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},  # a neighbour on another subdomain
        {"sec-fetch-site": "cross-site", "origin": "https://example.org"},
    ],
)
def test_a_post_from_another_site_is_403_and_does_nothing(
    world: World, headers: dict[str, str]
) -> None:
    r = world.sign_up(ADDRESS, headers={"host": "example.org", **headers}, origin=None)
    assert_page(r, 403, "Không gửi được biểu mẫu")
    assert world.record(ADDRESS) is None
    assert world.notices() == [] and world.hits() == {}


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "https://example.org"},  # the base_url's host
        {"origin": "http://digest.local:8080", "host": "digest.local:8080"},  # the Host
        {"origin": "https://example.org", "sec-fetch-site": "same-origin"},
        {"sec-fetch-site": "none"},  # typed in by the user
        {},  # no browser: no one else's page made it
    ],
)
def test_a_post_from_this_site_or_no_browser_is_answered(
    world: World, headers: dict[str, str]
) -> None:
    r = world.sign_up(ADDRESS, headers=headers, origin=None)
    assert_page(r, 200, SENT)
    assert state(world) == "pending" and len(world.notices()) == 1


def test_cross_site_posts_neither_confirm_nor_manage(world: World) -> None:
    assert world.sign_up(ADDRESS).status == 200
    (message,) = world.deliver()
    page = world.get(target(mailed_link(message, "xac-nhan")))
    form = the_form(page.body, "Xác nhận")
    assert world.submit(form, "Xác nhận", origin="https://evil.example").status == 403
    assert state(world) == "pending"
    done = world.submit(form, "Xác nhận")
    assert done.status == 200 and state(world) == "active"
    manage = world.get(target(link(done.body, "Quản lý đăng ký")))
    before = world.record(ADDRESS)
    for button in ("huy", "xoa", "doi-duong-dan"):
        r = world.submit(the_form(manage.body, button), button, origin="https://evil.example")
        assert_page(r, 403, "Không gửi được biểu mẫu")
    leave = unsubscribe_target(world.secret, ADDRESS)
    assert world.post(leave, origin="https://evil.example").status == 403
    assert world.record(ADDRESS) == before


def test_a_manage_post_without_its_token_is_403_and_changes_nothing(world: World) -> None:
    manage = subscribe(world)
    other = subscribe(world, "nguoi.khac@example.org")
    page = world.get(target(manage))
    form = the_form(page.body, "huy")
    feed_token = dict(parse_qsl(urlsplit(feed_link(page.body)).query))["t"]
    others = dict(parse_qsl(urlsplit(other).query))
    before = world.record(ADDRESS)
    changes: list[dict[str, list[str]]] = [
        {"t": []},
        {"t": ["0" * 32]},
        {"t": [feed_token]},  # a feed link's token cannot manage
        {"t": [others["t"]]},  # nor another reader's
        {"s": [others["s"]], "t": [dict(form.fields)["t"]]},
        {"s": []},
    ]
    for change in changes:
        for button in ("huy", "xoa", "doi-duong-dan"):
            r = world.submit(the_form(page.body, button), button, change)
            assert_page(r, 403, LAPSED)
    assert world.record(ADDRESS) == before
    assert state(world, "nguoi.khac@example.org") == "active"
    assert world.get(target(manage)).status == 200


# -- signed links -------------------------------------------------------------------------------


def pending_link(world: World, address: str = ADDRESS) -> dict[str, str]:
    assert world.sign_up(address).status == 200
    (message,) = world.deliver()
    return dict(parse_qsl(urlsplit(mailed_link(message, "xac-nhan")).query))


def assert_lapsed_both_ways(world: World, fields: Mapping[str, str]) -> None:
    assert_page(world.get("/xac-nhan?" + urlencode(fields)), 400, LAPSED)
    assert_page(world.post("/xac-nhan", dict(fields)), 400, LAPSED)


def test_a_forged_confirmation_link_is_refused(world: World) -> None:
    fields = pending_link(world)
    other = pending_link(world, "nguoi.khac@example.org")
    for forged in (
        {**fields, "t": "0" * 32},
        {**fields, "t": ""},
        {**fields, "h": str(int(fields["h"]) + 86400)},  # a longer life, same token
        {**fields, "s": other["s"]},  # another reader's request
        {"s": fields["s"], "h": fields["h"]},
        {},
    ):
        assert_lapsed_both_ways(world, forged)
    assert state(world) == "pending" and state(world, "nguoi.khac@example.org") == "pending"
    assert world.post("/xac-nhan", fields).status == 200
    assert state(world) == "active"


def test_an_expired_confirmation_link_is_refused(world: World) -> None:
    fields = pending_link(world)
    assert world.config.subscriptions.confirm_hours == 48
    world.clock.move(timedelta(hours=47, minutes=59))
    assert world.get("/xac-nhan?" + urlencode(fields)).status == 200
    world.clock.move(timedelta(minutes=2))
    assert_lapsed_both_ways(world, fields)
    assert state(world) == "pending"


def test_a_confirmation_link_of_a_deleted_sign_up_is_refused(world: World) -> None:
    fields = pending_link(world)
    assert world.app.store.subscribers.delete([ADDRESS]) == 1
    assert_lapsed_both_ways(world, fields)
    assert world.record(ADDRESS) is None


@pytest.mark.both_engines
def test_a_replayed_confirmation_changes_nothing(world: World) -> None:
    fields = pending_link(world)
    assert world.post("/xac-nhan", fields).status == 200
    before = world.record(ADDRESS)
    world.clock.move(timedelta(hours=1))
    again = world.post("/xac-nhan", fields)
    assert_page(again, 200, "Đăng ký đã được xác nhận")
    assert world.record(ADDRESS) == before


@pytest.mark.both_engines
def test_after_unsubscribing_the_old_confirmation_link_does_not_reactivate(
    world: World,
) -> None:
    fields = pending_link(world)
    assert world.post("/xac-nhan", fields).status == 200
    assert world.post(unsubscribe_target(world.secret, ADDRESS), origin=None).status == 200
    world.clock.move(timedelta(minutes=5))
    assert_page(world.post("/xac-nhan", fields), 400, LAPSED)
    assert state(world) == "unsubscribed"
    world.get("/xac-nhan?" + urlencode(fields))  # a mail scanner, following it again
    assert state(world) == "unsubscribed"
    assert world.notices() == [(ADDRESS, "confirm", "sent")]


def test_after_unsubscribing_the_old_confirmation_link_does_not_say_subscribed(
    world: World,
) -> None:
    fields = pending_link(world)
    assert world.post("/xac-nhan", fields).status == 200
    assert world.post(unsubscribe_target(world.secret, ADDRESS), origin=None).status == 200
    page = main_text(world.get("/xac-nhan?" + urlencode(fields)).body)
    assert state(world) == "unsubscribed"
    assert "Đăng ký đã được xác nhận" not in page and "sẽ nhận bản tin" not in page


# -- bad input ----------------------------------------------------------------------------------


def test_a_body_over_16_kb_is_413_and_does_nothing(world: World) -> None:
    head = urlencode({"email": ADDRESS, "lich": "daily"}).encode() + b"&x="
    whole = head + b"y" * (16 * 1024 - len(head))
    assert len(whole) == 16 * 1024
    r = world.post("/dang-ky", body=whole + b"y")
    assert r.status == 413
    assert world.record(ADDRESS) is None and world.hits() == {} and world.notices() == []
    # 16 KB exactly is still a form.
    assert_page(world.post("/dang-ky", body=whole), 200, SENT)
    assert state(world) == "pending"


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("ban doc@example.org", "có dấu cách hoặc ký tự lạ"),
        ("ban@example.org\r\nBcc: victim@example.org", "có dấu cách hoặc ký tự lạ"),
        ("ban@example.org\nbcc:x@example.org", "có dấu cách hoặc ký tự lạ"),
        ("ban@doc@example.org", "cần đúng một dấu @"),
        ("x" * 288 + "@example.org", "dài quá 254 ký tự"),  # 300 characters
        ('"><script>alert(1)</script>@example.org', "phần trước dấu @ không hợp lệ"),
        ("ban@example", "tên miền sau dấu @ không hợp lệ"),
        ("", "cần đúng một dấu @"),
    ],
)
def test_an_invalid_address_is_400_with_the_form_again(
    world: World, address: str, why: str
) -> None:
    r = world.sign_up(address, officials=["vu-manh-ha"], topics=["dan-so"])
    assert_page(r, 400, f"Địa chỉ e-mail chưa đúng: {why}.")
    form = the_form(r.body, "Đăng ký")
    shown = dict(form.fields)
    assert shown["email"] == address.strip().lower()
    assert ("quan-chuc", "vu-manh-ha") in form.fields and ("chu-de", "dan-so") in form.fields
    assert b"<script>" not in r.body.split(b"<main>")[1]
    assert world.sql("select count(*) from subscribers") == [(0,)]
    assert world.notices() == []


def test_html_in_an_invalid_address_is_escaped(world: World) -> None:
    r = world.sign_up('"><script>alert(1)</script>@example.org')
    assert r.status == 400
    assert b'value="&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;@example.org"' in r.body


@pytest.mark.parametrize(
    "more",
    [
        [("quan-chuc", "khong-co-ai")],
        [("chu-de", "khong-co-gi")],
        [("quan-chuc", "dao-hong-lan"), ("quan-chuc", "../../etc")],
        [("lich", "hang-thang")],
    ],
)
def test_unknown_choices_are_400(world: World, more: list[tuple[str, str]]) -> None:
    fields = [("email", ADDRESS), *more]
    if not any(k == "lich" for k, _ in more):
        fields.append(("lich", "daily"))
    r = world.post("/dang-ky", fields)
    assert_page(r, 400, "Lựa chọn không hợp lệ; hãy chọn lại.")
    assert dict(the_form(r.body, "Đăng ký").fields)["email"] == ADDRESS
    assert world.record(ADDRESS) is None and world.notices() == []


def test_an_unknown_slug_in_the_link_to_the_form_is_ignored(world: World) -> None:
    r = world.get("/dang-ky?quan-chuc=khong-co-ai&chu-de=dan-so")
    assert r.status == 200
    ticked = [f for f in the_form(r.body, "Đăng ký").fields if f[0] in ("quan-chuc", "chu-de")]
    assert ticked == [("chu-de", "dan-so")]


def test_a_filled_honeypot_gets_the_same_page_and_nothing_happens(world: World) -> None:
    bot = world.sign_up(ADDRESS, honeypot="https://spam.example")
    assert_page(bot, 200, SENT)
    assert world.record(ADDRESS) is None and world.notices() == [] and world.hits() == {}
    person = world.sign_up(ADDRESS)
    assert (person.status, person.body) == (bot.status, bot.body)
    assert state(world) == "pending"


def test_an_address_with_html_characters_is_escaped_on_every_page(world: World) -> None:
    address = "o'hara&co@example.org"  # a valid address: ' and & are allowed before the @
    raw, escaped = address.encode(), b"o&#39;hara&amp;co@example.org"
    pages = [world.sign_up(address)]
    (message,) = world.deliver()
    assert message["To"] == address
    # (the mail's HTML is re-serialised when its CSS is inlined: ' needs no escape in text)
    assert "o'hara&amp;co@example.org" in text_of(message, "html") and address in text_of(message)
    assert "&co@" not in text_of(message, "html")
    page = world.get(target(mailed_link(message, "xac-nhan")))
    pages += [page]
    done = world.submit(the_form(page.body, "Xác nhận"), "Xác nhận")
    manage = world.get(target(link(done.body, "Quản lý đăng ký")))
    left = world.submit(the_form(manage.body, "huy"), "huy")
    pages += [done, manage, left, world.get(unsubscribe_target(world.secret, address))]
    pages += [world.post(unsubscribe_target(world.secret, address), origin=None)]
    pages += [world.submit(the_form(left.body, "xoa"), "xoa")]
    assert [p.status for p in pages] == [200] * 8
    for p in pages:
        assert raw not in p.body and escaped in p.body, main_text(p.body)
    assert world.record(address) is None


def test_a_form_with_too_many_fields_is_400(world: World) -> None:
    fields = [("email", ADDRESS)] + [("chu-de", "dan-so")] * 250
    assert len(urlencode(fields)) < 16 * 1024
    r = world.post("/dang-ky", fields)
    assert r.status == 400
    assert world.record(ADDRESS) is None


# -- one-click unsubscribe ---------------------------------------------------------------------


def test_unsubscribe_get_only_shows_a_form(world: World) -> None:
    subscribe(world)
    link_target = unsubscribe_target(world.secret, ADDRESS)
    r = world.get(link_target)
    assert_page(r, 200, "Hủy đăng ký bản tin", ADDRESS)
    search, form = page_forms(r.body)  # the header's search box, then the page's own form
    assert search.action == BASE + "search" and search.method == "get"
    assert form.method == "post" and form.action == BASE + link_target.removeprefix("/")
    assert state(world) == "active"
    unknown = world.get(unsubscribe_target(world.secret, "chua.gap@example.org"))
    assert unknown.status == 200 and world.record("chua.gap@example.org") is None


def test_unsubscribe_page_escapes_what_the_link_carries(world: World) -> None:
    r = world.get(unsubscribe_target(world.secret, '<script>alert(1)</script>"@example.org'))
    assert r.status == 200
    assert b"<script>alert" not in r.body
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;&#34;@example.org" in r.body
    assert world.sql("select count(*) from subscribers") == [(0,)]


@pytest.mark.both_engines
def test_unsubscribe_post_with_the_right_token_unsubscribes_once(world: World) -> None:
    subscribe(world)
    page = world.get(unsubscribe_target(world.secret, ADDRESS))
    world.clock.move(timedelta(minutes=3))
    r = world.submit(the_form(page.body, "Hủy đăng ký"), "Hủy đăng ký", origin=None)
    assert_page(r, 200, "Đã hủy đăng ký", f"Địa chỉ {ADDRESS} sẽ không nhận bản tin nữa.")
    record = world.record(ADDRESS)
    assert record is not None and record.state == "unsubscribed"
    assert record.unsubscribed == world.clock.now()
    # Again (a mail client's retry): still out, still since the first time.
    world.clock.move(timedelta(minutes=3))
    body = b"List-Unsubscribe=One-Click"
    assert world.post(unsubscribe_target(world.secret, ADDRESS), body=body).status == 200
    assert world.record(ADDRESS) == record


@pytest.mark.both_engines
def test_unsubscribe_of_an_address_never_stored_keeps_it_out(world: World) -> None:
    address = "chua.gap@example.org"
    r = world.post(unsubscribe_target(world.secret, address.upper()), origin=None)
    assert_page(r, 200, "Đã hủy đăng ký")
    record = world.record(address)
    assert record is not None and record.state == "unsubscribed" and record.source == "web"
    # A sign-up afterwards asks the address first, as for anyone.
    assert world.sign_up(address).status == 200
    assert state(world, address) == "unsubscribed"
    assert world.notices() == [(address, "confirm", "pending")]


@pytest.mark.parametrize(
    ("address", "token"),
    [
        (ADDRESS, "0" * 32),
        (ADDRESS, None),  # another address's token
        (ADDRESS, ""),
        ("", None),
        (ADDRESS, "manage"),  # a token for another purpose
    ],
)
def test_unsubscribe_post_with_a_bad_link_is_400_and_changes_nothing(
    world: World, address: str, token: str | None
) -> None:
    subscribe(world)
    before = world.record(ADDRESS)
    assert before is not None
    if token == "manage":
        token = tokens.sign(world.secret, "manage", before.key, str(before.version))
    elif token is None:
        token = tokens.unsubscribe(world.secret, "nguoi.khac@example.org")
    target_ = "/unsubscribe?" + urlencode({"email": address, "token": token})
    r = world.post(target_, body=b"List-Unsubscribe=One-Click", origin=None)
    assert_page(r, 400, "Đường dẫn không hợp lệ")
    assert "Đã hủy đăng ký" not in r.body.decode()
    assert world.record(ADDRESS) == before
    assert world.sql("select count(*) from subscribers") == [(1,)]
    for bare in ("/unsubscribe", f"/unsubscribe?email={ADDRESS}"):
        assert world.post(bare, origin=None).status == 400
    assert world.record(ADDRESS) == before


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_unsubscribe_refuses_other_methods(world: World, method: str) -> None:
    subscribe(world)
    r = call(world.public, unsubscribe_target(world.secret, ADDRESS), method)
    assert r.status == 405 and r.headers["allow"] == "GET, HEAD, POST"
    assert state(world) == "active"


# -- closed subscriptions -----------------------------------------------------------------------


def test_with_subscriptions_closed_the_form_is_404_and_the_site_has_none(world: World) -> None:
    manage = subscribe(world)
    feed = feed_link(world.get(target(manage)).body)
    public = world.config.paths.public
    assert 'action="dang-ky"' in (public / "index.html").read_text(encoding="utf-8")

    hits = world.hits()
    world.reopen(toml("subscriptions", open=False))
    world.app.publish()
    index = (public / "index.html").read_text(encoding="utf-8")
    assert "<h1" in index and 'action="dang-ky"' not in index
    offering = [
        p.relative_to(public).as_posix()
        for p in public.rglob("*.html")
        if "dang-ky" in p.read_text(encoding="utf-8")
    ]
    assert offering == []
    for path in ("/dang-ky", "/dang-ky?quan-chuc=dao-hong-lan"):
        assert_page(world.get(path), 404, "Không tìm thấy trang")
    form = urlencode({"email": "moi@example.org", "lich": "daily"}).encode()
    refused = call(world.public, "/dang-ky", "POST", {"origin": "https://example.org"}, [form])
    assert_page(refused, 404, "Không tìm thấy trang")  # answered before the body is read
    assert world.record("moi@example.org") is None and world.hits() == hits
    assert len(world.notices()) == 1

    # Readers already in keep their page, their feed and the links of the digests sent.
    page = world.get(target(manage))
    assert_page(page, 200, f"Địa chỉ {ADDRESS} đang nhận bản tin")
    assert world.fetch(target(feed))[0] == 200
    assert world.get(unsubscribe_target(world.secret, ADDRESS)).status == 200
    assert world.post(unsubscribe_target(world.secret, ADDRESS), origin=None).status == 200
    assert state(world) == "unsubscribed"


# -- the personal feed --------------------------------------------------------------------------


def feed_headers(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [v for k, v in headers if k == name]


@pytest.mark.both_engines
def test_the_personal_feed_has_one_item_per_digest_with_its_titles(world: World) -> None:
    everything = feed_link(world.get(target(subscribe(world))).body)
    ha = "chi.ha@example.org"
    only_ha = feed_link(world.get(target(subscribe(world, ha, officials=["vu-manh-ha"]))).body)
    lan_title = "Bộ trưởng Đào Hồng Lan thăm Bệnh viện Bạch Mai"
    ha_title = "Thứ trưởng Vũ Mạnh Hà làm việc tại Đồng Nai"
    world.clock.moment = vn(2026, 11, 21, 9, 0)
    world.capture("lan.txt", lan_title, vn(2026, 11, 21, 8, 0))
    world.clock.moment = vn(2026, 11, 22, 10, 0)
    world.capture("ha.txt", ha_title, vn(2026, 11, 22, 9, 0))
    world.clock.moment = vn(2026, 11, 24, 8, 0)  # past four daily send times

    status, headers, body = world.fetch(target(everything))
    assert status == 200
    assert feed_headers(headers, "content-type") == ["application/atom+xml; charset=utf-8"]
    assert any(v.startswith("private") for v in feed_headers(headers, "cache-control"))
    doc = feedparser.parse(body)
    assert not doc.bozo, doc.bozo_exception
    assert [link_["href"] for link_ in doc.feed.links if link_["rel"] == "self"] == [everything]
    items = [(e.title, e.content[0].value) for e in doc.entries]
    # Newest first; the periods of 21/11 and 24/11 had nothing: no item.
    assert [t for t, _ in items] == [
        "Bản tin hoạt động lãnh đạo Bộ Y tế — 23/11/2026 (1 tin)",
        "Bản tin hoạt động lãnh đạo Bộ Y tế — 22/11/2026 (1 tin)",
    ]
    assert ha_title in items[0][1] and lan_title not in items[0][1]
    assert lan_title in items[1][1] and ha_title not in items[1][1]

    status, _, body = world.fetch(target(only_ha))
    doc = feedparser.parse(body)
    assert status == 200 and not doc.bozo
    assert [e.title for e in doc.entries] == [
        "Bản tin hoạt động lãnh đạo Bộ Y tế — 23/11/2026 (1 tin)"
    ]
    assert ha_title in doc.entries[0].content[0].value


def test_a_feed_link_that_is_not_a_readers_is_404(world: World) -> None:
    manage = subscribe(world)
    feed = feed_link(world.get(target(manage)).body)
    assert world.fetch(target(feed))[0] == 200
    path, _, _ = target(feed).partition("?")
    key = path.removeprefix("/ban-tin/").removesuffix(".atom")
    record = world.record(ADDRESS)
    assert record is not None and record.key == key
    manage_token = dict(parse_qsl(urlsplit(manage).query))["t"]
    for wrong in (
        f"{path}?t={'0' * 32}",
        path,
        f"{path}?t={manage_token}",  # a manage link's token is not a feed's
        f"/ban-tin/{'A' * len(key)}.atom?" + urlsplit(feed).query,
        f"/ban-tin/{key}.rss?" + urlsplit(feed).query,
        f"/ban-tin/{key}?" + urlsplit(feed).query,
    ):
        assert_page(world.get(wrong), 404, "Không tìm thấy trang")
    assert world.post(unsubscribe_target(world.secret, ADDRESS), origin=None).status == 200
    assert world.get(target(feed)).status == 404
    r = call(world.public, target(feed), "POST", {"origin": "https://example.org"}, [b"t=x"])
    assert r.status == 405 and r.headers["allow"] == "GET, HEAD"


def test_the_personal_feed_sends_one_cache_control(world: World) -> None:
    feed = feed_link(world.get(target(subscribe(world))).body)
    r = world.get(target(feed))  # `call` refuses a header sent twice
    assert r.headers["cache-control"] == "private, max-age=300"


# -- the headers of every page ------------------------------------------------------------------


def test_every_page_is_private_and_never_cached(make_world: Callable[..., World]) -> None:
    world = make_world(toml("subscriptions", per_client_per_hour=2))
    manage = subscribe(world)
    fields = pending_link(world, "nguoi.khac@example.org")
    page = world.get(target(manage))
    assert world.sign_up("mot@example.org", client="203.0.113.1").status == 200  # 1 of 2
    answers = {
        "form": world.get("/dang-ky?chu-de=dan-so"),
        "signed up": world.sign_up("ba@example.org", client="203.0.113.1"),
        "bad address": world.sign_up("ba@", client="203.0.113.1"),
        "limited": world.sign_up("bon@example.org", client="203.0.113.1"),
        "cross-site": world.sign_up("nam@example.org", headers={"origin": "https://x.example"}),
        "confirm page": world.get("/xac-nhan?" + urlencode(fields)),
        "confirmed": world.post("/xac-nhan", fields),
        "lapsed": world.get("/xac-nhan?s=x&h=1&t=0"),
        "manage": page,
        "manage, saved": world.submit(the_form(page.body, "luu"), "luu"),
        "manage, no token": world.get("/quan-ly"),
        "unsubscribe page": world.get(unsubscribe_target(world.secret, ADDRESS)),
        "unsubscribed": world.post(unsubscribe_target(world.secret, ADDRESS)),
        "deleted": world.submit(the_form(page.body, "xoa"), "xoa"),
        "feed, not found": world.get("/ban-tin/x.atom"),
    }
    statuses = {name: r.status for name, r in answers.items()}
    assert statuses == {
        "form": 200,
        "signed up": 200,
        "bad address": 400,
        "limited": 429,
        "cross-site": 403,
        "confirm page": 200,
        "confirmed": 200,
        "lapsed": 400,
        "manage": 200,
        "manage, saved": 200,
        "manage, no token": 400,
        "unsubscribe page": 200,
        "unsubscribed": 200,
        "deleted": 200,
        "feed, not found": 404,
    }
    for name, r in answers.items():
        assert r.headers["content-type"] == HTML, name
        # same-origin, not no-referrer: with no-referrer Chromium posts the page's forms
        # with `Origin: null`, which the cross-site check refuses (web.py Forms._page).
        assert r.headers["referrer-policy"] == "same-origin", name
        assert r.headers["cache-control"] == "no-store", name
        assert r.headers["x-frame-options"] == "DENY", name


def test_head_of_a_page_has_the_headers_of_its_get(world: World) -> None:
    get = world.get("/dang-ky")
    head = call(world.public, "/dang-ky", "HEAD")
    assert head.status == 200 and head.body == b""
    assert head.headers == get.headers
