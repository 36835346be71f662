"""The delivery ledger: one row per (petition, topic, recipient), claimed before sending, marked
once the SMTP server accepted (services/notifier/delivery.py is the only caller)."""

import secrets
import time
from collections.abc import Callable
from datetime import datetime, timezone

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from services.notifier.db import deliveries
from shared.db import insert


# The topic of confirmation-link deliveries (milestones start at 10): recipient "<signature id>.<request>".
CONFIRMATION = 0
# The topic of organizers' sign-in links: recipient "signin.<link id>".
SIGN_IN = 1
# The topics of the moderators' decision on a petition, told to its organizer (recipient "organizer").
APPROVED, REJECTED = 2, 3
# The recipient of the organizer's emails (milestones, decisions): never their address.
ORGANIZER = "organizer"


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
            statement = insert(session.bind.dialect.name, deliveries)
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
