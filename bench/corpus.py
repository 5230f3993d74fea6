"""A deterministic synthetic corpus in the real capture shapes, made from the seed entries.

    .venv/bin/python bench/corpus.py OUT_DIR --files 1000 [--seed 20261122]

Each file is a capture of the listing page at some moment: the newest ~20 items of a single
timeline of unique articles, so consecutive captures overlap as real ones do (the same item
in several files, sometimes with its teaser cut shorter). Titles and teasers recombine the
seeds' own text with other officials, places and numbers, so entries are unique where they
should be; about one file in four also carries a full article (a seed body, retitled) with a
related list, and one in ten uses the English-date Asset Publisher shape.
"""

from __future__ import annotations

import argparse
import random
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digest.parse import parse_text  # noqa: E402
from digest.sources import decode, scan  # noqa: E402

VI_DAYS = ("Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bẩy", "Chủ Nhật")
EN_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
OFFICIALS = (
    "Bộ trưởng Bộ Y tế Đào Hồng Lan",
    "Thứ trưởng Thường trực Bộ Y tế Vũ Mạnh Hà",
    "Thứ trưởng Bộ Y tế Đỗ Xuân Tuyên",
    "Thứ trưởng Bộ Y tế Trần Văn Thuấn",
    "Thứ trưởng Bộ Y tế Nguyễn Thị Liên Hương",
    "Thứ trưởng Bộ Y tế Nguyễn Tri Thức",
    "Thứ trưởng Bộ Y tế Lê Đức Luận",
)
PLACES = (
    "Hà Nội",
    "Huế",
    "Đà Nẵng",
    "Cần Thơ",
    "Hải Phòng",
    "Nghệ An",
    "Thanh Hóa",
    "Bắc Ninh",
    "Quảng Ninh",
    "Lào Cai",
    "Điện Biên",
    "Gia Lai",
    "Đắk Lắk",
    "Khánh Hòa",
    "An Giang",
    "Cà Mau",
    "Hưng Yên",
    "Ninh Bình",
    "Tây Ninh",
    "Đồng Nai",
)
SUBJECTS = (
    "chuyển đổi số y tế",
    "bảo hiểm y tế",
    "phòng, chống dịch sốt xuất huyết",
    "y tế cơ sở",
    "an toàn thực phẩm",
    "khắc phục hậu quả mưa lũ",
    "công tác dân số",
    "đào tạo nhân lực y tế",
    "hợp tác quốc tế với Nhật Bản",
    "công tác cán bộ",
    "khám, chữa bệnh tại bệnh viện tuyến tỉnh",
    "hoàn thiện thể chế, chính sách",
)
PER_FILE = 20
START = datetime(2015, 1, 1, tzinfo=UTC)
END = datetime(2026, 11, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Article:
    title: str
    when: datetime
    teaser: str


def seed_material() -> tuple[list[str], list[tuple[str, ...]], list[str]]:
    """Teasers, article bodies and related titles of the real seeds."""
    teasers: list[str] = []
    bodies: list[tuple[str, ...]] = []
    related: list[str] = []
    for f in scan(ROOT / "tests" / "data" / "seeds"):  # the five seeds, whatever seeds/ holds
        decoded = decode(f.name, f.path.read_bytes())
        for item in parse_text(f.name, "\n".join(decoded.lines) + "\n").items:
            if item.content:
                bodies.append(item.content)
                related.extend(item.related)
            elif len(item.summary) > 80:
                teasers.append(item.summary)
    return teasers, bodies, related


def timeline(count: int, rng: random.Random, teasers: list[str]) -> list[Article]:
    """`count` unique articles, newest first, evenly spread from 2015 to 2026."""
    step = (END - START) / max(count, 1)
    articles = []
    for i in range(count):
        who = rng.choice(OFFICIALS) if rng.random() < 0.8 else "Bộ Y tế"
        what = rng.choice(SUBJECTS)
        where = rng.choice(PLACES)
        title = f"{who} làm việc về {what} tại {where} (đợt {i + 1})"
        when = END - step * i - timedelta(minutes=rng.randrange(0, 50))
        teaser = f"{rng.choice(teasers)[:220]} {who} nhấn mạnh {what}."
        articles.append(Article(title, when.replace(second=0, microsecond=0), teaser))
    return articles


def vi_date(when: datetime) -> str:
    # The weekday printed is Hanoi's; the time is UTC (see docs/seed-format.md).
    return f"{VI_DAYS[(when + timedelta(hours=7)).weekday()]}, ngày {when:%d/%m/%Y %H:%M}"


def en_date(when: datetime) -> str:
    return f"{EN_DAYS[(when + timedelta(hours=7)).weekday()]} {when:%Y-%m-%d %H:%M}"


def capture(
    index: int,
    window: list[Article],
    rng: random.Random,
    material: tuple[list[str], list[tuple[str, ...]], list[str]],
) -> str:
    _, bodies, related = material
    english = rng.random() < 0.1
    lines = ["Asset Publisher" if english else "HOẠT ĐỘNG CỦA LÃNH ĐẠO BỘ"]
    for article in window:
        teaser = article.teaser
        cut = rng.random() < 0.3
        if cut:  # the site cuts teasers in other places in other captures
            teaser = teaser[: rng.randrange(60, len(teaser))]
        date = en_date(article.when) if english else vi_date(article.when)
        lines += [article.title, f"{date}{teaser}..."]
    if rng.random() < 0.25:
        body = rng.choice(bodies)
        article = window[rng.randrange(len(window))]
        local = article.when + timedelta(hours=7)
        lines += ["Xuất bản thông tin", article.title, f"{local:%d/%m/%Y | %H:%M} PM"]
        lines += [article.teaser, *body[1:]]
        lines += ["Tin liên quan", *(f"- {t}" for t in rng.sample(related, min(5, len(related))))]
    return "\n".join(lines) + "\n"


def generate(out: Path, files: int, seed: int = 20261122) -> dict[str, int]:
    rng = random.Random(seed)
    material = seed_material()
    # Captures advance ~17 items on average: consecutive captures share a few items.
    advance = [rng.randrange(14, 21) for _ in range(files)]
    articles = timeline(sum(advance) + PER_FILE, rng, material[0])
    out.mkdir(parents=True, exist_ok=True)
    position = len(articles) - PER_FILE
    items = 0
    for i in range(files):
        window = articles[position : position + PER_FILE]
        (out / f"capture-{i:05d}.txt").write_text(capture(i, window, rng, material), "utf-8")
        items += len(window)
        position = max(0, position - advance[i])
    return {"files": files, "listing_items": items, "unique_articles": len(articles)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--seed", type=int, default=20261122)
    args = parser.parse_args()
    print(generate(args.out, args.files, args.seed))


if __name__ == "__main__":
    main()
