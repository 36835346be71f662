"""Transactional outbox: events are rows committed with the change that caused them;
a relay publishes them to JetStream, waits for the PubAck, then marks them published."""

import asyncio
import time
from datetime import datetime, timezone
from typing import Any

import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext
from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, LargeBinary, MetaData, String, Table, func, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from shared.aio import wait_event
from shared.events import Event, encode_event
from shared.metrics import OUTBOX_OLDEST_AGE, OUTBOX_PUBLISHED, OUTBOX_UNPUBLISHED
from shared.subjects import event_subject

log = structlog.get_logger("outbox")

CORRELATION_HEADER = "Correlation-Id"


def outbox_table(metadata: MetaData) -> Table:
    table = Table(
        "outbox",
        metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("subject", String(255), nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("correlation_id", String(128)),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("published_at", DateTime(timezone=True)),
    )
    Index(
        "outbox_unpublished",
        table.c.id,
        sqlite_where=table.c.published_at.is_(None),
        postgresql_where=table.c.published_at.is_(None),
    )
    return table


def outbox_row(event: Event) -> dict[str, Any]:
    """The outbox row that publishes `event`; insert it in the same transaction as its cause."""
    return {
        "event_id": str(event.event_id),
        "subject": event_subject(event.petition_id, event.type),
        "payload": encode_event(event),
        "correlation_id": event.correlation_id,
        "created_at": datetime.now(timezone.utc),
    }


class OutboxRelay:
    """Publishes unpublished outbox rows; woken after each commit, sweeping on a timer too."""

    def __init__(
        self,
        sessions: async_sessionmaker,
        table: Table,
        *,
        batch_size: int = 500,
        sweep_interval_s: float = 1.0,
        publish_timeout_s: float = 5.0,
    ) -> None:
        self.sessions = sessions
        self.table = table
        self.batch_size = batch_size
        self.sweep_interval_s = sweep_interval_s
        self.publish_timeout_s = publish_timeout_s
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None
        self._wake = asyncio.Event()
        self._backlog_measured_at = 0.0

    def attach(self, nc: Client) -> None:
        """Start publishing through this connection."""
        self.nc = nc
        self.js = nc.jetstream()
        self.wake()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Publish forever; a failed round is retried on the next wake or sweep."""
        while True:
            self._wake.clear()
            try:
                published = await self.publish_pending()
            except Exception:  # noqa: BLE001 - keep relaying; rows stay unpublished and are retried
                log.exception("outbox_publish_failed")
                published = 0
            await self._update_backlog_metrics()
            if published == self.batch_size:
                continue
            await wait_event(self._wake, self.sweep_interval_s)

    async def publish_pending(self) -> int:
        """Publish one batch of unpublished rows; returns how many were acknowledged."""
        if self.nc is None or not self.nc.is_connected:
            # While NATS is away nothing is sent: nats-py would only buffer it, and every sweep
            # would pile up more copies. Rows wait in the database, the record of truth.
            return 0
        async with self.sessions() as session:
            if session.bind.dialect.name == "postgresql":
                # Several replicas relay at once: each claims rows the others have not locked,
                # and holds the lock until its rows are marked.
                rows = (await session.execute(self._unpublished().with_for_update(skip_locked=True))).all()
                acked = await self._publish(rows)
                await self._mark(session, acked)
                await session.commit()
                return self._report(rows, acked)
            # SQLite: one relay per database; hold no connection while waiting for PubAcks.
            rows = (await session.execute(self._unpublished())).all()
        acked = await self._publish(rows)
        async with self.sessions.begin() as session:
            await self._mark(session, acked)
        return self._report(rows, acked)

    def _unpublished(self):
        t = self.table
        return (
            select(t.c.id, t.c.event_id, t.c.subject, t.c.payload, t.c.correlation_id)
            .where(t.c.published_at.is_(None))
            .order_by(t.c.id)
            .limit(self.batch_size)
        )

    async def _mark(self, session, acked: list[int]) -> None:
        if acked:
            await session.execute(update(self.table).where(self.table.c.id.in_(acked)).values(published_at=func.now()))

    def _report(self, rows, acked: list[int]) -> int:
        OUTBOX_PUBLISHED.inc(len(acked))
        if len(acked) < len(rows):
            log.warning("outbox_publish_incomplete", published=len(acked), pending=len(rows) - len(acked))
        return len(acked)

    async def _publish(self, rows) -> list[int]:
        if not rows:
            return []
        js = self.js
        assert js is not None
        futures = []
        for row in rows:
            headers = {"Nats-Msg-Id": row.event_id}
            if row.correlation_id:
                headers[CORRELATION_HEADER] = row.correlation_id
            futures.append(await js.publish_async(row.subject, row.payload, headers=headers))
        results = await asyncio.gather(
            *(asyncio.wait_for(f, self.publish_timeout_s) for f in futures), return_exceptions=True
        )
        # A timeout means "unknown": the row stays unpublished and is sent again under the same
        # Nats-Msg-Id; JetStream dedupes within its window, consumers dedupe on event_id after it.
        return [row.id for row, result in zip(rows, results) if not isinstance(result, BaseException)]

    async def _update_backlog_metrics(self) -> None:
        now = time.monotonic()
        if now - self._backlog_measured_at < 1.0:
            return
        self._backlog_measured_at = now
        try:
            unpublished, oldest = await self.backlog()
        except Exception:  # noqa: BLE001 - a metric must never stop the relay
            return
        OUTBOX_UNPUBLISHED.set(unpublished)
        OUTBOX_OLDEST_AGE.set((datetime.now(timezone.utc) - _aware(oldest)).total_seconds() if oldest else 0)

    async def backlog(self) -> tuple[int, datetime | None]:
        """Unpublished rows and the creation time of the oldest."""
        t = self.table
        async with self.sessions() as session:
            row = (
                await session.execute(
                    select(func.count(), func.min(t.c.created_at)).where(t.c.published_at.is_(None))
                )
            ).one()
        return row[0], row[1]


def _aware(moment: datetime) -> datetime:
    """SQLite hands timestamps back without a zone; they were written in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
