"""The operator's side over a real store: add, remove, import, export, and `digest subscribers`.

What is stored and read back (adding, removing with the mail, import twice, export and back,
the command line's) runs on PostgreSQL too (`both_engines`); the file checks on SQLite."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from raw import rows
from support import Project, base_config, copy_seeds, toml

from digest.app import Digest, make_digest
from digest.config import load
from digest.errors import ConfigError
from digest.mail import make_sender
from digest.model import Choices
from digest.store import SubscriberRecord
from digest.subscribe import rules
from digest.subscribe.admin import Admin, Report, export

NOW = datetime(2026, 1, 20, 1, 0, tzinfo=UTC)
# Slugs the seeds have entries for (`digest officials`, `digest topics`).
LAN, THUAN = "dao-hong-lan", "tran-van-thuan"
DIGITAL, ABROAD = "chuyen-doi-so", "hop-tac-quoc-te"
HEADER = "email,name,schedule,officials,topics"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The seeds built once for this module (as `seeded` then `digest build` would): the
    store then knows the officials and topics. Each test gets a copy of its own."""
    p = Project(tmp_path_factory.mktemp("built"))
    copy_seeds(p.seeds)
    p.config.write_text(base_config(), encoding="utf-8")
    p.digest("build")
    return p


@contextlib.contextmanager
def opened(project: Project) -> Iterator[Digest]:
    app = make_digest(load(project.config))
    try:
        yield app
    finally:
        app.close()


@pytest.fixture
def make_built(
    template: Project, tmp_path: Path, store_urls: Callable[[], str | None]
) -> Callable[[str], Project]:
    """Makes projects of their own, in `tmp_path / name`, on the test's engine: a copy of
    the template's config, seeds and store (not its site); on PostgreSQL its seeds built
    into a fresh database (the template's store is a SQLite file)."""

    def make(name: str) -> Project:
        root, url = tmp_path / name, store_urls()
        if url is None:
            shutil.copytree(template.root, root, ignore=shutil.ignore_patterns("public"))
            return Project(root)
        p = Project(root, url)
        shutil.copytree(template.seeds, p.seeds)
        p.write_config()
        with opened(p) as app:
            app.build()
        return p

    return make


@pytest.fixture
def built(make_built: Callable[[str], Project]) -> Project:
    return make_built("project")


@pytest.fixture
def app(built: Project) -> Iterator[Digest]:
    with opened(built) as a:
        yield a


# The address config_subscriber() stores stands for a [[subscribers]] block in config.toml.
CONFIGURED = ("bbt@example.org",)


def admin_of(app: Digest, now: datetime = NOW) -> Admin:
    return Admin(app.store.subscribers, *app.subjects(), now, configured=CONFIGURED)


def find(app: Digest, email: str) -> SubscriberRecord | None:
    return app.store.subscribers.find(email=email)


def summary(records: list[SubscriberRecord]) -> set[tuple[str, str, Choices]]:
    return {(r.email, r.name, r.choices) for r in records}


def decided(app: Digest, email: str, decide: Callable[..., Any], now: datetime) -> None:
    """A reader's decision (rules.*) on `email`, stored as the site stores it."""
    app.store.subscribers.change(email, decide, now)


def signed_up(app: Digest, email: str, now: datetime = NOW) -> None:
    decided(
        app,
        email,
        lambda old: rules.sign_up(
            old,
            email=email,
            choices=Choices("weekly"),
            now=now,
            lapse=timedelta(hours=48),
            may_mail=True,
            outcome=rules.Outcome(),
        ),
        now,
    )


def unsubscribed(app: Digest, email: str, now: datetime) -> None:
    decided(
        app,
        email,
        lambda old: rules.unsubscribe(old, email=email, now=now, outcome=rules.Outcome()),
        now,
    )


def config_subscriber(app: Digest, email: str) -> SubscriberRecord:
    record = SubscriberRecord(
        email=email,
        key="key-of-the-operator",
        name="Ban biên tập",
        choices=Choices("daily"),
        state="active",
        source="config",
        created=NOW - timedelta(days=30),
        since=NOW - timedelta(days=30),
    )
    app.store.subscribers.save([record])
    stored = find(app, email)
    assert stored is not None
    return stored


