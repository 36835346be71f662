"""The one way the notifier sends email: confirmation links, organizer milestones and supporter
fan-outs all go through here.

For a group of emails about one petition and topic (a milestone, or CONFIRMATION):
1. the ledger (services/notifier/ledger.py) claims each recipient not yet sent, rejected or
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
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import structlog

from services.notifier.ledger import BatchLedger
from services.notifier.mime import Email
from services.notifier.settings import NotifierSettings
from services.notifier.smtp import Deferred, Rejected, SmtpPool
from shared.metrics import EMAILS

log = structlog.get_logger("delivery")

_ADDRESS = re.compile(r"[^\s<>@,;:\"']+@[^\s<>,;:\"']+")


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
        self.smtp = SmtpPool(settings)
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
