"""The notifier's reactions to events (REACTIONS) and its batch handler: ack after the effect, nak
with a delay to retry, and set aside (dead letters, shared/deadletters.py) what no retry can cure.

Confirmation requests and sign-in requests in a batch are sent together (one lookup of their
addresses in signing, one pass through the delivery pipeline); other events one at a time, in order.

Several batches are handled at once (GROUNDSWELL_EVENT_BATCHES_IN_FLIGHT): while one waits on
signing, the database or SMTP, another uses the CPU. Order still holds where it matters: each
batch handles its petition and milestone events under one lock, taken in the order the batches
arrived, and its confirmations only after that, so a petition is always known before the
confirmations that came after it are sent."""

import asyncio
from collections.abc import Sequence

import structlog

from services.notifier.service import Notifier
from shared.consumers import Delivery, Handler, Registry
from shared.deadletters import DeadLetters, describe
from shared.events import (ConfirmationRequested, MilestoneReached, PetitionApproved, PetitionCreated,
                           PetitionRejected, SignInRequested, UpdatePosted, decode_event)
from shared.lifecycle import transient
from shared.subjects import NOTIFIER_DURABLE

log = structlog.get_logger("notifier")

# Each handler returns None when it is done, or the seconds after which the event must come back;
# a `together` handler gets a list of events and returns the ids of those that must come back.
REACTIONS = Registry(NOTIFIER_DURABLE, "Emails confirmation links, organizers' sign-in links and the moderators' "
                                       "decisions, the organizer once per milestone, and supporters at goals and "
                                       "with the organizer's updates.", decode_event)


@REACTIONS.on(PetitionCreated)
async def _remember(notifier: Notifier, event: PetitionCreated, deliveries: int) -> None:
    await notifier.remember_petition(event)


@REACTIONS.on(MilestoneReached)
async def _milestone(notifier: Notifier, event: MilestoneReached, deliveries: int) -> float | None:
    return await notifier.send_milestone_email(event, deliveries)


@REACTIONS.on(UpdatePosted)
async def _update(notifier: Notifier, event: UpdatePosted, deliveries: int) -> None:
    await notifier.open_update(event)


@REACTIONS.on(PetitionApproved)
async def _approved(notifier: Notifier, event: PetitionApproved, deliveries: int) -> float | None:
    return await notifier.send_review_email(event, deliveries, approved=True)


@REACTIONS.on(PetitionRejected)
async def _rejected(notifier: Notifier, event: PetitionRejected, deliveries: int) -> float | None:
    return await notifier.send_review_email(event, deliveries, approved=False)


@REACTIONS.on(ConfirmationRequested, together=True)
async def _confirm(notifier: Notifier, events: list[ConfirmationRequested], deliveries: int) -> set:
    return await notifier.send_confirmations(events, deliveries)


@REACTIONS.on(SignInRequested, together=True)
async def _sign_in(notifier: Notifier, events: list[SignInRequested], deliveries: int) -> set:
    return await notifier.send_sign_in_links(events, deliveries)


def notify(notifier: Notifier, dead_letters: DeadLetters, in_flight: int = 1):
    """The batch handler. It returns once the batch holds its place in line (up to `in_flight`
    batches are handled at once) and acks or naks each event when its effect is done."""
    ordered = asyncio.Lock()  # FIFO: batches take it in the order their tasks started
    slots = asyncio.Semaphore(in_flight)
    running: set[asyncio.Task] = set()

    async def run(batch: Sequence[Delivery]) -> None:
        try:
            together: dict[Handler, list[Delivery]] = {}
            async with ordered:  # taken before the first await, so in arrival order
                for item in batch:
                    if item.unreadable is not None:  # no retry makes it readable
                        await dead_letters.bury(item.msg, f"undecodable: {describe(item.unreadable)}")
                        continue
                    handler = REACTIONS.handler(item.event.type)
                    if handler.together:
                        together.setdefault(handler, []).append(item)
                    else:
                        await _handle_one(notifier, dead_letters, handler, item)
            for handler, items in together.items():
                await _together(notifier, dead_letters, handler, items)
        except Exception:  # noqa: BLE001 - what is not acked comes back after ack_wait
            log.exception("batch_failed", events=len(batch))
        finally:
            slots.release()

    async def handle(batch: Sequence[Delivery]) -> None:
        await slots.acquire()  # the next batch is fetched once one of the running ones is done
        task = asyncio.create_task(run(batch))
        running.add(task)
        task.add_done_callback(running.discard)

    return handle


async def _handle_one(notifier: Notifier, dead_letters: DeadLetters, handler: Handler, item: Delivery) -> None:
    event, deliveries = item.event, item.deliveries
    try:
        with structlog.contextvars.bound_contextvars(correlation_id=event.correlation_id):
            retry_in_s = await handler.run(notifier, event, deliveries)
    except Exception as exc:  # noqa: BLE001 - not acked: delivered again after the delay
        log.exception("event_failed", event_type=event.type, petition_id=str(event.petition_id),
                      deliveries=deliveries)
        if not transient(exc) and deliveries >= notifier.settings.dead_letter_after:
            await dead_letters.bury(item.msg, describe(exc))
            return
        retry_in_s = notifier.retry_delay(deliveries)
    if retry_in_s is None:
        await item.ack()
    else:
        await item.nak(retry_in_s)


async def _together(notifier: Notifier, dead_letters: DeadLetters, handler: Handler, batch: list[Delivery]) -> None:
    """Emails of one kind (confirmation or sign-in links) from one batch, sent together."""
    deliveries = max(item.deliveries for item in batch)
    try:
        later = await handler.run(notifier, [item.event for item in batch], deliveries)
    except Exception as exc:  # noqa: BLE001 - not acked: delivered again after the delay
        log.exception("emails_failed", events=len(batch), deliveries=deliveries)
        if not transient(exc) and deliveries >= notifier.settings.dead_letter_after:
            for item in batch:
                await dead_letters.bury(item.msg, describe(exc))
            return
        later = {item.event.event_id for item in batch}
    for item in batch:
        if item.event.event_id in later:
            await item.nak(notifier.retry_delay(item.deliveries))
        else:
            await item.ack()


def retry_handler(notifier: Notifier):
    """What `groundswell notifier dead-letters --retry` runs for each payload: the same reaction,
    where a failure (or a send that must wait) is an error to report."""

    async def handle(payload: bytes) -> None:
        event = decode_event(payload)
        handler = REACTIONS.handler(event.type)
        with structlog.contextvars.bound_contextvars(correlation_id=event.correlation_id):
            if handler.together:
                retry_in_s = notifier.retry_delay(1) if await handler.run(notifier, [event], 1) else None
            else:
                retry_in_s = await handler.run(notifier, event, 1)
        if retry_in_s is not None:
            raise RuntimeError(f"not done yet: try again in {retry_in_s:.0f} s (see the notifier's log)")

    return handle
