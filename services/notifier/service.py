"""Notifier use cases: remember petitions, email the organizer at each milestone and signers
their confirmation links, each once, all through the one delivery pipeline
(services/notifier/delivery.py)."""

import structlog
from sqlalchemy import select

from services.notifier.contacts import Contacts, PetitionUnknown
from services.notifier.db import petitions
from services.notifier.delivery import Outgoing, Pipeline
from services.notifier.emails import (confirmation_email, message_id, organizer_milestone_email, review_email,
                                      sign_in_email)
from services.notifier.fanout import FanOut, is_goal
from services.notifier.ledger import APPROVED, CONFIRMATION, ORGANIZER, REJECTED, SIGN_IN
from services.notifier.settings import NotifierSettings
from shared.db import insert
from shared.events import ConfirmationRequested, MilestoneReached, PetitionCreated, SignInRequested

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
                insert(session.bind.dialect.name, petitions)
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
