"""The one way the notifier sends email: confirmation links, organizer milestones and supporter
fan-outs all go through here.

For a group of emails about one petition and topic (a milestone, or CONFIRMATION):
1. the ledger (BatchLedger, below) claims each recipient not yet sent, rejected or
   held by another worker;
2. the throttle lets them go at the configured rate (transactional emails and supporter
   fan-outs each have their own rate);
3. SMTP stages each (everything but the final '.': services/notifier/smtp.py);
4. one transaction marks the staged ones sent: the commit point;
5. the final '.' finishes each, written the moment the commit returns (no await in between).

A 5xx is permanent: the ledger records the recipient as rejected and nothing retries it. A 4xx,
a timeout or a lost connection is temporary: the claim is released and the caller retries later.
A process killed anywhere sends each email at most once. The one window: killed after the
database committed and before the '.'s are written (the commit's answer reaching this process:
well under a millisecond), the chunk in flight (up to GROUNDSWELL_SUPPORTER_BATCH emails) is lost
rather than repeated; its ledger rows say sent.
"""

import asyncio
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

import structlog
from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from services.notifier.db import deliveries
from services.notifier.emails import DkimSigner, Email
from services.notifier.settings import NotifierSettings
from services.notifier.smtp import Deferred, Rejected, SmtpPool
from shared.metrics import EMAILS
from shared.store import store_of

log = structlog.get_logger("delivery")

_ADDRESS = re.compile(r"[^\s<>@,;:\"']+@[^\s<>,;:\"']+")

# The topic of confirmation-link deliveries (milestones start at 10): recipient "<signature id>.<request>".
CONFIRMATION = 0
# The topic of organizers' sign-in links: recipient "signin.<link id>".
SIGN_IN = 1
# The topics of the moderators' decision on a petition, told to its organizer (recipient "organizer").
APPROVED, REJECTED = 2, 3
# The topic of a petition's delivery to its decision maker at a threshold: recipient "decision-maker.<threshold>".
DECISION_MAKER = 4
# The recipient of the organizer's emails (milestones, decisions): never their address.
ORGANIZER = "organizer"


def redact(error: str) -> str:
    """A server's error text without any address in it (servers often quote the recipient)."""
    return _ADDRESS.sub("<address>", error)


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


@dataclass(frozen=True)
class Outgoing:
    """One email to send: its ledger recipient, its Message-ID, and how to write it (only called
    once it is claimed)."""

    recipient: str
    message_id: str
    build: Callable[[], Email]


@dataclass
class Outcome:
    sent: set[str] = field(default_factory=set)  # accepted by the server now
    done: set[str] = field(default_factory=set)  # sent or rejected before: nothing to do
    rejected: set[str] = field(default_factory=set)  # refused for good now (5xx): never retried
    retry: set[str] = field(default_factory=set)  # temporary failure, or held by another worker

    @property
    def finished(self) -> bool:
        return not self.retry


