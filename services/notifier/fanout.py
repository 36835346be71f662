"""Supporter fan-out: one email per (supporter, goal milestone), resumable after any crash.

A goal milestone (100, 200, 500, ...) opens a fan-out row. A worker holding its lease reads
recipients from signing page by page (signature-id order), and for each chunk: claims ledger
rows, stages the emails over SMTP (everything but the final '.'), marks them sent in one
transaction, then finishes them. The row's cursor moves past a page only when every recipient
on it is sent or permanently rejected, so a killed worker resumes at that page and the ledger
skips whoever was already sent.
"""

import asyncio
import secrets
import time
from datetime import datetime, timezone

import structlog
from sqlalchemy import and_, or_, select, update

from services.notifier.contacts import Contacts, Organizer, Page, Recipient
from services.notifier.db import fanouts, petitions
from services.notifier.emails import message_id, supporter_milestone_email
from services.notifier.ledger import BatchLedger
from services.notifier.settings import NotifierSettings
from services.notifier.smtp import Deferred, Rejected, SmtpPool
from shared.aio import wait_event
from shared.db import insert
from shared.events import MilestoneReached
from shared.metrics import EMAILS
from shared.milestones import FIRST_GOAL

log = structlog.get_logger("fanout")


def is_goal(milestone: int) -> bool:
    """Supporters hear about goals (100, 200, 500, ...), not the organizer's early steps."""
    return milestone >= FIRST_GOAL


class Throttle:
    """At most `rate` emails per second, on average: each batch waits until the previous ones'
    share of time has passed."""

    def __init__(self, rate: float, clock=time.monotonic, sleep=asyncio.sleep) -> None:
        self.rate = rate
        self.clock = clock
        self.sleep = sleep
        self.next_at = 0.0

    async def take(self, n: int) -> None:
        now = self.clock()
        wait = self.next_at - now
        self.next_at = max(now, self.next_at) + n / self.rate
        if wait > 0:
            await self.sleep(wait)