def write_csv(path: Path, *rows: str) -> Path:
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def notices_of(project: Project, email: str) -> int:
    ((count,),) = rows(project.where, "select count(*) from notices where email = :e", e=email)
    return int(count)


# -- add ---------------------------------------------------------------------------------------


def test_the_slugs_used_here_are_the_seeds(app: Digest) -> None:
    officials, topics = app.subjects()
    assert {LAN, THUAN} <= {s.slug for s in officials}
    assert {DIGITAL, ABROAD} <= {s.slug for s in topics}


@pytest.mark.both_engines
def test_add_adds_an_active_subscriber_with_the_operators_consent(app: Digest) -> None:
    admin = admin_of(app)
    choices = admin.choices("weekly", [LAN], [DIGITAL])
    assert choices == Choices("weekly", (LAN,), (DIGITAL,))
    assert admin.add("  Lan@Example.ORG ", "Đào Lan", choices, via="cli") == "added"
    r = find(app, "lan@example.org")
    assert r is not None
    assert (r.email, r.name, r.choices) == ("lan@example.org", "Đào Lan", choices)
    assert (r.state, r.source) == ("active", "cli")
    assert r.since == r.created == NOW
    assert r.consent == {"at": "2026-01-20T01:00:00+00:00", "via": "cli", "text": rules.CONSENT}
    assert [x.email for x in app.store.subscribers.active()] == ["lan@example.org"]


def test_add_again_is_unchanged_or_updated(app: Digest) -> None:
    admin = admin_of(app)
    choices = admin.choices("weekly", [LAN], [DIGITAL])
    assert admin.add("lan@example.org", "Đào Lan", choices, via="cli") == "added"
    first = find(app, "lan@example.org")
    later = admin_of(app, NOW + timedelta(days=3))
    assert later.add("LAN@example.org", "Đào Lan", choices, via="cli") == "unchanged"
    assert find(app, "lan@example.org") == first  # not even written
    daily = later.choices("daily", [], [ABROAD])
    assert later.add("lan@example.org", "Lan", daily, via="cli") == "updated"
    r = find(app, "lan@example.org")
    assert first is not None and r is not None
    assert (r.name, r.choices) == ("Lan", Choices("daily", (), (ABROAD,)))
    assert (r.since, r.created, r.consent, r.key) == (NOW, NOW, first.consent, first.key)


@pytest.mark.both_engines
def test_add_activates_a_pending_sign_up_on_the_operators_word(app: Digest) -> None:
    signed_up(app, "hoa@example.org", NOW - timedelta(hours=1))
    pending = find(app, "hoa@example.org")
    assert pending is not None and pending.state == "pending"
    admin = admin_of(app)
    assert admin.add("hoa@example.org", "Hoa", admin.choices("daily", [], []), via="cli") == (
        "updated"
    )
    r = find(app, "hoa@example.org")
    assert r is not None
    assert (r.state, r.since, r.choices, r.name) == ("active", NOW, Choices("daily"), "Hoa")
    assert r.requested is None and r.expires is None
    assert r.consent is not None and r.consent["via"] == "cli"


@pytest.mark.parametrize(
    ("schedule", "officials", "topics", "message"),
    [
        ("daily", ["khong-co"], [], "unknown official 'khong-co'; see `digest officials`"),
        ("daily", [LAN, "khong-co"], [], "unknown official 'khong-co'"),
        ("daily", [], ["y-te"], "unknown topic 'y-te'; see `digest topics`"),
        ("daily", [DIGITAL], [], f"unknown official '{DIGITAL}'"),  # a topic is no official
        ("weekly", [], [LAN], f"unknown topic '{LAN}'"),
        ("monthly", [], [], 'schedule \'monthly\' must be "daily" or "weekly"'),
        ("", [], [], "schedule '' must be"),
    ],
)
def test_unknown_slugs_and_schedules_are_refused_with_what_is_wrong(
    app: Digest, schedule: str, officials: list[str], topics: list[str], message: str
) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("[", r"\[")) as caught:
        admin_of(app).choices(schedule, officials, topics)
    assert "\n" not in str(caught.value)


