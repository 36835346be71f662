"""Applying events to the count projection: once per event, whatever the delivery."""

from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated, Literal
from uuid import NAMESPACE_URL, uuid5

import structlog
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError
from sqlalchemy import case, delete, func, select, update
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from contract.counts import Count, Threshold, count_document, milestones_crossed, next_goal, thresholds_crossed
from contract.events import (COUNTER_DURABLE, MilestoneReached, OrganizerConfirmed, PetitionApproved, PetitionClosed,
                             PetitionCreated, PetitionRejected, SignatureAdded, SignatureInvalidated, ThresholdReached,
                             decode_event)
from services.counter.db import (PUBLIC_STATUSES, milestones, outbox, petition_counts, petition_countries,
                                 petition_hours, processed_events, thresholds as thresholds_table)
from shared.consumers import Delivery, Registry
from shared.deadletters import DeadLetters, describe
from shared.metrics import MILESTONES
from shared.outbox import OutboxRelay, outbox_row
from shared.store import connection_of, store_of

CHUNK = 5000  # tracking rows per INSERT in a replay

log = structlog.get_logger("counter")


@dataclass(frozen=True)
class Applied:
    """What a batch changed: the milestones and thresholds it newly reached (their events, queued in
    the outbox), and the new count documents of the public petitions among those it touched (a
    petition not public yet has no public count)."""

    reached: list[MilestoneReached | ThresholdReached]
    counts: list[Count]


UUID_TEXT = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
Id = Annotated[str, StringConstraints(pattern=UUID_TEXT)]


class Change:
    """What a batch of fresh events changes, gathered before one write per table."""

    def __init__(self) -> None:
        self.created: dict[str, str | None] = {}  # petition id -> slug
        self.owners: dict[str, str] = {}  # slug -> the petition created with it last, in stream order
        self.signed: dict[str, list[Counted]] = defaultdict(list)
        self.invalidated: dict[str, int] = defaultdict(int)
        self.by_country: dict[tuple[str, str], int] = defaultdict(int)
        self.by_hour: dict[tuple[str, int], int] = defaultdict(int)
        self.statuses: dict[str, str] = {}  # petition id -> its status after this batch's events


def _counted_view(payload: bytes) -> "Counted":
    return counted(payload)


# What the counter reads, and what each event type does to a batch's Change. Every type may also
# move the petition's status (Counted.next_status) and its country and hour figures
# (Counted.where_and_when). The counter's filter subjects, its rebuild and its part of the
# AsyncAPI document come from this registry.
COUNTING = Registry(COUNTER_DURABLE, "Builds the supporter counts (confirmed minus invalidated), by country and by "
                                     "hour, each petition's status, and detects milestones.", _counted_view)


@COUNTING.on(SignatureAdded)
def _signed(change: Change, event: "Counted") -> None:
    change.signed[event.petition_id].append(event)


@COUNTING.on(SignatureInvalidated)
def _invalidated(change: Change, event: "Counted") -> None:
    change.invalidated[event.petition_id] += 1


@COUNTING.on(PetitionCreated)
def _created(change: Change, event: "Counted") -> None:
    change.created[event.petition_id] = event.slug
    change.owners[event.slug] = event.petition_id


@COUNTING.on(PetitionClosed, OrganizerConfirmed, PetitionApproved, PetitionRejected)
def _status_only(change: Change, event: "Counted") -> None:
    """Their effect is the status each says (Counted.next_status)."""


COUNTED_TYPES = COUNTING.types


