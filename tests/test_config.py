"""config.toml -> settings: every mistake named by its key, and defaults that work as they are."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Project, real_config

from digest.config import ConfigError, load


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_base_url_left_out_is_the_servers_own_address(tmp_path: Path) -> None:
    config = real_config().replace("port = 8080", "port = 9123")
    assert "\nbase_url" not in config  # the shipped config leaves it out
    loaded = load(write(tmp_path, config))
    assert loaded.site.base_url == "http://127.0.0.1:9123/"
    assert loaded.warnings == ()


def test_a_base_url_on_this_machine_with_another_port_is_a_warning(tmp_path: Path) -> None:
    config = real_config().replace("port = 8080", "port = 9123")
    config = config.replace("[site]\n", '[site]\nbase_url = "http://127.0.0.1:8080/"\n')
    (warning,) = load(write(tmp_path, config)).warnings
    assert (
        "site.base_url: http://127.0.0.1:8080/ names port 8080, but [server] port is 9123"
        in warning
    )
    # A public address behind a proxy is what base_url is for: no warning.
    proxied = config.replace("http://127.0.0.1:8080/", "https://tin.example.org/y-te")
    loaded = load(write(tmp_path, proxied))
    assert loaded.warnings == () and loaded.site.base_url == "https://tin.example.org/y-te/"


def test_changing_the_port_moves_every_published_link(project: Project) -> None:
    project.config.write_text(real_config().replace("port = 8080", "port = 9123"), encoding="utf-8")
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


@pytest.mark.parametrize(
    ("replace", "message"),
    [
        (
            ('from_address = "digest@localhost"', 'from_address = "a@x.org\\r\\nBcc: b@y.org"'),
            r"smtp.from_address: 'a@x.org\\r\\nBcc: b@y.org' is not an e-mail address: it has "
            "spaces or control characters",
        ),
        (
            ('email = "ban-bien-tap@example.org"', 'email = "a@b@example.org"'),
            "subscribers[0].email: 'a@b@example.org' is not an e-mail address: it must have "
            "exactly one @",
        ),
        (
            ('email = "ban-bien-tap@example.org"', f'email = "{"a" * 250}@example.org"'),
            "is longer than 254 characters",
        ),
        (
            ('email = "ban-bien-tap@example.org"', 'email = "x@example"'),
            "has an invalid domain after the @",
        ),
    ],
)
def test_addresses_are_checked_where_they_enter(
    tmp_path: Path, replace: tuple[str, str], message: str
) -> None:
    """An address with a line break never reaches a header: the config names the key."""
    config = real_config()
    assert replace[0] in config
    (tmp_path / "config.toml").write_text(config.replace(*replace), encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load(tmp_path / "config.toml")
    assert message in str(error.value) and "\n" not in str(error.value)


def test_warnings_are_printed_once_at_start(project: Project) -> None:
    config = real_config().replace("[site]\n", '[site]\nbase_url = "http://localhost:8000/"\n')
    project.config.write_text(config, encoding="utf-8")
    result = project.digest("topics")
    (line,) = [w for w in result.stderr.splitlines() if "base_url" in w]
    assert "names port 8000, but [server] port is 8080" in line


def test_the_server_limits_are_settings(tmp_path: Path) -> None:
    config = real_config().replace("header_timeout = 10", "header_timeout = 0")
    with pytest.raises(ConfigError, match=r"server\.header_timeout: must be a whole number"):
        load(write(tmp_path, config))
    server = load(write(tmp_path, real_config())).server
    assert (server.header_timeout, server.max_header_bytes, server.keepalive_timeout) == (
        10,
        32768,
        5,
    )
