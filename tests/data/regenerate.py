"""Regenerate expectation files under tests/data/. Review every diff before committing.

.venv/bin/python tests/data/regenerate.py seed_tags   # needs `make run` first
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parent
ROOT = DATA.parent.parent


def seed_tags() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "digest",
            "--config",
            str(ROOT / "config.toml"),
            "entries",
            "--json",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rows = []
    for e in sorted(
        json.loads(out), key=lambda e: (e["sources"][0]["file"], e["sources"][0]["line"])
    ):
        first = e["sources"][0]
        rows.append(
            {
                "at": f"{first['file']}:{first['line']}",
                "title": e["title"][:70],
                "officials": e["officials"],
                "topics": e["topics"],
            }
        )
    note = json.loads((DATA / "seed_tags.json").read_text(encoding="utf-8"))["_note"]
    text = json.dumps({"_note": note, "entries": rows}, ensure_ascii=False, indent=1)
    (DATA / "seed_tags.json").write_text(text + "\n", encoding="utf-8")


def golden() -> None:
    sys.path.insert(0, str(DATA.parent))
    from feed_samples import sample_doc

    from digest.feeds import RENDERERS

    folder = DATA / "golden"
    folder.mkdir(exist_ok=True)
    for fmt, render in RENDERERS.items():
        (folder / f"feed.{fmt}").write_bytes(render(sample_doc()))


TARGETS = {"seed_tags": seed_tags, "golden": golden}

if __name__ == "__main__":
    for name in sys.argv[1:] or list(TARGETS):
        TARGETS[name]()
        print(f"regenerated {name}; now read the diff: git diff tests/data")