def test_repeated_slugs_count_once_in_the_order_given(app: Digest) -> None:
    chosen = admin_of(app).choices("daily", [THUAN, LAN, THUAN], [ABROAD, DIGITAL, ABROAD])
    assert chosen == Choices("daily", (THUAN, LAN), (ABROAD, DIGITAL))


@pytest.mark.parametrize(
    "address",
    ["a b@example.org", "lan@@example.org", "lan@example.org\nBcc: all@example.org", "lan"],
)
def test_add_refuses_what_is_not_an_address(app: Digest, address: str) -> None:
    with pytest.raises(ValueError, match="is not an e-mail address: it "):
        admin_of(app).add(address, "", Choices("daily"), via="cli")
    assert app.store.subscribers.all() == []


def test_a_config_subscriber_is_changed_and_removed_in_config_toml(app: Digest) -> None:
    before = config_subscriber(app, "bbt@example.org")
    admin = admin_of(app)
    with pytest.raises(ValueError, match=r"bbt@example.org is in config.toml: change its"):
        admin.add("BBT@example.org", "Other", Choices("weekly"), via="cli")
    with pytest.raises(ValueError, match=r"bbt@example.org is in config.toml: remove its"):
        admin.remove("bbt@example.org")
    assert find(app, "bbt@example.org") == before


def test_an_unsubscribed_reader_is_not_added_back(app: Digest) -> None:
    unsubscribed(app, "out@example.org", datetime(2026, 1, 10, 9, 0, tzinfo=UTC))
    before = find(app, "out@example.org")
    with pytest.raises(ValueError) as caught:
        admin_of(app).add("out@example.org", "", Choices("daily"), via="cli")
    message = str(caught.value)
    assert message.startswith("out@example.org unsubscribed on 2026-01-10")
    assert "only they can subscribe again" in message
    assert find(app, "out@example.org") == before
    assert before is not None and before.state == "unsubscribed"


# -- remove ------------------------------------------------------------------------------------


@pytest.mark.both_engines
def test_remove_deletes_the_subscriber_and_their_mail(app: Digest, built: Project) -> None:
    admin = admin_of(app)
    admin.add("lan@example.org", "", Choices("daily"), via="cli")
    admin.add("hoa@example.org", "", Choices("daily"), via="cli")
    signed_up(app, "minh@example.org")  # a confirmation mail is queued for them
    assert notices_of(built, "minh@example.org") == 1
    assert admin.remove("LAN@Example.org") is True
    assert admin.remove("minh@example.org") is True
    assert [r.email for r in app.store.subscribers.all()] == ["hoa@example.org"]
    assert notices_of(built, "minh@example.org") == 0
    assert admin.remove("lan@example.org") is False
    assert admin.remove("nobody@example.org") is False


def test_remove_deletes_an_opt_out_too(app: Digest) -> None:
    unsubscribed(app, "out@example.org", NOW)
    assert admin_of(app).remove("out@example.org") is True
    assert find(app, "out@example.org") is None


# -- import ------------------------------------------------------------------------------------


@pytest.mark.both_engines
def test_a_csv_file_imported_twice_changes_nothing_the_second_time(
    app: Digest, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "people.csv",
        HEADER,
        f'lan@example.org,"Đào Lan, Bộ trưởng",weekly,{LAN},{DIGITAL}',
        f'Hoa@Example.org,"Hoa ""Y tế""",daily,"{LAN} {THUAN}",',
        f'minh@example.org,,,,"{DIGITAL}, {ABROAD}"',
    )
    admin = admin_of(app)
    assert admin.import_file(path) == Report(added=3)
    assert summary(app.store.subscribers.all()) == {
        ("lan@example.org", "Đào Lan, Bộ trưởng", Choices("weekly", (LAN,), (DIGITAL,))),
        ("hoa@example.org", 'Hoa "Y tế"', Choices("daily", (LAN, THUAN), ())),
        ("minh@example.org", "", Choices("daily", (), (DIGITAL, ABROAD))),
    }
    r = find(app, "minh@example.org")
    assert r is not None and (r.state, r.source, r.since) == ("active", "import", NOW)
    assert r.consent is not None
    assert (r.consent["via"], r.consent["file"]) == ("import", "people.csv")
    before = app.store.subscribers.all()
    assert admin_of(app, NOW + timedelta(days=1)).import_file(path) == Report(unchanged=3)
    assert app.store.subscribers.all() == before
    # One row changed: one update.
    text = path.read_text(encoding="utf-8").replace(",daily,", ",weekly,")
    path.write_text(text, encoding="utf-8")
    assert admin.import_file(path) == Report(updated=1, unchanged=2)


