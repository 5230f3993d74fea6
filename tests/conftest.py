"""Shared fixtures: a real project folder (config, seeds, store) in a temporary directory."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
DATA = Path(__file__).resolve().parent / "data"


@dataclass
class Project:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def seeds(self) -> Path:
        return self.root / "seeds"

    @property
    def store(self) -> Path:
        return self.root / "var" / "digest.sqlite"

    @property
    def public(self) -> Path:
        return self.root / "public"

    def write_seed(self, name: str, text: str | bytes) -> Path:
        path = self.seeds / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, str):
            path.write_text(text, encoding="utf-8")
        else:
            path.write_bytes(text)
        return path

    def digest(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the real `digest` command in a child process."""
        result = subprocess.run(
            [sys.executable, "-m", "digest", "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            cwd=self.root,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"digest {args} exited {result.returncode}:\n{result.stderr}")
        return result

    def entries(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = json.loads(self.digest("entries", "--json").stdout)
        return result


def base_config(extra: str = "") -> str:
    templates = ROOT / "templates"
    return (
        "[paths]\n"
        'seeds = "seeds"\n'
        'store = "var/digest.sqlite"\n'
        'public = "public"\n'
        f'templates = "{templates.as_posix()}"\n' + extra
    )


def real_config() -> str:
    """The shipped config.toml, with its templates found from anywhere."""
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    return text.replace(
        'templates = "templates"', f'templates = "{(ROOT / "templates").as_posix()}"'
    )


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """An empty project: config and seeds folder, no store yet."""
    p = Project(tmp_path)
    p.seeds.mkdir()
    p.config.write_text(base_config(), encoding="utf-8")
    return p


@pytest.fixture
def seeded(project: Project) -> Project:
    """A project holding the five real seed files."""
    for f in sorted(SEEDS.iterdir()):
        shutil.copy2(f, project.seeds / f.name)
    return project


@pytest.fixture
def make_project(tmp_path: Path) -> Callable[[str], Project]:
    counter = iter(range(1000))

    def make(extra: str = "") -> Project:
        p = Project(tmp_path / f"p{next(counter)}")
        (p.seeds).mkdir(parents=True)
        p.config.write_text(base_config(extra), encoding="utf-8")
        return p

    return make
