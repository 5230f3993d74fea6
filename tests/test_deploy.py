"""The systemd unit: it starts with or without the SMTP password credential."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from support import ROOT

UNIT = ROOT / "deploy" / "digest.service"


def settings(text: str) -> list[tuple[str, str]]:
    return [
        (line.partition("=")[0], line.partition("=")[2])
        for line in text.splitlines()
        if "=" in line and not line.startswith("#")
    ]


def test_no_credential_or_environment_file_is_required() -> None:
    found = settings(UNIT.read_text(encoding="utf-8"))
    credentials = [value for key, value in found if key == "LoadCredential"]
    # `ID:PATH` fails the unit when PATH is missing; `ID` alone is looked up in the
    # credential stores and skipped when absent (systemd issue 32667).
    assert credentials == ["smtp-password"]
    assert all(value.startswith("-") for key, value in found if key == "EnvironmentFile")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    # The unit as installed under /srv/digest, moved under the test's folder so that the
    # program it starts exists.
    program = tmp_path / ".venv" / "bin" / "digest"
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\n", encoding="utf-8")
    program.chmod(0o755)
    unit = tmp_path / "digest.service"
    unit.write_text(UNIT.read_text(encoding="utf-8").replace("/srv/digest", str(tmp_path)))
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"},
    )
    complaints = [
        line
        for line in result.stderr.splitlines()
        if "digest.service" in line and "User=" not in line and "Group=" not in line
    ]
    assert result.returncode == 0 or not complaints, result.stderr
    assert complaints == [], result.stderr
