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


# Thresholds: the deployment's points where a petition reaches its decision maker
# (GROUNDSWELL_THRESHOLDS: "count:label,...", like the UK Parliament's 10,000 and 100,000).

DEFAULT_THRESHOLDS = "10000:Response due,100000:Debate"
MAX_THRESHOLD = 999_999_999


class Threshold(BaseModel):
    count: int
    label: str


def parse_thresholds(text: str) -> list[Threshold]:
    """"10000:Response due,100000:Debate" -> thresholds, lowest first; ValueError saying what is wrong."""
    found: dict[int, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        count, sep, label = part.partition(":")
        if not sep or not count.strip().isdigit() or not label.strip():
            raise ValueError(f"'{part}' is not 'count:label', e.g. '10000:Response due'")
        value = int(count)
        if not 1 <= value <= MAX_THRESHOLD:
            raise ValueError(f"threshold {value} is out of range: from 1 to {MAX_THRESHOLD:,}")
        if value in found:
            raise ValueError(f"threshold {value} is listed twice")
        if len(label.strip()) > 80:
            raise ValueError(f"the label of threshold {value} is longer than 80 characters")
        found[value] = label.strip()
    return [Threshold(count=count, label=label) for count, label in sorted(found.items())]


def thresholds_crossed(old_count: int, new_count: int, thresholds: list[Threshold]) -> list[Threshold]:
    return [t for t in thresholds if old_count < t.count <= new_count]
