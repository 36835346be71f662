"""The organizer's chart: hour rows of the counter's projection summed into hours or days (UTC)."""

from datetime import datetime, timezone

from services.counter.queries import buckets

H = 3600
MIDNIGHT = int(datetime(2026, 11, 20, tzinfo=timezone.utc).timestamp()) // H  # hours since 1970


def at(day: int, hour: int = 0) -> datetime:
    return datetime(2026, 11, 20 + day, hour, tzinfo=timezone.utc)


def test_hours_are_summed_into_utc_days_oldest_first_and_empty_ones_left_out():
    rows = [(MIDNIGHT + 49, 4), (MIDNIGHT + 23, 2), (MIDNIGHT, 3), (MIDNIGHT + 24, 5), (MIDNIGHT + 30, -5)]
    assert buckets(rows, 24) == [(at(0), 5), (at(2), 4)]  # day 1: 5 added, 5 invalidated
    assert buckets(rows, 1) == [(at(0), 3), (at(0, 23), 2), (at(1), 5), (at(1, 6), -5), (at(2, 1), 4)]
    assert buckets([], 24) == []
