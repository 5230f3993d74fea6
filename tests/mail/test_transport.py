"""transport.py: a digest on the wire — 8bit where the server offers 8BITMIME, base64 where
not; SMTP answers and a dropped connection classified; the Maildir outbox by default."""

from __future__ import annotations

import email
from email import policy
from pathlib import Path

import pytest
from raw import sql

from digest.mail import make_sender
from mail.mailworld import Smtp, World, body, daily_subscribers, vn


@pytest.mark.parametrize("eight_bit_mime", [True, False], ids=["8bitmime", "no-8bitmime"])
def test_parts_go_8bit_where_the_server_takes_it_and_base64_where_not(
    tmp_path: Path, smtp: Smtp, eight_bit_mime: bool
) -> None:
    handler, controller = smtp
    handler.eight_bit_mime = eight_bit_mime
    world = World(tmp_path, controller.port)
    world.at(vn(2026, 11, 21, 7, 0, 5))
    world.run()
    assert len(handler.raw) == len(handler.messages) == 2
    for (options, data), message in zip(handler.raw, handler.messages, strict=True):
        encodings = {part["Content-Transfer-Encoding"] for part in message.iter_parts()}
        if eight_bit_mime:  # as they are: readable, and a quarter smaller than base64
            assert encodings == {"8bit"} and options == ["BODY=8BITMIME"]
            assert "Chăm sóc sức khỏe".encode() in data
        else:  # RFC 6152: no 8bit data to a server that did not offer it
            assert encodings == {"base64"} and options == [] and data.isascii()
        assert max(map(len, data.split(b"\r\n"))) <= 998
        text = body(message, "plain")
        greeting = f"gửi {message['To'].addresses[0].display_name}"
        assert greeting in text and "Chăm sóc sức khỏe nhân dân toàn diện" in text


@pytest.mark.both_engines
def test_5xx_for_one_recipient_while_the_others_arrive(world: World, smtp: Smtp) -> None:
    handler, _ = smtp
    handler.refuse["all@example.org"] = ("550 5.1.1 no such user", 99)
    world.at(vn(2026, 11, 21, 7, 0, 5))
    world.run()
    states = world.states()
    assert states[("all@example.org", "daily:2026-11-21")] == "dead"
    assert states[("lan@example.org", "daily:2026-11-21")] == "sent"
    world.at(vn(2026, 11, 22, 8, 0))
    world.run()
    assert [m["To"].addresses[0].addr_spec for m in handler.messages] == ["lan@example.org"]
    (row,) = [r for r in world.sender.outbox.outbox_rows() if r.state == "dead"]
    assert "550" in (row.error or "")
    assert world.sender.health()["digests"] == {"pending": 0, "failed": 0, "unknown": 0, "dead": 1}


@pytest.mark.both_engines
def test_server_going_away_mid_batch(tmp_path: Path, smtp: Smtp, store_url: str | None) -> None:
    handler, controller = smtp
    world = World(tmp_path, controller.port, daily_subscribers(4), store=store_url)
    handler.drop_after = 2
    world.at(vn(2026, 11, 21, 7, 0, 5))
    world.run()
    states = [s for (who, _), s in sorted(world.states().items()) if who != "weekly@example.org"]
    assert states.count("sent") == 2
    # Dropped while their data was in flight (one per connection at most): not sent again.
    in_flight = states.count("unknown")
    assert 1 <= in_flight <= world.config.smtp.connections
    assert states.count("failed") == 4 - in_flight  # the rest: not sent, to be retried
    handler.drop_after, handler.gone = None, False  # back up
    world.at(vn(2026, 11, 21, 7, 5))
    world.run()
    final = [s for (who, _), s in world.states().items() if who != "weekly@example.org"]
    assert final.count("sent") == 6 - in_flight and final.count("unknown") == in_flight
    delivered = [m["To"].addresses[0].addr_spec for m in handler.messages]
    assert len(delivered) == len(set(delivered)) == 6 - in_flight


@pytest.mark.both_engines
def test_maildir_by_default_delivers_once_and_resolves_interruptions(
    tmp_path: Path, store_url: str | None
) -> None:
    world = World(tmp_path, None, store=store_url)
    world.at(vn(2026, 11, 21, 7, 0, 5))
    world.run()
    new = tmp_path / "var" / "outbox" / "new"
    files = sorted(new.iterdir())
    assert len(files) == 2
    parsed = email.message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert parsed["Subject"].startswith("Bản tin hoạt động lãnh đạo Bộ Y tế — 21/11/2026")
    # A process that died after delivering but before recording it:
    dead = make_sender(world.config, world.app.store, world.clock.now).owner
    lan = "update outbox set state = 'sending', owner = :dead where subscriber = 'lan@example.org'"
    sql(world.where, lan, dead=dead)
    world.run()
    assert world.states()[("lan@example.org", "daily:2026-11-21")] == "sent"
    assert len(list(new.iterdir())) == 2
