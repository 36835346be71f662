"""Counts: each petition's public count document, as the count endpoint serves it and the COUNTS
bucket holds it (key: petition id, value: the document's JSON), and the milestone ladder its goal
and the milestone emails follow: 10, 25, 50, then 1-2-5 from 100 upward, defined once."""

from collections.abc import Iterator
from datetime import datetime, timezone
from uuid import UUID

from pydantic import BaseModel


COUNTS_BUCKET = "COUNTS"

FIRST_STEPS = (10, 25, 50)
FIRST_GOAL = 100


def ladder() -> Iterator[int]:
    """Every milestone in ascending order, without end."""
    yield from FIRST_STEPS
    decade = FIRST_GOAL
    while True:
        for factor in (1, 2, 5):
            yield factor * decade
        decade *= 10


def milestones_crossed(old_count: int, new_count: int) -> list[int]:
    """Every milestone m with old_count < m <= new_count, ascending."""
    crossed = []
    for milestone in ladder():
        if milestone > new_count:
            return crossed
        if milestone > old_count:
            crossed.append(milestone)


def milestones_up_to(count: int) -> list[int]:
    return milestones_crossed(0, count)


def next_goal(count: int) -> int:
    """The public goal: the next ladder value from 100 upward above the count."""
    for milestone in ladder():
        if milestone >= FIRST_GOAL and milestone > count:
            return milestone
    raise AssertionError("the ladder has no end")


class Count(BaseModel):
    """A petition's exact supporter count and its current public goal."""

    petition_id: UUID
    count: int
    goal: int
    updated_at: datetime


def count_document(petition_id: str | UUID, count: int, updated_at: datetime) -> Count:
    if updated_at.tzinfo is None:  # SQLite hands timestamps back without their zone; they are UTC
        updated_at = updated_at.replace(tzinfo=timezone.utc)
    return Count(petition_id=petition_id, count=count, goal=next_goal(count), updated_at=updated_at)