@pytest.mark.both_engines
def test_a_json_file_imported_twice_changes_nothing_the_second_time(
    app: Digest, tmp_path: Path
) -> None:
    items = [
        {"email": "lan@example.org", "name": "Đào Lan", "schedule": "weekly", "officials": [LAN]},
        {"email": "hoa@example.org", "topics": [ABROAD, DIGITAL]},
        {"email": "minh@example.org", "officials": f"{THUAN} {LAN}", "topics": ""},
    ]
    path = tmp_path / "people.json"
    path.write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    admin = admin_of(app)
    assert admin.import_file(path) == Report(added=3)
    assert summary(app.store.subscribers.all()) == {
        ("lan@example.org", "Đào Lan", Choices("weekly", (LAN,), ())),
        ("hoa@example.org", "", Choices("daily", (), (ABROAD, DIGITAL))),
        ("minh@example.org", "", Choices("daily", (THUAN, LAN), ())),
    }
    assert admin.import_file(path) == Report(unchanged=3)


def test_a_csv_written_by_excel_with_a_byte_order_mark_is_read(app: Digest, tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + f"{HEADER}\r\nlan@example.org,Lan,weekly,,\r\n".encode())
    assert admin_of(app).import_file(path) == Report(added=1)
    assert summary(app.store.subscribers.all()) == {("lan@example.org", "Lan", Choices("weekly"))}


def test_each_bad_csv_row_is_one_line_and_the_good_rows_are_imported(
    app: Digest, tmp_path: Path
) -> None:
    config_subscriber(app, "bbt@example.org")
    unsubscribed(app, "out@example.org", datetime(2026, 1, 10, 9, 0, tzinfo=UTC))
    path = write_csv(
        tmp_path / "people.csv",
        HEADER,  # line 1
        "lan@example.org,Lan,daily,,",  # 2
        "not-an-address,X,daily,,",  # 3
        "",  # 4: a blank line, skipped but counted
        "a@example.org,A,daily,khong-co,",  # 5
        "b@example.org,B,monthly,,",  # 6
        f"hoa@example.org,Hoa,weekly,,{ABROAD}",  # 7
        "out@example.org,Out,daily,,",  # 8
        "bbt@example.org,BBT,weekly,,",  # 9
        f"c@example.org,C,daily,,{LAN}",  # 10
    )
    report = admin_of(app).import_file(path)
    assert (report.added, report.updated, report.unchanged) == (2, 0, 0)
    expected = [
        (3, "'not-an-address' is not an e-mail address"),
        (5, "unknown official 'khong-co'"),
        (6, "'monthly'"),
        (8, "unsubscribed on 2026-01-10"),
        (9, "is in config.toml"),
        (10, f"unknown topic '{LAN}'"),
    ]
    assert len(report.problems) == len(expected)
    for line, (row, words) in zip(report.problems, expected, strict=True):
        assert line.startswith(f"{path}:{row}: "), line
        assert words in line, line
        assert "\n" not in line
    active = {r.email for r in app.store.subscribers.active()}
    assert active == {"lan@example.org", "hoa@example.org", "bbt@example.org"}
    for email in ("a@example.org", "b@example.org", "c@example.org"):
        assert find(app, email) is None
    out = find(app, "out@example.org")
    assert out is not None and out.state == "unsubscribed"