class Pipeline:
    def __init__(self, sessions, settings: NotifierSettings) -> None:
        self.settings = settings
        self.ledger = BatchLedger(sessions, lease_s=settings.ack_wait_s)
        self.smtp = SmtpPool(settings, DkimSigner.from_settings(settings))
        self.transactional = Throttle(settings.emails_per_s)
        self.bulk = Throttle(settings.supporter_emails_per_s)

    async def send(self, petition_id: str, topic: int, items: Sequence[Outgoing], *, kind: str,
                   bulk: bool = False, after_chunk: Callable[[], Awaitable[None]] | None = None) -> Outcome:
        """Send these emails about one petition and topic, each at most once (a fan-out's a batch at
        a time, GROUNDSWELL_SUPPORTER_BATCH; `after_chunk` runs after each: it renews its lease).
        `kind` names them in logs: confirmation, organizer, supporter."""
        outcome = Outcome()
        # A fan-out's pages go a batch at a time; transactional emails come a fetched event batch
        # at a time (GROUNDSWELL_EVENT_BATCH) and go together: one claim and one mark for them all.
        size = self.settings.supporter_batch if bulk else max(1, len(items))
        for start in range(0, len(items), size):
            await self._chunk(petition_id, topic, items[start:start + size], kind, bulk, outcome)
            if after_chunk is not None:
                await after_chunk()
        return outcome

    async def _chunk(self, petition_id: str, topic: int, items: Sequence[Outgoing], kind: str, bulk: bool,
                     outcome: Outcome) -> None:
        token, claimed, done, held = await self.ledger.claim(petition_id, topic,
                                                             {i.recipient: i.message_id for i in items})
        outcome.done |= done
        outcome.retry |= held
        todo = [item for item in items if item.recipient in claimed]
        if not todo:
            return
        if retried := sum(1 for item in todo if claimed[item.recipient] > 1):
            EMAILS.labels("retried").inc(retried)
        await (self.bulk if bulk else self.transactional).take(len(todo))
        results = await asyncio.gather(*(self._stage(item) for item in todo), return_exceptions=True)
        staged = {}
        for item, result in zip(todo, results):
            if isinstance(result, BaseException):
                await self._failed(petition_id, topic, token, item.recipient, result, kind, outcome)
            else:
                staged[item.recipient] = result
        if not staged:
            return
        def end_data(marked: set[str]) -> None:
            for recipient in marked:
                self.smtp.end_data(staged[recipient])

        try:
            # The commit point: from here these count as sent; the '.'s are written as it returns.
            marked = await self.ledger.mark_sent(petition_id, topic, token, staged, on_commit=end_data)
        except Exception:
            for item in staged.values():
                self.smtp.abort(item)  # the server discards them; the claims run out and they are retried
            raise
        for recipient in set(staged) - marked:
            # Our lease ran out and another worker holds (or sent) it: never finish this one.
            self.smtp.abort(staged.pop(recipient))
            outcome.retry.add(recipient)
            log.warning("claim_lost", kind=kind, petition_id=petition_id, topic=topic, recipient=recipient)
        finished = await asyncio.gather(*(self.smtp.finish(item) for item in staged.values()), return_exceptions=True)
        for recipient, result in zip(list(staged), finished):
            if isinstance(result, BaseException):
                await self._failed(petition_id, topic, token, recipient, result, kind, outcome)
            else:
                outcome.sent.add(recipient)
        EMAILS.labels("sent").inc(len(outcome.sent & set(staged)))

    async def _stage(self, item: Outgoing):
        try:
            email = item.build()
        except Exception as exc:  # noqa: BLE001 - this one email cannot be written: the others go on
            raise Rejected(554, f"the email could not be written: {type(exc).__name__}: {exc}") from exc
        return await self.smtp.stage(email)

    async def _failed(self, petition_id: str, topic: int, token: str, recipient: str, exc: BaseException,
                      kind: str, outcome: Outcome) -> None:
        permanent = isinstance(exc, Rejected)
        if not isinstance(exc, (Rejected, Deferred)):
            exc = Deferred(f"{type(exc).__name__}: {exc}")
        EMAILS.labels("rejected" if permanent else "failed").inc()
        error = redact(str(exc))
        await self.ledger.release(petition_id, topic, token, recipient, error, permanent=permanent)
        (outcome.rejected if permanent else outcome.retry).add(recipient)
        log.warning("email_failed", kind=kind, petition_id=petition_id, topic=topic, recipient=recipient,
                    permanent=permanent, error=error[:200])

    async def close(self) -> None:
        await self.smtp.close()


# The delivery ledger: one row per (petition, topic, recipient), claimed before sending, marked once
# the SMTP server accepted (the pipeline above is its only writer).


