"""Officials and topics measured against expectations written by reading (tests/accuracy.py):
no figure may drop below the level reached (tests/data/accuracy.json), and no one who is not
a current leader of the Ministry is ever discovered."""

from __future__ import annotations

import json

import pytest
from accuracy import DATA, Result, corpora, figures, measure, report

FLOORS = json.loads((DATA / "accuracy.json").read_text(encoding="utf-8"))
CORPORA = {c.name: c for c in corpora()}


def test_every_corpus_has_a_floor_and_every_floor_a_corpus() -> None:
    assert set(FLOORS["floors"]) == set(CORPORA)


@pytest.fixture(scope="module")
def results() -> dict[str, Result]:
    return {name: measure(corpus) for name, corpus in CORPORA.items()}


@pytest.mark.parametrize("name", sorted(CORPORA))
def test_no_figure_drops_below_the_level_reached(results: dict[str, Result], name: str) -> None:
    found = figures([results[name]])[name]
    floor = FLOORS["floors"][name]
    below = {
        k: (found[k], v) for k, v in floor.items() if k != "false_discoveries" and found[k] < v
    }
    assert below == {}, report(results[name], verbose=True)
    assert found["false_discoveries"] == 0, results[name].false_discoveries


def test_every_expected_article_is_found(results: dict[str, Result]) -> None:
    missing = [d for r in results.values() for d in r.disagreements if "no article found" in d]
    assert missing == []