class Counted(BaseModel):
    """What counting needs of a PetitionCreated, SignatureAdded or SignatureInvalidated: the contract's own fields
    (contract/events.py), ids kept as text. Reading only these is several times faster than the
    whole event, and counting is what a replay of millions of events does."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: Id
    type: Literal[COUNTED_TYPES]  # type: ignore[valid-type]
    schema_version: Literal[1] = 1
    petition_id: Id
    slug: str | None = None
    correlation_id: str | None = None
    occurred_at: datetime | None = None
    country: str | None = None
    counted_at: datetime | None = None  # a SignatureInvalidated's: when the signature had counted
    outcome: str | None = None  # a PetitionClosed's: closed or won
    status: str | None = None  # a PetitionCreated's: open or unconfirmed
    live: bool | None = None  # an OrganizerConfirmed's

    def next_status(self, current: str | None) -> str | None:
        """The petition's status after this event (None: it does not change it). Won stays won."""
        if current == "won":
            return "won"
        return {"PetitionCreated": self.status or "open", "PetitionClosed": self.outcome,
                "OrganizerConfirmed": "open" if self.live else "in_review", "PetitionApproved": "open",
                "PetitionRejected": "rejected"}.get(self.type)

    @property
    def where_and_when(self) -> tuple[str | None, int | None]:
        """(country, hour) this event moves in the projections: '' for no country, hours since
        1970 UTC; (None, None) when it moves neither (a petition, or an invalidation of version 1,
        which did not say)."""
        at = self.occurred_at if self.type == "SignatureAdded" else self.counted_at
        if self.type not in ("SignatureAdded", "SignatureInvalidated") or at is None:
            return None, None
        return self.country or "", int(at.timestamp()) // 3600


def counted(payload: bytes) -> Counted:
    """The counting view of an event; raises ValueError for what is not one (or not readable)."""
    try:
        return Counted.model_validate_json(payload)
    except ValidationError:
        # Another version (upcast it) or another type: the whole contract decides.
        event = decode_event(payload)
        if event.type not in COUNTED_TYPES:
            raise ValueError(f"{event.type} is not counted") from None
        return Counted(event_id=str(event.event_id), type=event.type, petition_id=str(event.petition_id),
                       slug=getattr(event, "slug", None), correlation_id=event.correlation_id,
                       occurred_at=event.occurred_at, country=getattr(event, "country", None),
                       counted_at=getattr(event, "counted_at", None), outcome=getattr(event, "outcome", None),
                       status=getattr(event, "status", None), live=getattr(event, "live", None))


@dataclass(frozen=True)
class Delivered:
    """An event as it came off the stream."""

    event: Counted
    stream_seq: int

    @property
    def event_id(self) -> str:
        return self.event.event_id

    @property
    def petition_id(self) -> str:
        return self.event.petition_id


def fold(batch: Sequence[Delivered], fresh: set[str]) -> Change:
    """What the batch's fresh events (by event id; the others were counted before) change, before
    anything is written: each through its COUNTING handler, then its status, country and hour."""
    fresh = set(fresh)
    change = Change()
    for item in batch:
        event = item.event
        if item.event_id not in fresh:
            continue
        fresh.discard(item.event_id)  # a duplicate inside one batch counts once too
        COUNTING.handler(event.type).run(change, event)
        if (status := event.next_status(change.statuses.get(item.petition_id))) is not None:
            change.statuses[item.petition_id] = status
        country, hour = event.where_and_when
        if hour is not None:
            step = 1 if event.type == "SignatureAdded" else -1
            change.by_country[item.petition_id, country] += step
            change.by_hour[item.petition_id, hour] += step
    return change


async def apply_events(session: AsyncSession, batch: Sequence[Delivered],
                       thresholds: Sequence[Threshold] = ()) -> Applied:
    """Apply a batch in the caller's transaction; returns the milestones it newly reached and the
    counts it changed.

    Each event's tracking row is inserted first; only events whose row was new change a count,
    so redelivered and republished events are ignored.
    """
    change = fold(batch, await _track(session, batch))
    created, signed, invalidated, statuses = change.created, change.signed, change.invalidated, change.statuses
    if change.owners:
        created = await _claim_slugs(session, created, change.owners)
    await _add_to(session, petition_countries, "country", change.by_country)
    await _add_to(session, petition_hours, "hour", change.by_hour)
    reached, counts = [], []
    for petition_id in sorted(created | signed.keys() | invalidated.keys() | statuses.keys()):  # one lock order
        signatures = signed.get(petition_id, [])
        delta = len(signatures) - invalidated.get(petition_id, 0)
        new_count, updated_at, status = await _add_to_count(session, petition_id, delta, created.get(petition_id),
                                                            statuses.get(petition_id))
        if status in PUBLIC_STATUSES:
            counts.append(count_document(petition_id, new_count, updated_at))
        old_count = new_count - delta
        # Only a rise crosses milestones (then delta > 0 and every index below is a signature of
        # this batch); a milestone recorded before is never emitted again (_record_milestones).
        for milestone in milestones_crossed(old_count, new_count):
            crossing = signatures[milestone - old_count - 1]
            reached += await _record_milestones(session, petition_id, [milestone], new_count, crossing.correlation_id)
        for threshold in thresholds_crossed(old_count, new_count, list(thresholds)):
            crossing = signatures[threshold.count - old_count - 1]
            reached += await _record_thresholds(session, petition_id, [threshold], new_count, crossing.correlation_id)
    return Applied(reached, counts)


