"""Regenerate the golden feeds under tests/data/golden/. Read every diff before committing.

.venv/bin/python tests/data/regenerate.py golden

Expected tags (seed_tags.json, unseen/) are written by reading, never regenerated.
"""

from __future__ import annotations

import sys
from pathlib import Path

DATA = Path(__file__).resolve().parent
ROOT = DATA.parent.parent


def golden() -> None:
    sys.path.insert(0, str(DATA.parent))
    from feed_samples import sample_doc

    from digest.feeds import RENDERERS

    folder = DATA / "golden"
    folder.mkdir(exist_ok=True)
    for fmt, render in RENDERERS.items():
        (folder / f"feed.{fmt}").write_bytes(render(sample_doc()))


TARGETS = {"golden": golden}

if __name__ == "__main__":
    for name in sys.argv[1:] or list(TARGETS):
        TARGETS[name]()
        print(f"regenerated {name}; now read the diff: git diff tests/data")