class BatchLedger:
    """Many recipients of one petition and topic (a milestone, or CONFIRMATION) at once."""

    def __init__(self, sessions: async_sessionmaker, lease_s: float) -> None:
        self.sessions = sessions
        self.lease_s = lease_s

    def _of(self, petition_id: str, milestone: int, recipients):
        return and_(deliveries.c.petition_id == petition_id, deliveries.c.milestone == milestone,
                    deliveries.c.recipient.in_(list(recipients)))

    async def claim(self, petition_id: str, milestone: int, message_ids: dict[str, str]):
        """Claim every recipient not yet sent, failed or held: (token, claimed: {recipient: attempt},
        done, held).

        One statement in the common case: new rows are inserted already claimed, and a row that
        exists is claimed by the same upsert when it is free (ON CONFLICT DO UPDATE ... WHERE, on
        PostgreSQL and SQLite alike). Only recipients it did not claim are looked up again."""
        token = secrets.token_hex(8)
        now = time.time()
        until = now + self.lease_s
        async with self.sessions.begin() as session:
            statement = store_of(session).insert(deliveries)
            statement = statement.on_conflict_do_update(
                index_elements=[deliveries.c.petition_id, deliveries.c.milestone, deliveries.c.recipient],
                set_={"claim_token": token, "claimed_until_s": until, "attempts": deliveries.c.attempts + 1},
                where=and_(deliveries.c.sent_at.is_(None), deliveries.c.failed_at.is_(None),
                           or_(deliveries.c.claimed_until_s.is_(None), deliveries.c.claimed_until_s < now)),
            ).returning(deliveries.c.recipient, deliveries.c.attempts)
            claimed = dict((await session.execute(
                statement,
                [{"petition_id": petition_id, "milestone": milestone, "recipient": r, "message_id": m,
                  "attempts": 1, "claim_token": token, "claimed_until_s": until}
                 for r, m in message_ids.items()],
            )).all())
            others = set(message_ids) - set(claimed)
            done = set((await session.execute(
                select(deliveries.c.recipient).where(
                    self._of(petition_id, milestone, others),
                    or_(deliveries.c.sent_at.is_not(None), deliveries.c.failed_at.is_not(None)),
                )
            )).scalars().all()) if others else set()
        held = others - done
        return token, claimed, done, held

    async def mark_sent(self, petition_id: str, milestone: int, token: str, recipients,
                        on_commit: Callable[[set[str]], None] | None = None) -> set[str]:
        """Mark the recipients this claim still holds as sent; returns them. A claim whose lease ran
        out may have been taken by another worker: those rows are not ours to send any more.

        `on_commit(marked)` runs the moment the commit returns, before the connection goes back to
        the pool (its reset is one more round trip): the delivery pipeline writes the final '.'s
        there, so a process killed between the commit and them has the least time to be."""
        async with self.sessions() as session:
            marked = set((await session.execute(
                update(deliveries)
                .where(self._of(petition_id, milestone, recipients), deliveries.c.claim_token == token,
                       deliveries.c.sent_at.is_(None))
                .values(sent_at=datetime.now(timezone.utc), claimed_until_s=None, last_error=None)
                .returning(deliveries.c.recipient)
            )).scalars().all())
            await session.commit()
            if on_commit is not None:
                on_commit(marked)
            return marked

    async def release(self, petition_id: str, milestone: int, token: str, recipient: str, error: str,
                      *, permanent: bool) -> None:
        """Not sent after all: free to retry, or (permanent) recorded as rejected and never retried."""
        async with self.sessions.begin() as session:
            await session.execute(
                update(deliveries)
                .where(self._of(petition_id, milestone, [recipient]), deliveries.c.claim_token == token)
                .values(sent_at=None, claimed_until_s=None, last_error=error[:300],
                        failed_at=datetime.now(timezone.utc) if permanent else None)
            )


async def tallies(sessions, petition_id: str) -> list[tuple[int, int, int, int, int]]:
    """The petition's emails by topic and whether they went to the organizer: (topic, to the
    organizer 1 or 0, sent, failed for good, waiting)."""
    d = deliveries
    sent = func.count(d.c.sent_at)
    failed = func.count(d.c.failed_at)
    to_organizer = case((d.c.recipient == ORGANIZER, 1), else_=0)
    query = (select(d.c.milestone, to_organizer, sent, failed, func.count() - sent - failed)
             .where(d.c.petition_id == petition_id)
             .group_by(d.c.milestone, to_organizer))
    async with sessions() as session:
        return [tuple(row) for row in (await session.execute(query)).all()]
