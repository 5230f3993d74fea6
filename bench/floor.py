"""The build floor: read every file, split items with one regular expression, and serialise
the same number of feeds of the same sizes with lxml. No parsing rules, no store, no pages.

    .venv/bin/python bench/floor.py SEEDS_DIR MANIFEST.json OUT_DIR
"""

from __future__ import annotations

import json
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


def main() -> None:
    seeds, manifest, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    items = []
    for path in sorted(seeds.iterdir()):
        items.extend(ITEM.findall(path.read_text(encoding="utf-8")))
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
