"""Supporter fan-out: one email per (supporter, goal milestone), per (supporter, organizer's update)
and per (supporter, decision maker's response), resumable after any crash.

A goal milestone (100, 200, 500, ...) opens a fan-out row; so does an organizer's update number n
(UpdatePosted), under topic -n, and a decision maker's response at threshold t (ResponsePublished),
under topic -(RESPONSE_TOPICS + t), so none of them share a ledger key. A worker holding its lease reads
recipients from signing page by page (signature-id order) and sends each page through the
delivery pipeline (services/notifier/delivery.py: ledger, throttle, staged SMTP). The row's cursor moves past a page only when every recipient
on it is sent or permanently rejected, so a killed worker resumes at that page and the ledger
skips whoever was already sent.
"""

import asyncio
import secrets
import time
from datetime import datetime, timezone

import structlog
from sqlalchemy import and_, or_, select, update

from services.notifier.contacts import Contacts, Organizer, Recipient, Recipients
from services.notifier.db import fanouts, petitions
from services.notifier.emails import (message_id, supporter_milestone_email, supporter_response_email,
                                      supporter_update_email)
from services.notifier.delivery import Outgoing, Pipeline
from services.notifier.settings import NotifierSettings
from shared.aio import wait_event
from shared.db import as_utc
from shared.store import store_of
from contract.events import MilestoneReached, ResponsePublished, UpdatePosted
from contract.counts import FIRST_GOAL

log = structlog.get_logger("fanout")


def is_goal(milestone: int) -> bool:
    """Supporters hear about goals (100, 200, 500, ...), not the organizer's early steps."""
    return milestone >= FIRST_GOAL


