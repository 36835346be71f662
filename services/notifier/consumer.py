"""The notifier's handler: ack after the effect, nak with a delay to retry, and set aside (dead
letters, shared/deadletters.py) what no retry can cure."""

from collections.abc import Sequence

import structlog
from nats.aio.msg import Msg

from services.notifier.service import Notifier
from shared.deadletters import DeadLetters, describe
from shared.events import MilestoneReached, PetitionCreated, decode_event
from shared.lifecycle import transient

log = structlog.get_logger("notifier")


def notify_organizers(notifier: Notifier, dead_letters: DeadLetters):
    async def handle(messages: Sequence[Msg]) -> None:
        for raw in messages:
            await _handle_one(notifier, dead_letters, raw)

    return handle


async def _handle_one(notifier: Notifier, dead_letters: DeadLetters, raw: Msg) -> None:
    """Handle one PetitionCreated or MilestoneReached event."""
    try:
        event = decode_event(raw.data)
    except ValueError as exc:  # no retry makes it readable
        await dead_letters.bury(raw, f"undecodable: {describe(exc)}")
        return
    try:
        with structlog.contextvars.bound_contextvars(correlation_id=event.correlation_id):
            retry_in_s = await _react(notifier, event)
    except Exception as exc:  # noqa: BLE001 - not acked: delivered again after the delay
        log.exception("event_failed", event_type=event.type, petition_id=str(event.petition_id),
                      deliveries=raw.metadata.num_delivered)
        if not transient(exc) and (raw.metadata.num_delivered or 1) >= notifier.settings.dead_letter_after:
            await dead_letters.bury(raw, describe(exc))
            return
        retry_in_s = notifier.settings.retry_base_s
    if retry_in_s is None:
        await raw.ack()
    else:
        await raw.nak(delay=retry_in_s)


def retry_handler(notifier: Notifier):
    """What `groundswell notifier dead-letters --retry` runs for each payload: the same reaction,
    where a failure (or a send that must wait) is an error to report."""

    async def handle(payload: bytes) -> None:
        event = decode_event(payload)
        with structlog.contextvars.bound_contextvars(correlation_id=event.correlation_id):
            if (retry_in_s := await _react(notifier, event)) is not None:
                raise RuntimeError(f"not done yet: try again in {retry_in_s:.0f} s (see the notifier's log)")

    return handle


async def _react(notifier: Notifier, event) -> float | None:
    if isinstance(event, PetitionCreated):
        await notifier.remember_petition(event)
    elif isinstance(event, MilestoneReached):
        return await notifier.send_milestone_email(event)
    return None
