"""Notifier use cases: remember organizers, send each milestone email once."""

import asyncio

import aiosmtplib
import structlog
from sqlalchemy import select

from services.notifier.contacts import Contacts, PetitionUnknown
from services.notifier.db import petitions
from services.notifier.emails import message_id, organizer_milestone_email
from services.notifier.fanout import FanOut, is_goal
from services.notifier.ledger import DeliveryKey, Ledger
from services.notifier.settings import NotifierSettings
from shared.db import insert
from shared.events import MilestoneReached, PetitionCreated
from shared.metrics import EMAILS

log = structlog.get_logger("notifier")

ORGANIZER = "organizer"
SMTP_ERRORS = (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError)


class Notifier:
    def __init__(self, sessions, settings: NotifierSettings, contacts: Contacts, fanout: FanOut | None = None) -> None:
        self.sessions = sessions
        self.contacts = contacts
        self.settings = settings
        self.ledger = Ledger(sessions, lease_s=settings.ack_wait_s)
        self.fanout = fanout

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

    async def send_milestone_email(self, event: MilestoneReached) -> float | None:
        """Email the organizer once (and open the supporters' fan-out for a goal); returns a retry
        delay in seconds when it must come back."""
        petition_id = str(event.petition_id)
        if self.fanout is not None and is_goal(event.milestone):
            await self.fanout.open(event)
        async with self.sessions() as session:
            petition = (await session.execute(select(petitions).where(petitions.c.petition_id == petition_id))).first()
        if petition is None:
            log.info("milestone_before_petition", petition_id=petition_id, milestone=event.milestone)
            return self.settings.retry_base_s
        key = DeliveryKey(petition_id, event.milestone, ORGANIZER)
        mid = message_id(petition_id, event.milestone, ORGANIZER, self.settings.message_id_domain)
        claim = await self.ledger.claim(key, mid)
        if claim.sent:
            return None
        if claim.token is None:
            return claim.held_for_s
        try:
            organizer = await self.contacts.organizer(petition_id)
        except PetitionUnknown:
            await self.ledger.release(key, claim.token, "signing does not know the petition yet")
            return self.settings.retry_base_s
        except BaseException:
            await self.ledger.release(key, claim.token, "signing's organizer contact unreachable")
            raise
        if organizer is None:
            await self.ledger.release(key, claim.token, "the organizer was erased")
            log.info("organizer_erased_no_email", petition_id=petition_id, milestone=event.milestone)
            return None
        email = organizer_milestone_email(
            event, petition, organizer, mail_from=self.settings.mail_from, public_url=self.settings.public_url,
            message_id_value=mid,
        )
        if claim.attempt > 1:
            EMAILS.labels("retried").inc()
        try:
            await self._send(email)
        except SMTP_ERRORS as exc:
            EMAILS.labels("failed").inc()
            attempts = await self.ledger.release(key, claim.token, f"{type(exc).__name__}: {exc}")
            delay_s = min(self.settings.retry_base_s * 2 ** (attempts - 1), self.settings.retry_max_s)
            log.warning("email_failed", petition_id=petition_id, milestone=event.milestone, attempts=attempts,
                        error=type(exc).__name__, retry_in_s=delay_s)
            return delay_s
        # A crash right here, after the server accepted and before this mark, is the one window
        # that can repeat an email; the repeat carries the same Message-ID.
        await self.ledger.mark_sent(key, claim.token)
        EMAILS.labels("sent").inc()
        log.info("email_sent", petition_id=petition_id, milestone=event.milestone, recipient=ORGANIZER,
                 message_id=mid)
        return None

    async def _send(self, email) -> None:
        s = self.settings
        await aiosmtplib.send(
            email.data,
            sender=email.sender,
            recipients=list(email.recipients),
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username,
            password=s.smtp_password,
            start_tls=s.smtp_starttls,
            timeout=s.smtp_timeout_s,
        )
