"""The notifier's handler: ack after the effect, nak with a delay to retry."""

from collections.abc import Sequence

import structlog
from nats.aio.msg import Msg

from services.notifier.service import Notifier
from shared.events import MilestoneReached, PetitionCreated, decode_event

log = structlog.get_logger("notifier")


def notify_organizers(notifier: Notifier):
    async def handle(messages: Sequence[Msg]) -> None:
        for raw in messages:
            await _handle_one(notifier, raw)

    return handle


async def _handle_one(notifier: Notifier, raw: Msg) -> None:
    """Handle one PetitionCreated or MilestoneReached event."""
    try:
        event = decode_event(raw.data)
    except ValueError:
        log.error("undecodable_event_rejected", subject=raw.subject, stream_seq=raw.metadata.sequence.stream)
        await raw.term()
        return
    try:
        with structlog.contextvars.bound_contextvars(correlation_id=event.correlation_id):
            retry_in_s = await _react(notifier, event)
    except Exception:  # noqa: BLE001 - not acked: delivered again after the delay
        log.exception("event_failed", event_type=event.type, petition_id=str(event.petition_id))
        retry_in_s = notifier.settings.retry_base_s
    if retry_in_s is None:
        await raw.ack()
    else:
        await raw.nak(delay=retry_in_s)


async def _react(notifier: Notifier, event) -> float | None:
    if isinstance(event, PetitionCreated):
        await notifier.remember_petition(event)
    elif isinstance(event, MilestoneReached):
        return await notifier.send_milestone_email(event)
    return None
