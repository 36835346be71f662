"""The counter's batch handler: one transaction per batch off the stream, then ack.

The batch comes from FastStream (shared/consumers.py), decoded by the COUNTING registry
(services/counter/projection.py)."""

from collections.abc import Awaitable, Callable, Sequence

import structlog
from sqlalchemy.exc import DataError, IntegrityError

from services.counter.projection import Delivered, apply_events
from shared.consumers import Delivery
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
                applied = await apply_events(conn, batch)
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
        MILESTONES.inc(len(reached))
        for event in reached:
            log.info("milestone_reached", petition_id=str(event.petition_id), milestone=event.milestone,
                     correlation_id=event.correlation_id)
        if reached:
            relay.wake()
        for item in messages:
            await item.ack()

    return handle
