"""How well officials and topics hold against expectations written by reading the captures.

    .venv/bin/python tests/accuracy.py [CORPUS ...]      (or `make accuracy`)

A corpus is a folder of captures with the tags a careful reader gives each article
(docs/tagging-guide.md): the five seeds with tests/data/seed_tags.json, and every folder
under tests/data/unseen/ (captures/ and expected.json). Each is built from scratch with the
shipped taxonomy, in a temporary folder; an article is found by the file and line of its
title. Printed: precision and recall of officials and topics over all (article, tag) pairs,
per official and per topic, the officials discovered that are not leaders, and every
disagreement. tests/test_accuracy.py fails when a figure drops below tests/data/accuracy.json.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from digest.app import make_digest  # noqa: E402
from digest.config import load  # noqa: E402
from digest.text import slugify  # noqa: E402

DATA = HERE / "data"
SEEDS = DATA / "seeds"
UNSEEN = DATA / "unseen"


@dataclass(frozen=True, slots=True)
class Expected:
    file: str
    line: int
    title: str
    officials: frozenset[str]
    topics: frozenset[str]


@dataclass(frozen=True, slots=True)
class Corpus:
    name: str
    captures: Path
    rows: tuple[Expected, ...]
    new_officials: frozenset[str]  # slugs a build may discover
    never: frozenset[str]  # slugs of people who must never be discovered


def _slugs(value: object) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise ValueError(f"expected a list of slugs, got {value!r}")
    return frozenset(value)


def _rows(entries: Iterable[dict[str, object]]) -> tuple[Expected, ...]:
    rows = []
    for r in entries:
        if "at" in r:
            file, _, line = str(r["at"]).rpartition(":")
        else:
            file, line = str(r["file"]), str(r["line"])
        rows.append(
            Expected(
                file,
                int(line),
                str(r["title"]),
                _slugs(r["officials"]),
                _slugs(r["topics"]),
            )
        )
    return tuple(rows)


def seeds() -> Corpus:
    data = json.loads((DATA / "seed_tags.json").read_text(encoding="utf-8"))
    return Corpus("seeds", SEEDS, _rows(data["entries"]), frozenset(), frozenset())


def unseen(folder: Path) -> Corpus:
    data = json.loads((folder / "expected.json").read_text(encoding="utf-8"))
    return Corpus(
        f"unseen/{folder.name}",
        folder / "captures",
        _rows(data["entries"]),
        frozenset(o["slug"] for o in data.get("new_officials", [])),
        frozenset(slugify(name) for name in data.get("never_discovered", [])),
    )


def corpora() -> list[Corpus]:
    return [seeds(), *(unseen(f) for f in sorted(UNSEEN.iterdir()) if f.is_dir())]


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    def add(self, expected: frozenset[str], found: frozenset[str]) -> None:
        self.tp += len(expected & found)
        self.fp += len(found - expected)
        self.fn += len(expected - found)


@dataclass
class Result:
    corpus: str
    articles: int = 0
    officials: Score = field(default_factory=Score)
    topics: Score = field(default_factory=Score)
    per_official: dict[str, Score] = field(default_factory=dict)
    per_topic: dict[str, Score] = field(default_factory=dict)
    false_discoveries: list[str] = field(default_factory=list)
    disagreements: list[str] = field(default_factory=list)


def _config(root: Path) -> Path:
    templates = (ROOT / "templates").as_posix()
    text = f'[paths]\nseeds = "seeds"\nstore = "var/digest.sqlite"\ntemplates = "{templates}"\n'
    (root / "config.toml").write_text(text, encoding="utf-8")
    return root / "config.toml"


def measure(corpus: Corpus) -> Result:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        shutil.copytree(corpus.captures, root / "seeds")
        app = make_digest(load(_config(root)))
        try:
            app.build()
            entries = app.entries()
            discovered = set(app.store.entries.discovered())
            registry = {o.slug for o in app.config.classification.officials}
        finally:
            app.close()
    by_source = {(s.file, s.line): e for e in entries for s in e.sources}
    result = Result(corpus.name)
    seen: set[str] = set()
    for row in corpus.rows:
        entry = by_source.get((row.file, row.line))
        if entry is None:
            result.disagreements.append(f"{row.file}:{row.line}: no article found: {row.title}")
            continue
        if entry.id in seen:  # the same article listed twice in the expectations
            continue
        seen.add(entry.id)
        result.articles += 1
        officials, topics = frozenset(entry.officials), frozenset(entry.topics)
        result.officials.add(row.officials, officials)
        result.topics.add(row.topics, topics)
        for slugs, found, per in (
            (row.officials, officials, result.per_official),
            (row.topics, topics, result.per_topic),
        ):
            for slug in slugs | found:
                per.setdefault(slug, Score()).add(slugs & {slug}, found & {slug})
            if slugs != found:
                missing = ", ".join(sorted(slugs - found))
                extra = ", ".join(sorted(found - slugs))
                result.disagreements.append(
                    f"{row.file}:{row.line}: {row.title[:70]}\n"
                    f"    missing: {missing or '-'}    extra: {extra or '-'}"
                )
    tagged = {s for e in entries for s in e.officials}
    for slug in sorted((discovered & tagged) - registry - corpus.new_officials):
        result.false_discoveries.append(slug)
    for slug in sorted(corpus.never & discovered):
        if slug not in result.false_discoveries:
            result.false_discoveries.append(slug)
    return result


def figures(results: Iterable[Result]) -> dict[str, dict[str, float]]:
    return {
        r.corpus: {
            "officials_precision": round(r.officials.precision, 3),
            "officials_recall": round(r.officials.recall, 3),
            "topics_precision": round(r.topics.precision, 3),
            "topics_recall": round(r.topics.recall, 3),
            "false_discoveries": len(r.false_discoveries),
        }
        for r in results
    }


def report(result: Result, *, verbose: bool) -> str:
    lines = [
        f"== {result.corpus}: {result.articles} articles",
        f"officials  precision {result.officials.precision:.3f}  recall "
        f"{result.officials.recall:.3f}  (tp {result.officials.tp}, fp {result.officials.fp}, "
        f"fn {result.officials.fn})",
        f"topics     precision {result.topics.precision:.3f}  recall "
        f"{result.topics.recall:.3f}  (tp {result.topics.tp}, fp {result.topics.fp}, "
        f"fn {result.topics.fn})",
        "false discoveries: " + (", ".join(result.false_discoveries) or "none"),
    ]
    for label, per in (("official", result.per_official), ("topic", result.per_topic)):
        for slug, s in sorted(per.items()):
            lines.append(
                f"  {label:8} {slug:24} P {s.precision:.2f}  R {s.recall:.2f}  "
                f"(tp {s.tp}, fp {s.fp}, fn {s.fn})"
            )
    if verbose:
        lines.append("disagreements:")
        lines.extend(f"  {d}" for d in result.disagreements)
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    quiet = "--quiet" in argv
    names = [a for a in argv if not a.startswith("--")]
    chosen = [c for c in corpora() if not names or c.name in names]
    results = [measure(c) for c in chosen]
    for r in results:
        print(report(r, verbose=not quiet))
    print(json.dumps(figures(results), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
