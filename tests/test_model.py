"""The model's calendar: a Vietnam month and the instants in it."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.classify import Discovered, Tags
from digest.model import Item, Location, Problem, month_of, month_span, pickled_as_fields

SECOND = timedelta(seconds=1)


@given(st.datetimes(datetime(1990, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC)))
@settings(max_examples=500)
def test_a_month_span_holds_exactly_the_instants_of_that_vietnam_month(moment: datetime) -> None:
    month = month_of(moment)
    start, end = month_span(month)
    assert start <= moment < end
    assert month_of(start) == month_of(end - SECOND) == month
    assert month_of(start - SECOND) != month != month_of(end)


def test_a_vietnam_month_starts_seven_hours_before_the_utc_one() -> None:
    assert month_span("2026-12") == (
        datetime(2026, 11, 30, 17, tzinfo=UTC),
        datetime(2026, 12, 31, 17, tzinfo=UTC),
    )


def test_what_crosses_processes_comes_back_from_a_pickle_field_for_field() -> None:
    """Items, problems and tags travel between a build's processes pickled as their fields:
    each field comes back in its place, whatever its type."""
    where = Location("2026/bo-truong.html", 7)
    sent = [
        where,
        Problem("2026/bo-truong.html", 9, "ngày không đọc được"),
        Item(
            "article",
            "Bộ trưởng làm việc",
            datetime(2026, 1, 8, 2, 0, tzinfo=UTC),
            "Tóm tắt",
            True,
            ("Đoạn một", "Đoạn hai"),
            ("Tin liên quan",),
            where,
        ),
        Tags(("dao-hong-lan",), ("dan-so",), (Discovered("le-van-a", "Lê Văn A", "Thứ trưởng"),)),
    ]
    for value in sent:
        back = pickle.loads(pickle.dumps(value))
        assert back == value and type(back) is type(value)


def test_a_one_field_class_is_refused_at_once() -> None:
    @dataclass(frozen=True, slots=True)
    class Alone:
        only: int

    with pytest.raises(TypeError, match="Alone: needs two fields"):
        pickled_as_fields(Alone)