class FanOut:
    def __init__(self, sessions, settings: NotifierSettings, contacts: Contacts) -> None:
        self.sessions = sessions
        self.settings = settings
        self.lease_s = settings.ack_wait_s
        self.ledger = BatchLedger(sessions, lease_s=settings.ack_wait_s)
        self.smtp = SmtpPool(settings)
        self.throttle = Throttle(settings.supporter_emails_per_s)
        self.contacts = contacts
        self.wake = asyncio.Event()

    async def open(self, event: MilestoneReached) -> None:
        """Record that this milestone's supporters are to be emailed (idempotent)."""
        async with self.sessions.begin() as session:
            await session.execute(
                insert(session.bind.dialect.name, fanouts)
                .values(petition_id=str(event.petition_id), milestone=event.milestone, count=event.count,
                        next_goal=event.next_goal, signed_before=event.occurred_at,
                        correlation_id=event.correlation_id, cursor="")
                .on_conflict_do_nothing()
            )
        self.wake.set()

    async def run(self) -> None:
        """Forever: take an open fan-out whose lease is free and work through it."""
        while True:
            job = await self._claim()
            if job is None:
                self.wake.clear()
                await wait_event(self.wake, 1.0)
                continue
            token, row = job
            try:
                with structlog.contextvars.bound_contextvars(correlation_id=row.correlation_id):
                    await self._work(token, row)
            except Exception:  # noqa: BLE001 - the lease runs out and the fan-out is taken again
                log.exception("fanout_failed", petition_id=row.petition_id, milestone=row.milestone)
                await asyncio.sleep(self.settings.retry_base_s)

    async def close(self) -> None:
        await self.smtp.close()

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

    async def _work(self, token: str, row) -> None:
        async with self.sessions() as session:
            petition = (await session.execute(
                select(petitions).where(petitions.c.petition_id == row.petition_id)
            )).first()
        if petition is None:
            raise RuntimeError("petition not known yet")  # PetitionCreated is on its way
        organizer = await self.contacts.organizer(row.petition_id)  # None once erased
        cursor = row.cursor
        log.info("fanout_started", petition_id=row.petition_id, milestone=row.milestone, resume_after=cursor or None)
        sent_total = 0
        while True:
            page = await self._page(row, cursor)
            pending = page.recipients
            delay = self.settings.retry_base_s
            while pending:
                pending, sent = await self._send_page(token, row, petition, organizer, pending)
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

    async def _page(self, row, cursor: str) -> Page:
        return await self.contacts.recipients(row.petition_id, _aware(row.signed_before), cursor,
                                              self.settings.supporter_page)

    async def _send_page(self, token: str, row, petition, organizer: Organizer | None, recipients: list[Recipient]):
        """Send what is due on this page; returns (recipients to try again, emails sent)."""
        pending: list[Recipient] = []
        sent = 0
        size = self.settings.supporter_batch
        for start in range(0, len(recipients), size):
            chunk = recipients[start:start + size]
            still, done = await self._send_chunk(token, row, petition, organizer, chunk)
            pending += still
            sent += done
            await self._renew(token, row)
        return pending, sent

    async def _send_chunk(self, fanout_token: str, row, petition, organizer: Organizer | None,
                          chunk: list[Recipient]):
        domain = self.settings.message_id_domain
        ids = {r.signature_id: message_id(row.petition_id, row.milestone, r.signature_id, domain) for r in chunk}
        token, claimed, _done, held = await self.ledger.claim(row.petition_id, row.milestone, ids)
        pending = [r for r in chunk if r.signature_id in held]
        todo = [r for r in chunk if r.signature_id in claimed]
        if not todo:
            return pending, 0
        await self.throttle.take(len(todo))
        emails = [
            supporter_milestone_email(row, petition, organizer, r, mail_from=self.settings.mail_from,
                                      public_url=self.settings.public_url, message_id_value=ids[r.signature_id])
            for r in todo
        ]
        staged_results = await asyncio.gather(*(self.smtp.stage(e) for e in emails), return_exceptions=True)
        staged = {}
        for recipient, result in zip(todo, staged_results):
            if isinstance(result, BaseException):
                await self._failed(row, token, recipient, result)
                if not isinstance(result, Rejected):
                    pending.append(recipient)
            else:
                staged[recipient.signature_id] = (recipient, result)
        if not staged:
            return pending, 0
        try:
            # The commit point: from here these count as sent; the '.' follows at once.
            marked = await self.ledger.mark_sent(row.petition_id, row.milestone, token, staged)
        except Exception:
            for _, item in staged.values():
                self.smtp.abort(item)  # the server discards them; the claims run out and they are retried
            raise
        for signature_id in set(staged) - marked:
            # Our lease ran out and another worker holds (or sent) it: never finish this one.
            self.smtp.abort(staged.pop(signature_id)[1])
            log.warning("supporter_claim_lost", petition_id=row.petition_id, milestone=row.milestone,
                        recipient=signature_id)
        finished = await asyncio.gather(*(self.smtp.finish(item) for _, item in staged.values()),
                                        return_exceptions=True)
        sent = 0
        for (recipient, _), result in zip(staged.values(), finished):
            if isinstance(result, BaseException):
                await self._failed(row, token, recipient, result)
                if not isinstance(result, Rejected):
                    pending.append(recipient)
            else:
                sent += 1
        EMAILS.labels("sent").inc(sent)
        return pending, sent

    async def _failed(self, row, token: str, recipient: Recipient, exc: BaseException) -> None:
        permanent = isinstance(exc, Rejected)
        if not isinstance(exc, (Rejected, Deferred)):
            exc = Deferred(f"{type(exc).__name__}: {exc}")
        EMAILS.labels("rejected" if permanent else "failed").inc()
        await self.ledger.release(row.petition_id, row.milestone, token, recipient.signature_id, str(exc),
                                  permanent=permanent)
        log.warning("supporter_email_failed", petition_id=row.petition_id, milestone=row.milestone,
                    recipient=recipient.signature_id, permanent=permanent, error=str(exc)[:200])


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
