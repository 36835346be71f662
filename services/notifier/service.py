"""Notifier use cases: remember petitions, email the organizer at each milestone and signers
their confirmation links, each once, all through the one delivery pipeline
(services/notifier/delivery.py).

Below the use cases: the notifier's reactions to events (REACTIONS, one handler per event type) and
its batch handler, which acks after the effect, naks with a delay to retry, and sets aside (dead
letters, shared/deadletters.py) what no retry can cure.
"""

import asyncio
from collections.abc import Sequence

import structlog
from sqlalchemy import select

from contract.events import (ConfirmationRequested, DecisionMakerNotified, MilestoneReached, NOTIFIER_DURABLE,
                             PetitionApproved, PetitionCreated, PetitionRejected, ResponsePublished, SignInRequested,
                             UpdatePosted, decode_event)
from services.notifier.contacts import Contacts, PetitionUnknown
from services.notifier.db import petitions
from services.notifier.delivery import (APPROVED, CONFIRMATION, DECISION_MAKER, ORGANIZER, REJECTED, SIGN_IN, Outgoing,
                                        Pipeline)
from services.notifier.emails import (confirmation_email, decision_maker_email, message_id, organizer_milestone_email,
                                      review_email, sign_in_email)
from services.notifier.fanout import FanOut, is_goal
from services.notifier.settings import NotifierSettings
from shared.consumers import Delivery, Handler, Registry
from shared.deadletters import DeadLetters, describe
from shared.lifecycle import transient
from shared.store import store_of

log = structlog.get_logger("notifier")