class FanOut:
    def __init__(self, sessions, settings: NotifierSettings, contacts: Contacts, pipeline: Pipeline) -> None:
        self.sessions = sessions
        self.settings = settings
        self.lease_s = settings.ack_wait_s
        self.pipeline = pipeline
        self.contacts = contacts
        self.wake = asyncio.Event()

    async def open(self, event: MilestoneReached) -> None:
        """Record that this milestone's supporters are to be emailed (idempotent)."""
        await self._open(event, event.milestone, count=event.count, next_goal=event.next_goal)

    async def open_update(self, event: UpdatePosted) -> None:
        """Record that an organizer's update is to be emailed to the supporters who opted in by
        the time it was posted (idempotent): topic -number."""
        await self._open(event, update_topic(event.number))

    async def open_response(self, event: ResponsePublished) -> None:
        """Record that a decision maker's response is to be emailed to the supporters who opted in by
        the time it was published (idempotent)."""
        await self._open(event, response_topic(event.threshold))

    async def _open(self, event, topic: int, count: int = 0, next_goal: int = 0) -> None:
        """A fan-out row for this topic, to those who opted in by the event's time; none again."""
        async with self.sessions.begin() as session:
            await session.execute(
                store_of(session).insert(fanouts)
                .values(petition_id=str(event.petition_id), milestone=topic, count=count, next_goal=next_goal,
                        signed_before=event.occurred_at, correlation_id=event.correlation_id, cursor="")
                .on_conflict_do_nothing()
            )
        self.wake.set()

    async def run(self) -> None:
        """Forever: take an open fan-out whose lease is free and work through it."""
        while True:
            # Cleared before looking, not after finding nothing: an open() that lands while the
            # claim runs must wake the next wait, not be lost to it (which delayed a fan-out by up
            # to the 1 s poll).
            self.wake.clear()
            job = await self._claim()
            if job is None:
                await wait_event(self.wake, 1.0)
                continue
            token, row = job
            try:
                with structlog.contextvars.bound_contextvars(correlation_id=row.correlation_id):
                    await self._work(token, row)
            except Exception:  # noqa: BLE001 - the lease runs out and the fan-out is taken again
                log.exception("fanout_failed", petition_id=row.petition_id, milestone=row.milestone)
                await asyncio.sleep(self.settings.retry_base_s)

    # --- one fan-out ---------------------------------------------------------------------------

    async def _claim(self):
        token, now = secrets.token_hex(8), time.time()
        async with self.sessions.begin() as session:
            candidate = (await session.execute(
                select(fanouts.c.petition_id, fanouts.c.milestone)
                .where(fanouts.c.done_at.is_(None),
                       or_(fanouts.c.claimed_until_s.is_(None), fanouts.c.claimed_until_s < now))
                .order_by(fanouts.c.milestone)
                .limit(1)
            )).first()
            if candidate is None:
                return None
            taken = await session.execute(
                update(fanouts)
                .where(self._key(candidate.petition_id, candidate.milestone), fanouts.c.done_at.is_(None),
                       or_(fanouts.c.claimed_until_s.is_(None), fanouts.c.claimed_until_s < now))
                .values(claim_token=token, claimed_until_s=now + self.lease_s)
            )
            if taken.rowcount != 1:
                return None
            row = (await session.execute(
                select(fanouts).where(self._key(candidate.petition_id, candidate.milestone))
            )).one()
        return token, row

    @staticmethod
    def _key(petition_id: str, milestone: int):
        return and_(fanouts.c.petition_id == petition_id, fanouts.c.milestone == milestone)

    async def _renew(self, token: str, row, **values) -> None:
        async with self.sessions.begin() as session:
            renewed = await session.execute(
                update(fanouts)
                .where(self._key(row.petition_id, row.milestone), fanouts.c.claim_token == token)
                .values(**{"claimed_until_s": time.time() + self.lease_s, **values})
            )
        if renewed.rowcount != 1:
            raise RuntimeError("lost the fan-out lease")  # another worker took over; it resumes

    async def _petition(self, petition_id: str):
        """What the notifier remembers of the petition (PetitionCreated), or None."""
        async with self.sessions() as session:
            return (await session.execute(select(petitions).where(petitions.c.petition_id == petition_id))).first()

    async def _work(self, token: str, row) -> None:
        petition = await self._petition(row.petition_id)
        if petition is None:
            raise RuntimeError("petition not known yet")  # PetitionCreated is on its way
        organizer = await self.contacts.organizer(row.petition_id)  # None once erased
        if (threshold := threshold_of(row.milestone)) is not None:
            update = await self.contacts.response(row.petition_id, threshold)
        else:
            update = await self.contacts.update(row.petition_id, -row.milestone) if row.milestone < 0 else None
        cursor = row.cursor
        log.info("fanout_started", petition_id=row.petition_id, milestone=row.milestone, resume_after=cursor or None)
        sent_total = 0
        while True:
            page = await self._page(row, cursor)
            pending = page.recipients
            delay = self.settings.retry_base_s
            while pending:
                pending, sent = await self._send_page(token, row, petition, organizer, pending, update)
                sent_total += sent
                if pending:
                    log.warning("fanout_deferred", petition_id=row.petition_id, milestone=row.milestone,
                                pending=len(pending), retry_in_s=delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.settings.retry_max_s)
                    await self._renew(token, row)
            if page.next is None:
                await self._renew(token, row, cursor=page.recipients[-1].signature_id if page.recipients else cursor,
                                  done_at=datetime.now(timezone.utc), claimed_until_s=None)
                log.info("fanout_done", petition_id=row.petition_id, milestone=row.milestone, sent=sent_total)
                return
            cursor = page.next
            await self._renew(token, row, cursor=cursor)

    async def _page(self, row, cursor: str) -> Recipients:
        return await self.contacts.recipients(row.petition_id, as_utc(row.signed_before), cursor,
                                              self.settings.supporter_page)

    async def _send_page(self, token: str, row, petition, organizer: Organizer | None, recipients: list[Recipient],
                         update=None):
        """Send what is due on this page; returns (recipients to try again, emails sent)."""
        domain, s = self.settings.message_id_domain, self.settings

        def outgoing(r: Recipient) -> Outgoing:
            mid = message_id(row.petition_id, row.milestone, r.signature_id, domain)
            if threshold_of(row.milestone) is not None:
                return Outgoing(r.signature_id, mid, lambda: supporter_response_email(
                    update, petition, r, mail_from=s.mail_from, public_url=s.public_url, message_id_value=mid,
                    correlation_id=row.correlation_id))
            if update is not None:
                return Outgoing(r.signature_id, mid, lambda: supporter_update_email(
                    update, petition, organizer, r, mail_from=s.mail_from, public_url=s.public_url,
                    message_id_value=mid, correlation_id=row.correlation_id))
            return Outgoing(r.signature_id, mid, lambda: supporter_milestone_email(
                row, petition, organizer, r, mail_from=s.mail_from, public_url=s.public_url, message_id_value=mid))

        kind = "response" if threshold_of(row.milestone) is not None else "update" if update is not None else "supporter"
        outcome = await self.pipeline.send(row.petition_id, row.milestone, [outgoing(r) for r in recipients],
                                           kind=kind, bulk=True, after_chunk=lambda: self._renew(token, row))
        return [r for r in recipients if r.signature_id in outcome.retry], len(outcome.sent)


def update_topic(number: int) -> int:
    """The ledger and fan-out topic of an organizer's update: below every other (milestones >= 10,
    confirmation links 0, sign-in links 1)."""
    return -number


RESPONSE_TOPICS = 1_000_000_000  # below every update number


def response_topic(threshold: int) -> int:
    """The ledger and fan-out topic of a decision maker's response at `threshold`."""
    return -(RESPONSE_TOPICS + threshold)


def threshold_of(topic: int) -> int | None:
    """The threshold of a response topic; None for any other topic."""
    return -topic - RESPONSE_TOPICS if topic < -RESPONSE_TOPICS else None
