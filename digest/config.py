"""config.toml -> frozen settings. Every error names the file and the key to fix."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """The configuration cannot be used; the message says which key and why."""


@dataclass(frozen=True, slots=True)
class Paths:
    seeds: Path
    store: Path
    public: Path
    templates: Path


@dataclass(frozen=True, slots=True)
class Config:
    source: Path  # the config file itself; relative paths in it are relative to its folder
    paths: Paths


_SECTIONS: dict[str, set[str]] = {
    "paths": {"seeds", "store", "public", "templates"},
}
_DEFAULT_PATHS = {
    "seeds": "seeds",
    "store": "var/digest.sqlite",
    "public": "public",
    "templates": "templates",
}


class _Reader:
    def __init__(self, source: Path, data: Mapping[str, Any]) -> None:
        self.source = source
        self.data = data

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {key}: {message}")

    def check_keys(self) -> None:
        for section, value in self.data.items():
            if section not in _SECTIONS:
                raise self.fail(section, f"unknown section; known: {', '.join(sorted(_SECTIONS))}")
            if isinstance(value, Mapping):
                for key in value:
                    if key not in _SECTIONS[section]:
                        known = ", ".join(sorted(_SECTIONS[section]))
                        raise self.fail(f"{section}.{key}", f"unknown key; known: {known}")

    def table(self, section: str) -> Mapping[str, Any]:
        value = self.data.get(section, {})
        if not isinstance(value, Mapping):
            raise self.fail(section, "must be a table")
        return value

    def path(self, section: str, key: str, default: str) -> Path:
        value = self.table(section).get(key, default)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"{section}.{key}", "must be a non-empty path string")
        path = Path(value).expanduser()
        return path if path.is_absolute() else (self.source.parent / path).resolve()


def load(path: Path) -> Config:
    """Read and check `path`; raise ConfigError with a one-line message on any problem."""
    source = path.resolve()
    try:
        raw = source.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    reader = _Reader(source, data)
    reader.check_keys()
    paths = Paths(**{key: reader.path("paths", key, d) for key, d in _DEFAULT_PATHS.items()})
    return Config(source=source, paths=paths)
