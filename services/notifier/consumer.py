"""The notifier's handler: ack after the effect, nak with a delay to retry, and set aside (dead
letters, shared/deadletters.py) what no retry can cure.

Confirmation requests in a fetched batch are sent together (one lookup of their addresses in
signing, one pass through the delivery pipeline); other events one at a time, in order.

Several batches are handled at once (GROUNDSWELL_EVENT_BATCHES_IN_FLIGHT): while one waits on
signing, the database or SMTP, another uses the CPU. Order still holds where it matters: each
batch handles its petition and milestone events under one lock, taken in the order the batches
were fetched, and its confirmations only after that, so a petition is always known before the
confirmations fetched after it are sent."""

import asyncio
from collections.abc import Sequence

import structlog
from nats.aio.msg import Msg

from services.notifier.service import Notifier
from shared.deadletters import DeadLetters, describe
from shared.events import (ConfirmationRequested, MilestoneReached, PetitionApproved, PetitionCreated,
                           PetitionRejected, SignInRequested, UpdatePosted, decode_event)
from shared.lifecycle import transient

log = structlog.get_logger("notifier")

NOTIFIED_TYPES = ("PetitionCreated", "MilestoneReached", "ConfirmationRequested", "SignInRequested", "UpdatePosted",
                  "PetitionApproved", "PetitionRejected")


def notify(notifier: Notifier, dead_letters: DeadLetters):
    ordered = asyncio.Lock()  # FIFO: batches take it in the order their handlers started

    async def handle(messages: Sequence[Msg]) -> None:
        confirmations: list[tuple[Msg, ConfirmationRequested]] = []
        sign_ins: list[tuple[Msg, SignInRequested]] = []
        async with ordered:  # taken before the first await, so in fetch order
            for raw in messages:
                try:
                    event = decode_event(raw.data)
                except ValueError as exc:  # no retry makes it readable
                    await dead_letters.bury(raw, f"undecodable: {describe(exc)}")
                    continue
                if isinstance(event, ConfirmationRequested):
                    confirmations.append((raw, event))
                elif isinstance(event, SignInRequested):
                    sign_ins.append((raw, event))
                else:
                    await _handle_one(notifier, dead_letters, raw, event)
        if confirmations:
            await _together(notifier.send_confirmations, notifier, dead_letters, confirmations)
        if sign_ins:
            await _together(notifier.send_sign_in_links, notifier, dead_letters, sign_ins)

    return handle


async def _handle_one(notifier: Notifier, dead_letters: DeadLetters, raw: Msg, event) -> None:
    """Handle one PetitionCreated or MilestoneReached event."""
    deliveries = raw.metadata.num_delivered or 1
    try:
        with structlog.contextvars.bound_contextvars(correlation_id=event.correlation_id):
            retry_in_s = await _react(notifier, event, deliveries)
    except Exception as exc:  # noqa: BLE001 - not acked: delivered again after the delay
        log.exception("event_failed", event_type=event.type, petition_id=str(event.petition_id),
                      deliveries=deliveries)
        if not transient(exc) and deliveries >= notifier.settings.dead_letter_after:
            await dead_letters.bury(raw, describe(exc))
            return
        retry_in_s = notifier.retry_delay(deliveries)
    if retry_in_s is None:
        await raw.ack()
    else:
        await raw.nak(delay=retry_in_s)


async def _together(send, notifier: Notifier, dead_letters: DeadLetters, batch: list[tuple[Msg, object]]) -> None:
    """Emails of one kind (confirmation or sign-in links) from one fetched batch, sent together;
    `send` returns the event ids that must come back later."""
    deliveries = max(raw.metadata.num_delivered or 1 for raw, _ in batch)
    try:
        later = await send([event for _, event in batch], deliveries)
    except Exception as exc:  # noqa: BLE001 - not acked: delivered again after the delay
        log.exception("emails_failed", events=len(batch), deliveries=deliveries)
        if not transient(exc) and deliveries >= notifier.settings.dead_letter_after:
            for raw, _ in batch:
                await dead_letters.bury(raw, describe(exc))
            return
        later = {event.event_id for _, event in batch}
    for raw, event in batch:
        if event.event_id in later:
            await raw.nak(delay=notifier.retry_delay(raw.metadata.num_delivered or 1))
        else:
            await raw.ack()


def retry_handler(notifier: Notifier):
    """What `groundswell notifier dead-letters --retry` runs for each payload: the same reaction,
    where a failure (or a send that must wait) is an error to report."""

    async def handle(payload: bytes) -> None:
        event = decode_event(payload)
        with structlog.contextvars.bound_contextvars(correlation_id=event.correlation_id):
            if (retry_in_s := await _react(notifier, event)) is not None:
                raise RuntimeError(f"not done yet: try again in {retry_in_s:.0f} s (see the notifier's log)")

    return handle


async def _react(notifier: Notifier, event, deliveries: int = 1) -> float | None:
    if isinstance(event, PetitionCreated):
        await notifier.remember_petition(event)
    elif isinstance(event, MilestoneReached):
        return await notifier.send_milestone_email(event, deliveries)
    elif isinstance(event, UpdatePosted):
        await notifier.open_update(event)
    elif isinstance(event, (PetitionApproved, PetitionRejected)):
        return await notifier.send_review_email(event, deliveries)
    elif isinstance(event, ConfirmationRequested):
        if await notifier.send_confirmations([event], deliveries):
            return notifier.retry_delay(deliveries)
    elif isinstance(event, SignInRequested):
        if await notifier.send_sign_in_links([event], deliveries):
            return notifier.retry_delay(deliveries)
    return None
