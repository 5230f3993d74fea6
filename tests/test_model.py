"""The model's calendar: a Vietnam month and the instants in it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from digest.model import month_of, month_span

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