def test_each_bad_json_item_is_one_line_and_the_good_items_are_imported(
    app: Digest, tmp_path: Path
) -> None:
    items: list[Any] = [
        {"email": "lan@example.org"},
        {"email": "a b@example.org"},
        42,
        {"email": "b@example.org", "topics": 5},
        {"email": "c@example.org", "officials": ["khong-co"]},
        {"email": "hoa@example.org", "schedule": "weekly", "officials": [THUAN]},
        {"name": "no address"},
    ]
    path = tmp_path / "people.json"
    path.write_text(json.dumps(items), encoding="utf-8")
    report = admin_of(app).import_file(path)
    assert (report.added, report.updated, report.unchanged) == (2, 0, 0)
    expected = [
        (2, "'a b@example.org' is not an e-mail address"),
        (3, "is not an e-mail address"),
        (4, "5 must be slugs"),
        (5, "unknown official 'khong-co'"),
        (7, "'' is not an e-mail address"),
    ]
    assert len(report.problems) == len(expected)
    for line, (item, words) in zip(report.problems, expected, strict=True):
        assert line.startswith(f"{path}:item {item}: "), line
        assert words in line, line
    assert summary(app.store.subscribers.all()) == {
        ("lan@example.org", "", Choices("daily")),
        ("hoa@example.org", "", Choices("weekly", (THUAN,), ())),
    }


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("people.json", '{"email": "lan@example.org"}', "must be a JSON array of objects"),
        ("people.json", '[{"email": "lan@example.org"', "not valid JSON"),
        ("people.csv", "address,name\nlan@example.org,Lan\n", "email among them"),
        ("people.csv", "", "email among them"),
    ],
)
def test_a_file_that_is_not_a_table_of_subscribers_is_refused(
    app: Digest, tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as caught:
        admin_of(app).import_file(path)
    assert str(caught.value).startswith(f"{path}:")
    assert app.store.subscribers.all() == []


def test_a_missing_file_is_refused(app: Digest, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read it"):
        admin_of(app).import_file(tmp_path / "nothing.csv")


@pytest.mark.both_engines
def test_an_address_twice_in_one_file_is_still_idempotent(app: Digest, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "people.csv",
        HEADER,
        "lan@example.org,Lan,daily,,",
        "LAN@example.org,Lan,weekly,,",
    )
    admin = admin_of(app)
    admin.import_file(path)
    again = admin.import_file(path)
    assert (again.added, again.updated) == (0, 0)


# -- export, and back ----------------------------------------------------------------------------


def fill(app: Digest, tmp_path: Path) -> set[tuple[str, str, Choices]]:
    """Subscribers of every kind an export holds; what import must bring back of them."""
    admin = admin_of(app)
    admin.add(
        "lan@example.org", "Đào Lan, Bộ trưởng", admin.choices("weekly", [LAN], []), via="cli"
    )
    admin.add(
        "hoa@example.org",
        'Hoa "Y tế"\nHà Nội',
        admin.choices("daily", [THUAN, LAN], [ABROAD]),
        via="cli",
    )
    path = write_csv(tmp_path / "in.csv", HEADER, f"minh@example.org,,daily,,{DIGITAL}")
    assert admin.import_file(path) == Report(added=1)
    config_subscriber(app, "bbt@example.org")
    return {
        ("lan@example.org", "Đào Lan, Bộ trưởng", Choices("weekly", (LAN,), ())),
        ("hoa@example.org", 'Hoa "Y tế"\nHà Nội', Choices("daily", (THUAN, LAN), (ABROAD,))),
        ("minh@example.org", "", Choices("daily", (), (DIGITAL,))),
        ("bbt@example.org", "Ban biên tập", Choices("daily")),
    }


@pytest.mark.both_engines
@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_export_then_import_into_a_fresh_project_round_trips(
    app: Digest, tmp_path: Path, make_built: Callable[[str], Project], fmt: str
) -> None:
    people = fill(app, tmp_path)
    assert summary(app.store.subscribers.all()) == people
    path = tmp_path / f"subscribers.{fmt}"
    path.write_text(export(app.store.subscribers.all(), fmt), encoding="utf-8")
    with opened(make_built("fresh")) as other:
        assert admin_of(other).import_file(path) == Report(added=len(people))
        assert summary(other.store.subscribers.all()) == people
        assert {r.state for r in other.store.subscribers.all()} == {"active"}
        assert admin_of(other).import_file(path) == Report(unchanged=len(people))


def test_the_csv_export_has_the_documented_columns(app: Digest, tmp_path: Path) -> None:
    fill(app, tmp_path)
    rows = list(csv.DictReader(io.StringIO(export(app.store.subscribers.all(), "csv"))))
    assert list(rows[0]) == [*HEADER.split(","), "state", "source", "since"]
    by_email = {r["email"]: r for r in rows}
    assert by_email["hoa@example.org"]["officials"] == f"{THUAN} {LAN}"
    assert by_email["hoa@example.org"]["topics"] == ABROAD
    assert by_email["bbt@example.org"]["source"] == "config"
    assert by_email["minh@example.org"]["source"] == "import"
    assert by_email["lan@example.org"]["since"] == "2026-01-20T01:00:00+00:00"
    assert {r["state"] for r in rows} == {"active"}


@pytest.mark.both_engines
def test_export_then_import_keeps_opt_outs_and_unconfirmed_sign_ups_out(
    app: Digest, tmp_path: Path, make_built: Callable[[str], Project]
) -> None:
    admin_of(app).add("lan@example.org", "", Choices("daily"), via="cli")
    unsubscribed(app, "out@example.org", NOW)
    signed_up(app, "stranger@example.org")
    path = tmp_path / "subscribers.csv"
    path.write_text(export(app.store.subscribers.all(), "csv"), encoding="utf-8")
    with opened(make_built("fresh")) as other:
        admin_of(other).import_file(path)
        active = {r.email for r in other.store.subscribers.active()}
    assert active == {"lan@example.org"}


# -- `digest subscribers`, end to end ------------------------------------------------------------


LAN_ARGS = ["--name", "Đào Lan", "--schedule", "weekly", "--official", LAN]
LAN_ARGS += ["--topic", DIGITAL, "--topic", ABROAD]


def lines(text: str) -> list[str]:
    return text.splitlines()


def test_cli_add_then_list(built: Project) -> None:
    added = built.digest("subscribers", "add", "Lan@Example.org", *LAN_ARGS)
    assert added.stdout == "lan@example.org: added\n"
    built.digest("subscribers", "add", "hoa@example.org")
    listing = lines(built.digest("subscribers", "list").stdout)
    assert " ".join(listing[0].split()) == "email state source schedule officials / topics"
    assert [row.split() for row in listing[1:-1]] == [
        ["hoa@example.org", "active", "cli", "daily", "all", "/", "all"],
        ["lan@example.org", "active", "cli", "weekly", LAN, "/", DIGITAL, ABROAD],
    ]
    assert listing[-1] == "subscribers: 2 active"
    rows = json.loads(built.digest("subscribers", "list", "--json").stdout)
    assert [r["email"] for r in rows] == ["hoa@example.org", "lan@example.org"]
    lan = rows[1]
    chosen = ("Đào Lan", "weekly", [LAN], [DIGITAL, ABROAD])
    assert (lan["name"], lan["schedule"], lan["officials"], lan["topics"]) == chosen
    assert (lan["state"], lan["source"], lan["unsubscribed"]) == ("active", "cli", None)
    assert lan["consent"]["via"] == "cli" and lan["consent"]["at"] == lan["since"]
    again = built.digest("subscribers", "add", "lan@example.org", *LAN_ARGS)
    assert again.stdout == "lan@example.org: unchanged\n"


def test_cli_export_writes_a_header_and_a_row_per_subscriber(built: Project) -> None:
    built.digest(
        "subscribers",
        "add",
        "lan@example.org",
        "--name",
        "Đào Lan, Bộ trưởng",
        "--official",
        LAN,
        "--official",
        THUAN,
    )
    built.digest("subscribers", "add", "hoa@example.org", "--schedule", "weekly", "--topic", ABROAD)
    out = built.digest("subscribers", "export", "--format", "csv").stdout
    assert lines(out)[0] == f"{HEADER},state,source,since"
    listed = json.loads(built.digest("subscribers", "list", "--json").stdout)
    since = {r["email"]: r["since"] for r in listed}
    for moment in since.values():  # added just now, by the system clock
        assert abs(datetime.now(UTC) - datetime.fromisoformat(moment)) < timedelta(minutes=5)
    assert list(csv.reader(io.StringIO(out)))[1:] == [
        ["hoa@example.org", "", "weekly", "", ABROAD, "active", "cli", since["hoa@example.org"]],
        [
            "lan@example.org",
            "Đào Lan, Bộ trưởng",
            "daily",
            f"{LAN} {THUAN}",
            "",
            "active",
            "cli",
            since["lan@example.org"],
        ],
    ]
    assert built.digest("subscribers", "export").stdout == out  # CSV by default
    as_json = json.loads(built.digest("subscribers", "export", "--format", "json").stdout)
    assert as_json == listed


@pytest.mark.both_engines
def test_cli_import_reports_bad_rows_and_exits_1(built: Project) -> None:
    write_csv(
        built.root / "people.csv",
        HEADER,
        "lan@example.org,Lan,weekly,,",
        "bad,X,daily,,",
        f"hoa@example.org,Hoa,daily,{THUAN},",
    )
    first = built.digest("subscribers", "import", "people.csv", check=False)
    assert first.returncode == 1
    assert (
        first.stdout
        == "imported: 2 added, 0 updated, 0 unchanged, 0 never confirmed (skipped), 1 bad\n"
    )
    problems = [line for line in lines(first.stderr) if line.startswith("people.csv:")]
    assert len(problems) == 1
    assert problems[0].startswith("people.csv:3: 'bad' is not an e-mail address")
    second = built.digest("subscribers", "import", "people.csv", check=False)
    assert second.returncode == 1
    assert (
        second.stdout
        == "imported: 0 added, 0 updated, 2 unchanged, 0 never confirmed (skipped), 1 bad\n"
    )
    write_csv(built.root / "good.csv", HEADER, "minh@example.org,Minh,daily,,")
    good = built.digest("subscribers", "import", "good.csv", check=False)
    assert (good.returncode, good.stdout) == (
        0,
        "imported: 1 added, 0 updated, 0 unchanged, 0 never confirmed (skipped), 0 bad\n",
    )
    listing = lines(built.digest("subscribers", "list").stdout)
    assert listing[-1] == "subscribers: 3 active"


def test_cli_remove(built: Project) -> None:
    built.digest("subscribers", "add", "lan@example.org")
    built.digest("subscribers", "add", "hoa@example.org")
    assert built.digest("subscribers", "remove", "LAN@example.org").stdout == (
        "lan@example.org: removed\n"
    )
    assert built.digest("subscribers", "remove", "lan@example.org").stdout == (
        "lan@example.org: not a subscriber\n"
    )
    rows = json.loads(built.digest("subscribers", "list", "--json").stdout)
    assert [r["email"] for r in rows] == ["hoa@example.org"]
    built.digest("subscribers", "remove", "hoa@example.org")
    assert lines(built.digest("subscribers", "list").stdout)[-1] == "subscribers: 0"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["a b@example.org"], "digest: 'a b@example.org' is not an e-mail address: it has spaces"),
        (["lan@@example.org"], "digest: 'lan@@example.org' is not an e-mail address"),
        (["lan@example.org", "--official", "khong-co"], "digest: unknown official 'khong-co'"),
        (["lan@example.org", "--topic", LAN], f"digest: unknown topic '{LAN}'"),
        (["lan@example.org", "--schedule", "monthly"], "invalid choice: 'monthly'"),
    ],
)
def test_cli_add_of_something_wrong_exits_2_and_adds_nobody(
    built: Project, args: list[str], message: str
) -> None:
    result = built.digest("subscribers", "add", *args, check=False)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""
    with opened(built) as app:
        assert app.store.subscribers.all() == []


@pytest.mark.both_engines
def test_cli_removes_the_opt_out_of_a_former_config_subscriber(built: Project) -> None:
    block = toml("[subscribers]", email="bbt@example.org", name="Ban biên tập")
    with built.config.open("a", encoding="utf-8") as f:
        f.write(block)
    with opened(built) as app:
        now = app.clock.now()
        make_sender(app.config, app.store, app.clock.now).roster(now)  # as a digest run does
        unsubscribed(app, "bbt@example.org", now)
        record = find(app, "bbt@example.org")
        assert record is not None and (record.source, record.state) == ("config", "unsubscribed")
    text = built.config.read_text(encoding="utf-8")
    built.config.write_text(text.replace(block, ""), encoding="utf-8")
    assert "bbt@example.org" not in built.config.read_text(encoding="utf-8")
    removed = built.digest("subscribers", "remove", "bbt@example.org", check=False)
    assert (removed.returncode, removed.stdout) == (0, "bbt@example.org: removed\n")