TRACKING_COLUMNS = ("event_id", "petition_id", "type", "stream_seq", "country", "hour")


def _tracking_row(item: Delivered) -> dict:
    country, hour = item.event.where_and_when
    return {"event_id": item.event_id, "petition_id": item.petition_id, "type": item.event.type,
            "stream_seq": item.stream_seq, "country": country, "hour": hour}


async def _track(session: AsyncSession, batch: Sequence[Delivered]) -> set[str]:
    """Insert the batch's tracking rows; the event ids that were new."""
    rows = list({item.event_id: _tracking_row(item) for item in batch}.values())
    if not rows:
        return set()
    store = store_of(session)
    return await session.run_sync(lambda sync: store.inserted(connection_of(sync), processed_events, rows,
                                                              key="event_id", conflict=["event_id"]))


async def _add_to(session: AsyncSession, table, key: str, deltas: dict[tuple, int]) -> None:
    """Add each (petition, key) delta to its row of a country or hour table (one statement)."""
    rows = [{"petition_id": petition_id, key: value, "count": delta}
            for (petition_id, value), delta in sorted(deltas.items()) if delta]  # one lock order for replicas
    if not rows:
        return
    statement = store_of(session).insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=["petition_id", key], set_={"count": table.c.count + statement.excluded.count})
    await session.execute(statement, rows)


async def _claim_slugs(session: AsyncSession, created: dict[str, str | None],
                       owners: dict[str, str]) -> dict[str, str | None]:
    """Each slug created in this batch goes to the petition created with it last; any other
    petition holding it here or before loses it (it stays counted, reachable by its id).

    Signing never gives two petitions one slug, but its database restored from a backup older
    than the stream can: then one PetitionCreated would fail every batch it is in, for ever, and
    stop the counting of every petition behind it. Rebuild.finish decides the same way."""
    taken = (await session.execute(
        update(petition_counts)
        .where(petition_counts.c.slug.in_(list(owners)), petition_counts.c.petition_id.not_in(list(owners.values())))
        .values(slug=None).returning(petition_counts.c.petition_id))).scalars().all()
    losers = {*taken, *(petition_id for petition_id, slug in created.items() if owners[slug] != petition_id)}
    if losers:
        log.warning("slug_reassigned", to=sorted(owners.values()), taken_from=sorted(losers))
    return {petition_id: slug if owners[slug] == petition_id else None for petition_id, slug in created.items()}


async def _add_to_count(session: AsyncSession, petition_id: str, delta: int, slug: str | None,
                        status: str | None = None) -> tuple[int, datetime, str]:
    statement = store_of(session).insert(petition_counts).values(
        petition_id=petition_id, slug=slug, count=delta, updated_at=datetime.now(timezone.utc), status=status or "open"
    )
    set_ = {
        "count": petition_counts.c.count + statement.excluded.count,
        "slug": func.coalesce(statement.excluded.slug, petition_counts.c.slug),
        "updated_at": statement.excluded.updated_at,
    }
    if status is not None:
        set_["status"] = case((petition_counts.c.status == "won", "won"), else_=status)
    statement = statement.on_conflict_do_update(index_elements=["petition_id"], set_=set_).returning(
        petition_counts.c.count, petition_counts.c.updated_at, petition_counts.c.status)
    count, updated_at, status = (await session.execute(statement)).one()
    return count, updated_at, status


