"""The delivery ledger: claim before sending, mark once the SMTP server accepted."""

import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from services.notifier.db import deliveries
from shared.db import insert


@dataclass(frozen=True)
class DeliveryKey:
    petition_id: str
    milestone: int
    recipient: str

    def where(self):
        return and_(
            deliveries.c.petition_id == self.petition_id,
            deliveries.c.milestone == self.milestone,
            deliveries.c.recipient == self.recipient,
        )


@dataclass(frozen=True)
class Claim:
    token: str | None = None  # ours to send
    attempt: int = 0  # which attempt this claim is
    sent: bool = False  # sent before: nothing to do
    held_for_s: float = 0.0  # another worker holds it: try again after this


class Ledger:
    def __init__(self, sessions: async_sessionmaker, lease_s: float) -> None:
        self.sessions = sessions
        self.lease_s = lease_s

    async def claim(self, key: DeliveryKey, message_id: str) -> Claim:
        token = secrets.token_hex(8)
        now = time.time()
        async with self.sessions.begin() as session:
            await session.execute(
                insert(session.bind.dialect.name, deliveries)
                .values(petition_id=key.petition_id, milestone=key.milestone, recipient=key.recipient,
                        message_id=message_id, attempts=0)
                .on_conflict_do_nothing()
            )
            taken = await session.execute(
                update(deliveries)
                .where(
                    key.where(),
                    deliveries.c.sent_at.is_(None),
                    or_(deliveries.c.claimed_until_s.is_(None), deliveries.c.claimed_until_s < now),
                )
                .values(claim_token=token, claimed_until_s=now + self.lease_s, attempts=deliveries.c.attempts + 1)
                .returning(deliveries.c.attempts)
            )
            if (attempt := taken.scalar_one_or_none()) is not None:
                return Claim(token=token, attempt=attempt)
            row = (await session.execute(select(deliveries).where(key.where()))).one()
        if row.sent_at is not None:
            return Claim(sent=True)
        return Claim(held_for_s=max(0.5, row.claimed_until_s - now))

    async def mark_sent(self, key: DeliveryKey, token: str) -> None:
        async with self.sessions.begin() as session:
            await session.execute(
                update(deliveries)
                .where(key.where(), deliveries.c.claim_token == token)
                .values(sent_at=datetime.now(timezone.utc), claimed_until_s=None, last_error=None)
            )

    async def release(self, key: DeliveryKey, token: str, error: str) -> int:
        """Give the claim back after a failed send; returns how many attempts were made."""
        async with self.sessions.begin() as session:
            await session.execute(
                update(deliveries)
                .where(key.where(), deliveries.c.claim_token == token)
                .values(claimed_until_s=None, last_error=error[:300])
            )
            return (await session.execute(select(deliveries.c.attempts).where(key.where()))).scalar_one()


class BatchLedger:
    """The same ledger for many recipients of one milestone at once (supporter fan-outs)."""

    def __init__(self, sessions: async_sessionmaker, lease_s: float) -> None:
        self.sessions = sessions
        self.lease_s = lease_s

    def _of(self, petition_id: str, milestone: int, recipients):
        return and_(deliveries.c.petition_id == petition_id, deliveries.c.milestone == milestone,
                    deliveries.c.recipient.in_(list(recipients)))

    async def claim(self, petition_id: str, milestone: int, message_ids: dict[str, str]):
        """Claim every recipient not yet sent, failed or held: (token, claimed, done, held)."""
        token = secrets.token_hex(8)
        now = time.time()
        async with self.sessions.begin() as session:
            dialect = session.bind.dialect.name
            await session.execute(
                insert(dialect, deliveries).on_conflict_do_nothing(),
                [{"petition_id": petition_id, "milestone": milestone, "recipient": r, "message_id": m, "attempts": 0}
                 for r, m in message_ids.items()],
            )
            claimed = set((await session.execute(
                update(deliveries)
                .where(self._of(petition_id, milestone, message_ids), deliveries.c.sent_at.is_(None),
                       deliveries.c.failed_at.is_(None),
                       or_(deliveries.c.claimed_until_s.is_(None), deliveries.c.claimed_until_s < now))
                .values(claim_token=token, claimed_until_s=now + self.lease_s, attempts=deliveries.c.attempts + 1)
                .returning(deliveries.c.recipient)
            )).scalars().all())
            done = set((await session.execute(
                select(deliveries.c.recipient).where(
                    self._of(petition_id, milestone, message_ids),
                    or_(deliveries.c.sent_at.is_not(None), deliveries.c.failed_at.is_not(None)),
                )
            )).scalars().all())
        held = set(message_ids) - claimed - done
        return token, claimed, done, held

    async def mark_sent(self, petition_id: str, milestone: int, token: str, recipients) -> set[str]:
        """Mark the recipients this claim still holds as sent; returns them. A claim whose lease ran
        out may have been taken by another worker: those rows are not ours to send any more."""
        async with self.sessions.begin() as session:
            marked = await session.execute(
                update(deliveries)
                .where(self._of(petition_id, milestone, recipients), deliveries.c.claim_token == token,
                       deliveries.c.sent_at.is_(None))
                .values(sent_at=datetime.now(timezone.utc), claimed_until_s=None, last_error=None)
                .returning(deliveries.c.recipient)
            )
            return set(marked.scalars().all())

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