class Notifier:
    def __init__(self, sessions, settings: NotifierSettings, contacts: Contacts, pipeline: Pipeline,
                 fanout: FanOut | None = None) -> None:
        self.sessions = sessions
        self.contacts = contacts
        self.settings = settings
        self.pipeline = pipeline
        self.fanout = fanout

    def retry_delay(self, deliveries: int) -> float:
        """How long before an event whose email must wait is delivered again: doubling per delivery."""
        s = self.settings
        return min(s.retry_base_s * 2 ** max(0, deliveries - 1), s.retry_max_s)

    async def remember_petition(self, event: PetitionCreated) -> None:
        async with self.sessions.begin() as session:
            await session.execute(
                store_of(session).insert(petitions)
                .values(
                    petition_id=str(event.petition_id),
                    title=event.title,
                    slug=event.slug,
                )
                .on_conflict_do_nothing()
            )

    async def _petitions(self, petition_ids: set[str]) -> dict:
        async with self.sessions() as session:
            rows = (await session.execute(select(petitions).where(petitions.c.petition_id.in_(petition_ids)))).all()
        return {row.petition_id: row for row in rows}

    async def open_update(self, event) -> None:
        """An organizer's update: its supporters' fan-out is opened (and worked through by FanOut)."""
        if self.fanout is None:
            raise RuntimeError("no fan-out worker to send the update")
        await self.fanout.open_update(event)

    async def open_response(self, event: ResponsePublished) -> None:
        """A decision maker's response: its supporters' fan-out is opened (and worked through by FanOut)."""
        if self.fanout is None:
            raise RuntimeError("no fan-out worker to send the response")
        await self.fanout.open_response(event)

    async def send_to_decision_maker(self, event: DecisionMakerNotified, deliveries: int = 1) -> float | None:
        """Email the petition to its decision maker at a threshold, once (its ledger key is the petition,
        DECISION_MAKER and the threshold); returns a retry delay in seconds when it must come back."""
        petition_id = str(event.petition_id)
        petition = (await self._petitions({petition_id})).get(petition_id)
        if petition is None:
            return self.settings.retry_base_s  # PetitionCreated is on its way
        link = (await self.contacts.decision_maker_links([str(event.link_id)])).get(str(event.link_id))
        if link is None:
            log.info("decision_maker_link_not_sent", petition_id=petition_id, threshold=event.threshold)
            return None  # used, expired, or the address was taken off: nothing to send
        figures = await self.contacts.figures(petition_id)
        mid = message_id(petition_id, DECISION_MAKER, f"decision-maker.{event.threshold}",
                         self.settings.message_id_domain)
        email = Outgoing(f"decision-maker.{event.threshold}", mid, lambda: decision_maker_email(
            link, petition, figures, link.label, mail_from=self.settings.mail_from, public_url=self.settings.public_url,
            message_id_value=mid, correlation_id=event.correlation_id))
        outcome = await self.pipeline.send(petition_id, DECISION_MAKER, [email], kind="decision_maker")
        if outcome.sent:
            log.info("email_sent", petition_id=petition_id, threshold=event.threshold, recipient="decision-maker",
                     message_id=mid)
        return None if outcome.finished else self.retry_delay(deliveries)

    async def send_milestone_email(self, event: MilestoneReached, deliveries: int = 1) -> float | None:
        """Email the organizer once (and open the supporters' fan-out for a goal); returns a retry
        delay in seconds when it must come back."""
        petition_id = str(event.petition_id)
        if self.fanout is not None and is_goal(event.milestone):
            await self.fanout.open(event)
        petition = (await self._petitions({petition_id})).get(petition_id)
        if petition is None:
            log.info("milestone_before_petition", petition_id=petition_id, milestone=event.milestone)
            return self.settings.retry_base_s
        try:
            organizer = await self.contacts.organizer(petition_id)
        except PetitionUnknown:
            return self.settings.retry_base_s
        if organizer is None:
            log.info("organizer_erased_no_email", petition_id=petition_id, milestone=event.milestone)
            return None
        if not organizer.milestone_emails:  # turned off on the dashboard
            log.info("organizer_milestone_emails_off", petition_id=petition_id, milestone=event.milestone)
            return None
        mid = message_id(petition_id, event.milestone, ORGANIZER, self.settings.message_id_domain)
        email = Outgoing(ORGANIZER, mid, lambda: organizer_milestone_email(
            event, petition, organizer, mail_from=self.settings.mail_from, public_url=self.settings.public_url,
            message_id_value=mid))
        outcome = await self.pipeline.send(petition_id, event.milestone, [email], kind=ORGANIZER)
        if outcome.sent:
            log.info("email_sent", petition_id=petition_id, milestone=event.milestone, recipient=ORGANIZER,
                     message_id=mid)
        return None if outcome.finished else self.retry_delay(deliveries)

    async def send_review_email(self, event, deliveries: int = 1, *, approved: bool) -> float | None:
        """Tell the organizer the moderators' decision (PetitionApproved, `approved`, or
        PetitionRejected), once; returns a retry delay in seconds when it must come back."""
        petition_id = str(event.petition_id)
        petition = (await self._petitions({petition_id})).get(petition_id)
        if petition is None:
            return self.settings.retry_base_s  # PetitionCreated is on its way
        try:
            organizer = await self.contacts.organizer(petition_id)
        except PetitionUnknown:
            return self.settings.retry_base_s
        if organizer is None:
            return None  # erased: write to no one
        topic = APPROVED if approved else REJECTED
        mid = message_id(petition_id, topic, ORGANIZER, self.settings.message_id_domain)
        email = Outgoing(ORGANIZER, mid, lambda: review_email(
            approved, petition, organizer, mail_from=self.settings.mail_from, public_url=self.settings.public_url,
            message_id_value=mid, correlation_id=event.correlation_id))
        outcome = await self.pipeline.send(petition_id, topic, [email], kind=ORGANIZER)
        return None if outcome.finished else self.retry_delay(deliveries)

    async def send_confirmations(self, events: list[ConfirmationRequested], deliveries: int = 1) -> set:
        """Email each signer their confirmation link, once per request. Returns the events that
        must come back later (a temporary failure, or their petition not known here yet)."""
        # Only signatures still pending come back: confirmed, expired, held, invalidated or erased
        # ones meanwhile need nothing.
        wanted = await self.contacts.confirmations(sorted({str(e.signature_id) for e in events}))
        s = self.settings
        return await self._send_each(
            events, {e.event_id: wanted.get(str(e.signature_id)) for e in events}, CONFIRMATION, "confirmation",
            recipient=lambda e: f"{e.signature_id}.{e.request}",
            build=lambda c, p, m, e: confirmation_email(c, p, mail_from=s.mail_from, message_id_value=m,
                                                        correlation_id=e.correlation_id))

    async def send_sign_in_links(self, events: list[SignInRequested], deliveries: int = 1) -> set:
        """Email each requested sign-in link to its petition's organizer, once. Returns the events
        that must come back later."""
        # Only links still worth sending come back: not used, not expired, organizer not erased.
        wanted = await self.contacts.sign_in_links(sorted({str(e.link_id) for e in events}))
        s = self.settings
        return await self._send_each(
            events, {e.event_id: wanted.get(str(e.link_id)) for e in events}, SIGN_IN, "sign_in",
            recipient=lambda e: f"signin.{e.link_id.hex}",
            build=lambda c, p, m, e: sign_in_email(c, p, mail_from=s.mail_from, message_id_value=m,
                                                   correlation_id=e.correlation_id, purpose=e.purpose))

    async def _send_each(self, events, contacts: dict, topic: int, kind: str, *, recipient, build) -> set:
        """One transactional email per event whose contact signing gave (None: nothing to send),
        through the pipeline a petition at a time; returns the events that must come back later
        (a temporary failure, or their petition not known here yet)."""
        known = await self._petitions({str(e.petition_id) for e in events})
        later, by_petition = set(), {}
        for event in events:
            contact = contacts.get(event.event_id)
            if contact is None:
                continue
            petition = known.get(str(event.petition_id))
            if petition is None:
                later.add(event.event_id)
                continue
            to = recipient(event)
            mid = message_id(petition.petition_id, topic, to, self.settings.message_id_domain)
            outgoing = Outgoing(to, mid, lambda c=contact, p=petition, m=mid, e=event: build(c, p, m, e))
            by_petition.setdefault(petition.petition_id, []).append((event, outgoing))
        for petition_id, pairs in by_petition.items():
            outcome = await self.pipeline.send(petition_id, topic, [o for _, o in pairs], kind=kind)
            later |= {event.event_id for event, outgoing in pairs if outgoing.recipient in outcome.retry}
        return later


