"""Two floors for the cold build, each reading every capture and splitting its items with one
regular expression first:

    .venv/bin/python bench/floor.py SEEDS_DIR MANIFEST.json OUT_DIR        # feeds floor
    .venv/bin/python bench/floor.py --files SEEDS_DIR PACK OUT_DIR         # same-files floor

The feeds floor serialises the same number of feeds of the same sizes with lxml: no parsing
rules, no store, no pages. The same-files floor writes every file the build published (its
paths and bytes, packed beforehand by `pack`) into an empty folder, each through a temporary
file renamed into place, as the build writes them.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from lxml import etree

ITEM = re.compile(
    r"^(.+)\n(?:Thứ|Chủ|Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
    r"[^\n]*?(\d\d:\d\d)(.*)$",
    re.MULTILINE,
)
ATOM = "http://www.w3.org/2005/Atom"


def split(seeds: Path) -> list[tuple[str, str, str]]:
    items = []
    for path in sorted(seeds.iterdir()):
        items.extend(ITEM.findall(path.read_text(encoding="utf-8")))
    return items


def pack(public: Path, into: Path) -> int:
    """Every file of `public` into one file: a JSON index line, then the bytes in order."""
    files = sorted(p for p in public.rglob("*") if p.is_file() and ".tmp" not in p.parts)
    index = [(str(p.relative_to(public)), p.stat().st_size) for p in files]
    with into.open("wb") as out:
        out.write(json.dumps(index).encode() + b"\n")
        for p in files:
            out.write(p.read_bytes())
    return len(files)


def same_files(seeds: Path, packed: Path, out: Path) -> None:
    with packed.open("rb") as source:
        index = json.loads(source.readline())
        items = split(seeds)
        scratch = out / ".tmp"
        scratch.mkdir(parents=True)
        made: set[str] = set()
        for n, (relative, size) in enumerate(index):
            data = source.read(size)
            folder = os.path.dirname(relative)
            if folder not in made:
                os.makedirs(os.path.join(out, folder), exist_ok=True)
                made.add(folder)
            temporary = os.path.join(scratch, str(n))
            with open(temporary, "wb") as f:
                f.write(data)
            os.replace(temporary, os.path.join(out, relative))
    print(json.dumps({"items": len(items), "files": len(index)}))


def main() -> None:
    if sys.argv[1] == "--files":
        same_files(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
        return
    seeds, manifest, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    items = split(seeds)
    sizes: list[int] = json.loads(manifest.read_text())
    out.mkdir(parents=True, exist_ok=True)
    k = 0
    for n, size in enumerate(sizes):
        # lxml takes None as the default namespace; its stubs say str only.
        feed = etree.Element(f"{{{ATOM}}}feed", nsmap={None: ATOM})  # type: ignore[dict-item]
        etree.SubElement(feed, f"{{{ATOM}}}title").text = f"feed {n}"
        for _ in range(size):
            title, when, teaser = items[k % len(items)]
            k += 1
            entry = etree.SubElement(feed, f"{{{ATOM}}}entry")
            etree.SubElement(entry, f"{{{ATOM}}}id").text = f"urn:x:{k}"
            etree.SubElement(entry, f"{{{ATOM}}}title").text = title
            etree.SubElement(entry, f"{{{ATOM}}}updated").text = f"2025-01-01T{when}:00Z"
            etree.SubElement(entry, f"{{{ATOM}}}summary").text = teaser
        (out / f"{n}.xml").write_bytes(etree.tostring(feed, xml_declaration=True, encoding="UTF-8"))
    print(json.dumps({"items": len(items), "feeds": len(sizes)}))


if __name__ == "__main__":
    main()
