"""Signing's own reactions to events (the durable consumer `signing`): a threshold reached is recorded
for the page and starts the decision maker's link (services/signing/decisions.py)."""

from collections.abc import Callable, Sequence

import structlog

from contract.events import SIGNING_DURABLE, ThresholdReached, decode_event
from services.signing.decisions import Decisions
from shared.consumers import Delivery, Registry

log = structlog.get_logger("signing.reactions")

ACK_WAIT_S = 30.0
RETRY_S = 2.0
UNKNOWN_PETITION_RETRY_S = 60.0

REACTIONS = Registry(SIGNING_DURABLE, "Records each threshold a petition reached and issues its decision maker's "
                                      "single-use link to respond (DecisionMakerNotified).", decode_event)


@REACTIONS.on(ThresholdReached)
async def record_threshold(decisions: Decisions, event: ThresholdReached) -> bool:
    return await decisions.record_threshold(event)


def react(decisions: Decisions, changed: Callable[[str], None]):
    """The batch handler: each event's reaction, then its ack (a failure: it comes back after a delay).
    `changed(petition_id)` re-renders the petition's pages in this process at once."""

    async def handle(batch: Sequence[Delivery]) -> None:
        for item in batch:
            if item.unreadable is not None:
                log.error("event_unreadable", error=str(item.unreadable))
                await item.msg.term()  # no retry makes it readable
                continue
            event = item.event
            try:
                if await REACTIONS.handler(event.type).run(decisions, event):
                    changed(str(event.petition_id))
            except LookupError:
                log.warning("threshold_for_unknown_petition", petition_id=str(event.petition_id),
                            retry_in_s=UNKNOWN_PETITION_RETRY_S)
                await item.nak(UNKNOWN_PETITION_RETRY_S)
                continue
            except Exception:  # noqa: BLE001 - not acked: delivered again after the delay
                log.exception("reaction_failed", event_type=event.type, petition_id=str(event.petition_id),
                              retry_in_s=RETRY_S)
                await item.nak(RETRY_S)
                continue
            await item.ack()

    return handle
