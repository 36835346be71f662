"""The counter's batch handler: one transaction per fetched batch, then ack."""

from collections.abc import Awaitable, Callable, Sequence

import structlog
from nats.aio.msg import Msg
from sqlalchemy.exc import DataError, IntegrityError

from services.counter.projection import Delivered, apply_events, counted
from shared.counts import Count
from shared.deadletters import DeadLetters, describe
from shared.metrics import MILESTONES
from shared.outbox import OutboxRelay

log = structlog.get_logger("counter")

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
                     on_counted: Callable[[Sequence[Count]], Awaitable[None]] = _nothing, dead_letter_after: int = 5):
    engine = sessions.kw["bind"]

    async def handle(messages: Sequence[Msg]) -> None:
        """Apply a batch of PetitionCreated and SignatureAdded events to the counts."""
        batch, readable = [], []
        for raw in messages:
            try:
                batch.append(delivered(raw))
            except ValueError as exc:  # retrying cannot make it readable: set it aside, go on
                await dead_letters.bury(raw, f"undecodable: {describe(exc)}")
            else:
                readable.append(raw)
        messages = readable
        try:
            async with engine.begin() as conn:  # Core, not a Session: nothing here needs the ORM
                applied = await apply_events(conn, batch)
        except REFUSED as exc:  # the same events would be refused again: find which, apply the rest
            if len(messages) > 1:
                log.exception("batch_refused", size=len(batch))
                for raw in messages:
                    await handle([raw])
                return
            raw = messages[0]
            if (raw.metadata.num_delivered or 1) >= dead_letter_after:
                await dead_letters.bury(raw, f"refused by the database: {describe(exc)}")
            else:  # a race with another counter refuses once, not every time
                log.exception("event_refused", retry_in_s=retry_delay_s)
                await raw.nak(delay=retry_delay_s)
            return
        except Exception:  # noqa: BLE001 - nothing is acked: the whole batch comes back after the delay
            log.exception("batch_failed", size=len(batch), retry_in_s=retry_delay_s)
            for raw in messages:
                await raw.nak(delay=retry_delay_s)
            return
        if applied.counts:
            await on_counted(applied.counts)
        reached = applied.reached
        MILESTONES.inc(len(reached))
        for event in reached:
            log.info("milestone_reached", petition_id=str(event.petition_id), milestone=event.milestone,
                     correlation_id=event.correlation_id)
        if reached:
            relay.wake()
        for raw in messages:
            await raw.ack()

    return handle


def delivered(raw: Msg) -> Delivered:
    """The counting view of a message off the stream; ValueError when it is not readable."""
    return Delivered(counted(raw.data), raw.metadata.sequence.stream)
