"""config.toml -> settings: every mistake named by its key, and defaults that work as they are."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import Project, base_config, toml

from digest.config import load
from digest.errors import ConfigError

SUBSCRIBER = '[[subscribers]]\nemail = "ban-bien-tap@example.org"\nname = "Ban biên tập"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_need_nothing_but_the_paths(tmp_path: Path) -> None:
    config = load(write(tmp_path, base_config()))
    assert (config.server.host, config.server.port) == ("127.0.0.1", 8080)
    assert config.site.base_url == "http://127.0.0.1:8080/"
    assert config.site.title == "Tổng hợp tin lãnh đạo Bộ Y tế"
    assert config.site.source_url == "https://moh.gov.vn/hoat-dong-cua-lanh-dao-bo"
    assert config.smtp.host is None  # digests go to the Maildir outbox
    assert (config.server.header_timeout, config.server.max_header_bytes) == (10, 32768)
    assert config.server.keepalive_timeout == 5
    assert config.warnings == ()


def test_base_url_left_out_is_the_servers_own_address(tmp_path: Path) -> None:
    loaded = load(write(tmp_path, base_config(toml("server", port=9123))))
    assert loaded.site.base_url == "http://127.0.0.1:9123/"
    assert loaded.warnings == ()


def test_a_base_url_on_this_machine_with_another_port_is_a_warning(tmp_path: Path) -> None:
    server = toml("server", port=9123)
    local = toml("site", base_url="http://127.0.0.1:8080/")
    (warning,) = load(write(tmp_path, base_config(server + local))).warnings
    assert (
        "site.base_url: http://127.0.0.1:8080/ names port 8080, but [server] port is 9123"
        in warning
    )
    # A public address behind a proxy is what base_url is for: no warning.
    proxied = toml("site", base_url="https://tin.example.org/y-te")
    loaded = load(write(tmp_path, base_config(server + proxied)))
    assert loaded.warnings == () and loaded.site.base_url == "https://tin.example.org/y-te/"


def test_changing_the_port_moves_every_published_link(project: Project) -> None:
    project.config.write_text(base_config(toml("server", port=9123)), encoding="utf-8")
    project.write_seed(
        "a.txt",
        "HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ\nBộ trưởng Bộ Y tế Đào Hồng Lan làm việc\n"
        "Thứ Hai, ngày 16/11/2026 02:00Sáng 16/11/2026, Bộ trưởng...\n",
    )
    project.digest("build")
    for path in (
        "feeds/all.atom",
        "feeds/all.rss",
        "feeds/all.json",
        "feeds.opml",
        "theo-doi.html",
    ):
        text = (project.public / path).read_text(encoding="utf-8")
        assert "http://127.0.0.1:9123/" in text and ":8080" not in text, path


def test_warnings_are_printed_once_at_start(project: Project) -> None:
    project.config.write_text(
        base_config(toml("site", base_url="http://localhost:8000/")), encoding="utf-8"
    )
    result = project.digest("topics")
    (line,) = [w for w in result.stderr.splitlines() if "base_url" in w]
    assert "names port 8000, but [server] port is 8080" in line


def test_the_server_limits_are_settings(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"server\.header_timeout: must be a whole number"):
        load(write(tmp_path, base_config(toml("server", header_timeout=0))))
    server = load(write(tmp_path, base_config(toml("server", max_header_bytes=4096)))).server
    assert server.max_header_bytes == 4096


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            toml("smtp", from_address="a@x.org\r\nBcc: b@y.org"),
            r"smtp.from_address: 'a@x.org\\r\\nBcc: b@y.org' is not an e-mail address: it has "
            "spaces or control characters",
        ),
        (
            SUBSCRIBER.replace("ban-bien-tap@example.org", "a@b@example.org"),
            "subscribers[0].email: 'a@b@example.org' is not an e-mail address: it must have "
            "exactly one @",
        ),
        (
            SUBSCRIBER.replace("ban-bien-tap@", "a" * 250 + "@"),
            "is longer than 254 characters",
        ),
        (SUBSCRIBER.replace("example.org", "example"), "has an invalid domain after the @"),
        (
            SUBSCRIBER + 'officials = ["khong-co"]\n',
            "subscribers[0].officials: unknown slug 'khong-co'",
        ),
        (SUBSCRIBER + 'topics = ["y-te"]\n', "subscribers[0].topics: unknown slug 'y-te'"),
        (
            SUBSCRIBER + 'schedule = "hourly"\n',
            'subscribers[0].schedule: must be "daily" or "weekly"',
        ),
        ("[pathz]\n", "pathz: unknown section"),
        (toml("site", feed_size=0), "site.feed_size: must be a whole number from 1 to 1000"),
        (toml("build", workers=0), "build.workers: must be a whole number from 1 to 64"),
        (toml("build", processes=2), "build.processes: unknown key"),
    ],
)
def test_mistakes_are_one_line_naming_the_key(tmp_path: Path, extra: str, message: str) -> None:
    """An address with a line break never reaches a header: the config names the key."""
    with pytest.raises(ConfigError) as error:
        load(write(tmp_path, base_config(extra)))
    assert message in str(error.value) and "\n" not in str(error.value)
    assert isinstance(error.value, ValueError) and error.value.exit_code == 2


def test_password_in_config_is_refused_and_environment_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused = base_config(toml("smtp", username="u", password="hunter2"))
    with pytest.raises(ConfigError, match=r"secrets never go in config\.toml") as error:
        load(write(tmp_path, refused))
    assert "hunter2" not in str(error.value)
    path = write(tmp_path, base_config(toml("smtp", username="u")))
    monkeypatch.setenv("DIGEST_SMTP_PASSWORD", "from-env")
    assert load(path).smtp.password() == "from-env"
    monkeypatch.delenv("DIGEST_SMTP_PASSWORD")
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "smtp-password").write_text("from-credential\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "creds"))
    assert load(path).smtp.password() == "from-credential"
    assert "from-credential" not in repr(load(path).smtp)


def test_a_build_uses_every_core_unless_told(tmp_path: Path) -> None:
    import os

    assert load(write(tmp_path, base_config())).build.workers == len(os.sched_getaffinity(0))
    assert load(write(tmp_path, base_config(toml("build", workers=1)))).build.workers == 1
