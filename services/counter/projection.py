"""Applying events to the count projection: once per event, whatever the delivery."""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from uuid import NAMESPACE_URL, uuid5

from sqlalchemy import case, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.counter.db import milestones, outbox, petition_counts, processed_events
from shared.counts import Count, count_document
from shared.db import insert
from shared.events import MilestoneReached, PetitionCreated, SignatureAdded
from shared.milestones import milestones_crossed, next_goal
from shared.outbox import outbox_row

CHUNK = 500


def _dialect(executor) -> str:
    """The dialect's name, for an AsyncConnection or an AsyncSession."""
    dialect = getattr(executor, "dialect", None) or executor.bind.dialect
    return dialect.name


@dataclass(frozen=True)
class Applied:
    """What a batch changed: the milestones it newly reached, and the new count documents."""

    reached: list[MilestoneReached]
    counts: list[Count]


@dataclass(frozen=True)
class Delivered:
    """An event as it came off the stream (its ids as text, once)."""

    event: PetitionCreated | SignatureAdded
    stream_seq: int
    event_id: str = field(init=False)
    petition_id: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "event_id", str(self.event.event_id))
        object.__setattr__(self, "petition_id", str(self.event.petition_id))


async def apply_events(session: AsyncSession, batch: Sequence[Delivered]) -> Applied:
    """Apply a batch in the caller's transaction; returns the milestones it newly reached and the
    counts it changed.

    Each event's tracking row is inserted first; only events whose row was new change a count,
    so redelivered and republished events are ignored.
    """
    fresh = await _track(session, batch)
    created: dict[str, str] = {}
    signed: dict[str, list[SignatureAdded]] = defaultdict(list)
    for item in batch:
        event = item.event
        if item.event_id not in fresh:
            continue
        fresh.discard(item.event_id)  # a duplicate inside one batch counts once too
        if isinstance(event, SignatureAdded):
            signed[item.petition_id].append(event)
        else:
            created[item.petition_id] = event.slug
    reached, counts = [], []
    for petition_id in sorted(created | signed.keys()):  # one lock order for concurrent replicas
        signatures = signed.get(petition_id, [])
        new_count, updated_at = await _add_to_count(session, petition_id, len(signatures), created.get(petition_id))
        counts.append(count_document(petition_id, new_count, updated_at))
        old_count = new_count - len(signatures)
        for milestone in milestones_crossed(old_count, new_count):
            crossing = signatures[milestone - old_count - 1]
            reached += await _record_milestones(session, petition_id, [milestone], new_count, crossing.correlation_id)
    return Applied(reached, counts)


async def _track(session: AsyncSession, batch: Sequence[Delivered]) -> set[str]:
    rows = {
        item.event_id: {
            "event_id": item.event_id,
            "petition_id": item.petition_id,
            "type": item.event.type,
            "stream_seq": item.stream_seq,
        }
        for item in batch
    }
    if not rows:
        return set()
    # One statement, compiled once and cached, executed for many rows (SQLAlchemy batches them
    # into multi-row INSERTs with RETURNING); a VALUES list built per batch compiles every time.
    statement = (
        insert(_dialect(session), processed_events)
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(processed_events.c.event_id)
    )
    return set((await session.execute(statement, list(rows.values()))).scalars().all())


async def _add_to_count(session: AsyncSession, petition_id: str, delta: int, slug: str | None) -> tuple[int, datetime]:
    statement = insert(_dialect(session), petition_counts).values(
        petition_id=petition_id, slug=slug, count=delta, updated_at=datetime.now(timezone.utc)
    )
    statement = statement.on_conflict_do_update(
        index_elements=["petition_id"],
        set_={
            "count": petition_counts.c.count + statement.excluded.count,
            "slug": func.coalesce(statement.excluded.slug, petition_counts.c.slug),
            "updated_at": statement.excluded.updated_at,
        },
    ).returning(petition_counts.c.count, petition_counts.c.updated_at)
    count, updated_at = (await session.execute(statement)).one()
    return count, updated_at


async def _record_milestones(
    session: AsyncSession, petition_id: str, reached: Iterable[int], count: int, correlation_id: str | None
) -> list[MilestoneReached]:
    """Record milestones not recorded before, each queuing one MilestoneReached in the outbox."""
    events = []
    for milestone in reached:
        statement = (
            insert(_dialect(session), milestones)
            .values(petition_id=petition_id, milestone=milestone, count=count, reached_at=datetime.now(timezone.utc))
            .on_conflict_do_nothing(index_elements=["petition_id", "milestone"])
            .returning(milestones.c.milestone)
        )
        if (await session.execute(statement)).first() is None:
            continue
        event = MilestoneReached(
            event_id=uuid5(NAMESPACE_URL, f"groundswell:milestone:{petition_id}:{milestone}"),
            petition_id=petition_id,
            correlation_id=correlation_id,
            milestone=milestone,
            count=count,
            next_goal=next_goal(count),
        )
        await session.execute(outbox.insert().values(**outbox_row(event)))
        events.append(event)
    return events


async def rebuild_projection(session: AsyncSession, replay: Sequence[Delivered], up_to_seq: int) -> list[MilestoneReached]:
    """Recompute every count from the replayed stream (sequences 1..up_to_seq).

    Tracking rows past up_to_seq (events a live counter applied meanwhile) are kept; milestones
    already recorded are never emitted again.
    """
    slugs = dict((await session.execute(select(petition_counts.c.petition_id, petition_counts.c.slug))).all())
    slugs.update({item.petition_id: item.event.slug for item in replay if isinstance(item.event, PetitionCreated)})
    await session.execute(delete(processed_events).where(processed_events.c.stream_seq <= up_to_seq))
    await session.execute(delete(petition_counts))
    for start in range(0, len(replay), CHUNK):
        await _track(session, replay[start : start + CHUNK])
    signatures = func.sum(case((processed_events.c.type == SignatureAdded.__name__, 1), else_=0))
    counts = (
        await session.execute(
            select(processed_events.c.petition_id, signatures).group_by(processed_events.c.petition_id)
        )
    ).all()
    reached = []
    now = datetime.now(timezone.utc)
    for petition_id, count in sorted(counts):
        await session.execute(
            petition_counts.insert().values(petition_id=petition_id, slug=slugs.get(petition_id), count=count, updated_at=now)
        )
        reached += await _record_milestones(session, petition_id, milestones_crossed(0, count), count, None)
    return reached