# The reactions: what the notifier does for each event type it reads.
#
# Confirmation requests and sign-in requests in a batch are sent together (one lookup of their
# addresses in signing, one pass through the delivery pipeline); other events one at a time, in
# order. Several batches are handled at once (GROUNDSWELL_EVENT_BATCHES_IN_FLIGHT): while one waits
# on signing, the database or SMTP, another uses the CPU. Order still holds where it matters: each
# batch handles its petition and milestone events under one lock, taken in the order the batches
# arrived, and its confirmations only after that, so a petition is always known before the
# confirmations that came after it are sent.

# Each handler returns None when it is done, or the seconds after which the event must come back;
# a `together` handler gets a list of events and returns the ids of those that must come back.
REACTIONS = Registry(NOTIFIER_DURABLE, "Emails confirmation links, organizers' sign-in links and the moderators' "
                                       "decisions, the organizer once per milestone, the decision maker once per "
                                       "threshold, and supporters at goals, with the organizer's updates and with "
                                       "decision makers' responses.", decode_event)


@REACTIONS.on(PetitionCreated)
async def _remember(notifier: Notifier, event: PetitionCreated, deliveries: int) -> None:
    await notifier.remember_petition(event)


@REACTIONS.on(MilestoneReached)
async def _milestone(notifier: Notifier, event: MilestoneReached, deliveries: int) -> float | None:
    return await notifier.send_milestone_email(event, deliveries)


@REACTIONS.on(UpdatePosted)
async def _update(notifier: Notifier, event: UpdatePosted, deliveries: int) -> None:
    await notifier.open_update(event)


@REACTIONS.on(DecisionMakerNotified)
async def _decision_maker(notifier: Notifier, event: DecisionMakerNotified, deliveries: int) -> float | None:
    return await notifier.send_to_decision_maker(event, deliveries)


@REACTIONS.on(ResponsePublished)
async def _response(notifier: Notifier, event: ResponsePublished, deliveries: int) -> None:
    await notifier.open_response(event)


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