async def _record_milestones(
    session: AsyncSession, petition_id: str, reached: Iterable[int], count: int, correlation_id: str | None
) -> list[MilestoneReached]:
    """Record milestones not recorded before, each queuing one MilestoneReached in the outbox."""
    events = []
    for milestone in reached:
        statement = (
            store_of(session).insert(milestones)
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


async def _record_thresholds(session: AsyncSession, petition_id: str, reached: Iterable[Threshold], count: int,
                             correlation_id: str | None) -> list[ThresholdReached]:
    """Record thresholds not recorded before, each queuing one ThresholdReached in the outbox: a
    count pushed back under a threshold and up again never reaches it twice."""
    events = []
    for threshold in reached:
        statement = (
            store_of(session).insert(thresholds_table)
            .values(petition_id=petition_id, threshold=threshold.count, label=threshold.label, count=count,
                    reached_at=datetime.now(timezone.utc))
            .on_conflict_do_nothing(index_elements=["petition_id", "threshold"])
            .returning(thresholds_table.c.threshold)
        )
        if (await session.execute(statement)).first() is None:
            continue
        event = ThresholdReached(
            event_id=uuid5(NAMESPACE_URL, f"groundswell:threshold:{petition_id}:{threshold.count}"),
            petition_id=petition_id, correlation_id=correlation_id, threshold=threshold.count,
            label=threshold.label, count=count)
        await session.execute(outbox.insert().values(**outbox_row(event)))
        events.append(event)
    return events


class Rebuild:
    """Recompute every count from a replay of the stream (sequences 1..up_to_seq), in the caller's
    transaction: `start`, then `track` each chunk of replayed events as it is read, then `finish`.

    Tracking rows past up_to_seq (events a live counter applied meanwhile) are kept; milestones
    already recorded are never emitted again.
    """

    def __init__(self, session: AsyncSession, up_to_seq: int, thresholds: Sequence[Threshold] = ()) -> None:
        self.session = session
        self.up_to_seq = up_to_seq
        self.thresholds = list(thresholds)
        self.slugs: dict[str, str | None] = {}
        self.owners: dict[str, str] = {}  # slug -> the petition created with it last (as apply_events decides)
        self.statuses: dict[str, str] = {}  # petition id -> its status, from the replayed events

    async def start(self) -> None:
        session = self.session
        self.slugs = dict((await session.execute(select(petition_counts.c.petition_id, petition_counts.c.slug))).all())
        self.owners = {slug: petition_id for petition_id, slug in self.slugs.items() if slug is not None}
        await session.execute(delete(processed_events).where(processed_events.c.stream_seq <= self.up_to_seq))
        await session.execute(delete(petition_counts))
        await session.execute(delete(petition_countries))
        await session.execute(delete(petition_hours))

    async def track(self, chunk: Sequence[Delivered]) -> None:
        for item in chunk:
            if item.event.type == "PetitionCreated":
                self.slugs[item.petition_id] = item.event.slug
                self.owners[item.event.slug] = item.petition_id
        for item in chunk:
            if (status := item.event.next_status(self.statuses.get(item.petition_id))) is not None:
                self.statuses[item.petition_id] = status
        records = [(item.event_id, item.petition_id, item.event.type, item.stream_seq, *item.event.where_and_when)
                   for item in chunk]
        await store_of(self.session).load(self.session, processed_events, TRACKING_COLUMNS, records,
                                          conflict=["event_id"])

    async def finish(self) -> list[MilestoneReached | ThresholdReached]:
        session = self.session
        signatures = func.sum(case((processed_events.c.type == SignatureAdded.__name__, 1),
                                   (processed_events.c.type == SignatureInvalidated.__name__, -1), else_=0))
        counts = (
            await session.execute(
                select(processed_events.c.petition_id, signatures).group_by(processed_events.c.petition_id)
            )
        ).all()
        # The country and hour tables: the same sums, by where and when each counted.
        step = case((processed_events.c.type == SignatureAdded.__name__, 1), else_=-1)
        for table, key in ((petition_countries, processed_events.c.country), (petition_hours, processed_events.c.hour)):
            await session.execute(table.insert().from_select(
                ["petition_id", key.name, "count"],
                select(processed_events.c.petition_id, key, func.sum(step))
                .where(processed_events.c.hour.is_not(None))
                .group_by(processed_events.c.petition_id, key)
                .having(func.sum(step) != 0),
            ))
        reached = []
        now = datetime.now(timezone.utc)
        for petition_id, count in sorted(counts):
            slug = self.slugs.get(petition_id)
            await session.execute(petition_counts.insert().values(
                petition_id=petition_id, slug=slug if self.owners.get(slug) == petition_id else None,
                count=count, updated_at=now,
                status=self.statuses.get(petition_id, "open")))
            reached += await _record_milestones(session, petition_id, milestones_crossed(0, count), count, None)
            reached += await _record_thresholds(session, petition_id, thresholds_crossed(0, count, self.thresholds),
                                                count, None)
        return reached


async def rebuild_projection(session: AsyncSession, replay: Sequence[Delivered], up_to_seq: int,
                             thresholds: Sequence[Threshold] = ()) -> list[MilestoneReached | ThresholdReached]:
    """Rebuild from a replay already read whole."""
    rebuild = Rebuild(session, up_to_seq, thresholds)
    await rebuild.start()
    for start in range(0, len(replay), CHUNK):
        await rebuild.track(replay[start:start + CHUNK])
    return await rebuild.finish()


# The counter's batch handler: one transaction per batch off the stream (shared/consumers.py), then ack.

# What the database answers the same way every time it is given the same events (a constraint, a
# value it cannot store), unlike an outage or a lock, which retrying outlasts. A batch refused so is
# applied one event at a time, and an event still refused on its `dead_letter_after`th delivery is
# set aside as a dead letter (`groundswell counter dead-letters`), so one bad event cannot stop the
# counting of every petition behind it.
REFUSED = (IntegrityError, DataError)


async def _nothing(counts: Sequence[Count]) -> None:
    return None


def count_signatures(sessions, relay: OutboxRelay, retry_delay_s: float,
                     dead_letters: DeadLetters,
                     on_counted: Callable[[Sequence[Count]], Awaitable[None]] = _nothing, dead_letter_after: int = 5,
                     thresholds: Sequence[Threshold] = ()):
    engine = sessions.kw["bind"]

    async def handle(messages: Sequence[Delivery]) -> None:
        """Apply a batch of counted events (COUNTING) to the counts."""
        batch, readable = [], []
        for item in messages:
            if item.unreadable is not None:  # retrying cannot make it readable: set it aside, go on
                await dead_letters.bury(item.msg, f"undecodable: {describe(item.unreadable)}")
            else:
                batch.append(Delivered(item.event, item.stream_seq))
                readable.append(item)
        messages = readable
        try:
            async with engine.begin() as conn:  # Core, not a Session: nothing here needs the ORM
                applied = await apply_events(conn, batch, thresholds)
        except REFUSED as exc:  # the same events would be refused again: find which, apply the rest
            if len(messages) > 1:
                log.exception("batch_refused", size=len(batch))
                for item in messages:
                    await handle([item])
                return
            item = messages[0]
            if item.deliveries >= dead_letter_after:
                await dead_letters.bury(item.msg, f"refused by the database: {describe(exc)}")
            else:  # a race with another counter refuses once, not every time
                log.exception("event_refused", retry_in_s=retry_delay_s)
                await item.nak(retry_delay_s)
            return
        except Exception:  # noqa: BLE001 - nothing is acked: the whole batch comes back after the delay
            log.exception("batch_failed", size=len(batch), retry_in_s=retry_delay_s)
            for item in messages:
                await item.nak(retry_delay_s)
            return
        if applied.counts:
            await on_counted(applied.counts)
        reached = applied.reached
        for event in reached:
            if event.type == "MilestoneReached":
                MILESTONES.inc()
                log.info("milestone_reached", petition_id=str(event.petition_id), milestone=event.milestone,
                         correlation_id=event.correlation_id)
            else:
                log.info("threshold_reached", petition_id=str(event.petition_id), threshold=event.threshold,
                         correlation_id=event.correlation_id)
        if reached:
            relay.wake()
        for item in messages:
            await item.ack()

    return handle
