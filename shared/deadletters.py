"""Dead letters: events a consumer cannot handle, set aside so it can move on.

An event goes here when its failure is one a retry cannot cure: it cannot be read at all, or its
handler failed with something other than a dependency being away (shared/lifecycle.transient)
on `dead_letter_after` deliveries in a row. The consumer records it (this table, the
`groundswell_dead_letters_total` metric and a `dead_lettered` log line), terminates the message
on the stream, and goes on with the next one. Nothing is lost: the row keeps the payload, and
`groundswell <service> dead-letters --retry ...` hands it to the same handler again once the
cause is fixed (handlers are idempotent, so a retry never does anything twice).
"""

from collections.abc import Awaitable, Callable
from datetime import datetime, timezone

import structlog
from nats.aio.msg import Msg
from sqlalchemy import (
    BigInteger, Column, DateTime, Integer, LargeBinary, MetaData, String, Table, select, update,
)
from sqlalchemy.ext.asyncio import async_sessionmaker

from shared.store import store_of
from shared.metrics import DEAD_LETTERS

log = structlog.get_logger("dead_letters")

ERROR_MAX = 500


def dead_letters_table(metadata: MetaData) -> Table:
    return Table(
        "dead_letters",
        metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("durable", String(64), nullable=False),
        Column("stream_seq", BigInteger, nullable=False, unique=True),
        Column("subject", String(255), nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("error", String(ERROR_MAX), nullable=False),
        Column("deliveries", Integer, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("retried_at", DateTime(timezone=True)),  # the last retry from the command line
        Column("resolved_at", DateTime(timezone=True)),  # a retry succeeded
    )


def describe(exc: BaseException) -> str:
    """The error as recorded: type and message, bounded (payloads are not repeated in it)."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= ERROR_MAX else text[: ERROR_MAX - 1] + "…"


class DeadLetters:
    def __init__(self, sessions: async_sessionmaker, table: Table, durable: str) -> None:
        self.sessions = sessions
        self.table = table
        self.durable = durable

    async def bury(self, raw: Msg, error: str) -> None:
        """Record the message, then terminate it on the stream (never delivered again)."""
        seq = raw.metadata.sequence.stream
        async with self.sessions.begin() as session:
            await session.execute(  # the same message buried again (redelivered meanwhile) stays one row
                store_of(session).insert(self.table).values(
                    durable=self.durable, stream_seq=seq, subject=raw.subject, payload=raw.data,
                    error=error[:ERROR_MAX], deliveries=raw.metadata.num_delivered or 1,
                    created_at=datetime.now(timezone.utc),
                ).on_conflict_do_nothing(index_elements=["stream_seq"]))
        DEAD_LETTERS.labels(self.durable).inc()
        log.error("dead_lettered", durable=self.durable, subject=raw.subject, stream_seq=seq,
                  deliveries=raw.metadata.num_delivered, error=error[:200])
        await raw.term()

    async def listing(self, include_resolved: bool = False) -> list:
        query = select(self.table).order_by(self.table.c.id)
        if not include_resolved:
            query = query.where(self.table.c.resolved_at.is_(None))
        async with self.sessions() as session:
            return list((await session.execute(query)).all())

    async def retry(self, ids: list[int] | None, handle: Callable[[bytes], Awaitable[None]]) -> list[dict]:
        """Hand each open dead letter (all of them when `ids` is None) to `handle` again; one that
        succeeds is resolved, one that fails stays with its new error. Returns what happened."""
        outcome = []
        for row in await self.listing():
            if ids is not None and row.id not in ids:
                continue
            now = datetime.now(timezone.utc)
            try:
                await handle(bytes(row.payload))
            except Exception as exc:  # noqa: BLE001 - reported, and the dead letter stays
                values, result = {"retried_at": now, "error": describe(exc)}, describe(exc)
            else:
                values, result = {"retried_at": now, "resolved_at": now}, "resolved"
            async with self.sessions.begin() as session:
                await session.execute(update(self.table).where(self.table.c.id == row.id).values(**values))
            log.info("dead_letter_retried", durable=self.durable, id=row.id, stream_seq=row.stream_seq,
                     result=result[:200])
            outcome.append({"id": row.id, "subject": row.subject, "result": result})
        return outcome
