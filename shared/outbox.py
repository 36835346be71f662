"""Transactional outbox: events are rows committed with the change that caused them;
a relay publishes them to JetStream, waits for the PubAck, then marks them published."""

import asyncio
import time
from collections import deque
from datetime import datetime, timedelta, timezone
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import APIError, NoStreamResponseError
from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, LargeBinary, MetaData, String, Table, bindparam, func, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from shared.aio import wait_event
from shared.db import as_utc
from contract.events import Event, encode_event, event_subject
from shared.nats import JetStream
from shared.metrics import OUTBOX_OLDEST_AGE, OUTBOX_PUBLISHED, OUTBOX_UNPUBLISHED
from shared.store import store_of

log = structlog.get_logger("outbox")

CORRELATION_HEADER = "Correlation-Id"
REPROVISION_S = 5.0
# JetStream's answers to a publish it could not store: JSStreamStoreFailedF (a write error, such as
# a full disk), JSInsufficientResourcesErr, JSStorageResourcesExceededErr.
STORAGE_REFUSED = frozenset({10077, 10023, 10047})


def not_this_message(error: BaseException) -> bool:
    """Whether a publish's error is the broker's state rather than the message's: no stream
    answering, a refusal for want of storage, or any 503. A message refused for itself (too large,
    a 400) is not a broker that stopped storing."""
    if isinstance(error, NoStreamResponseError):
        return True
    if isinstance(error, APIError):
        return error.code == 503 or error.err_code in STORAGE_REFUSED
    return True


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


def mark_published(table: Table):
    """UPDATE ... WHERE event_id = :marked, executed for many ids at once (executemany). One row per
    statement by the unique index, whatever the planner's statistics say; an IN list of hundreds of
    ids was seen planned as a scan of the whole (growing) outbox on a PostgreSQL without ANALYZE."""
    return update(table).where(table.c.event_id == bindparam("marked")).values(published_at=func.now())


class OutboxRelay:
    """Publishes outbox rows to JetStream, waits for their PubAcks, then marks them published.

    Rows committed by this process are handed over as they commit (`publish_soon`) and published
    from memory, without reading them back. A sweep of the table publishes everything else: rows
    a process left behind when it died, rows whose publish failed or timed out, rows committed
    while NATS was away. `wake()` asks for a full sweep now; besides, one runs every
    `sweep_interval_s` and takes only rows older than `fresh_grace_s`, which the memory path has
    had every chance to publish. Were both to publish a row, JetStream (within its window) and the
    consumers (on event_id, always) would drop the second copy.
    """

    def __init__(
        self,
        sessions: async_sessionmaker,
        table: Table,
        *,
        batch_size: int = 500,
        sweep_interval_s: float = 1.0,
        publish_timeout_s: float = 5.0,
        fresh_grace_s: float = 5.0,
        max_fresh: int = 20_000,
        mark: Callable[[list[str]], Awaitable[Any]] | None = None,
    ) -> None:
        self.sessions = sessions
        self.table = table
        self.batch_size = batch_size
        self.sweep_interval_s = sweep_interval_s
        self.publish_timeout_s = publish_timeout_s
        self.fresh_grace_s = fresh_grace_s
        self.max_fresh = max_fresh
        # How acknowledged rows are marked: by default a transaction of their own; signing hands
        # them to its group committer instead (shared/unit_of_work.py OutboxMarks).
        self.mark = mark or self._mark_alone
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None
        self._wake = asyncio.Event()
        self._fresh: deque[dict[str, Any]] = deque()
        self._sweep_now = True  # rows a previous process left behind
        self._backlog_measured_at = 0.0
        self.measured: tuple[int, datetime | None] | None = None  # the last backlog() the loop read
        # Since when every round published while connected left rows the broker did not store
        # (no answer, or refused for want of storage); None after a round it stored whole.
        self._failing_since: float | None = None
        # Provisions the stream (shared/nats.py ensure_stream): called again while nothing is
        # acknowledged, so a stream lost with its broker's store is made again and publishing resumes.
        self.provision: Callable[[], Awaitable[Any]] | None = None
        self._provisioned_at = 0.0

    def attach(self, nc: Client) -> None:
        """Start publishing through this connection."""
        self.nc = nc
        self.js = JetStream(nc)  # refusals fail their futures (shared/nats.py)
        self.wake()

    def wake(self) -> None:
        """Rows were committed without being handed over: sweep the table now."""
        self._sweep_now = True
        self._wake.set()

    def publish_soon(self, rows: list[dict[str, Any]]) -> None:
        """Rows (as `outbox_row` made them) that just committed: publish them from memory."""
        if len(self._fresh) + len(rows) > self.max_fresh:
            self._fresh.clear()  # they are all in the table: a sweep takes them
            self._sweep_now = True
        else:
            self._fresh.extend(rows)
        self._wake.set()

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    async def run(self) -> None:
        """Publish forever; what fails stays unpublished in the table and is swept again."""
        next_sweep_at = 0.0
        while True:
            self._wake.clear()
            if not self.connected:
                # While NATS is away nothing is sent: nats-py would only buffer it, and every round
                # would pile up more copies. Rows wait in the database, the record of truth.
                self._fresh.clear()
                self._sweep_now = True
                self._failing_since = None  # a broker away is not a broker refusing to store
                await wait_event(self._wake, self.sweep_interval_s)
                continue
            try:
                if self._fresh:
                    await self._publish_fresh()
                elif self._sweep_now or time.monotonic() >= next_sweep_at:
                    full, self._sweep_now = self._sweep_now, False
                    published = await self.publish_pending(older_than_s=0.0 if full else self.fresh_grace_s)
                    next_sweep_at = time.monotonic() + self.sweep_interval_s
                    # more where those came from, or a wake() while this sweep ran
                    self._sweep_now = self._sweep_now or published == self.batch_size
            except Exception:  # noqa: BLE001 - keep relaying; rows stay unpublished and are retried
                log.exception("outbox_publish_failed")
                await wait_event(self._wake, self.sweep_interval_s)
            await self._provision_again_if_refused()
            await self._update_backlog_metrics()
            if self._fresh or self._sweep_now:
                continue
            await wait_event(self._wake, max(0.0, next_sweep_at - time.monotonic()))

    async def _publish_fresh(self) -> None:
        rows = [self._fresh.popleft() for _ in range(min(self.batch_size, len(self._fresh)))]
        acked = await self._publish(rows)
        if acked:
            await self.mark(acked)
        self._report(rows, acked)

    async def _mark_alone(self, acked: list[str]) -> None:
        async with self.sessions.begin() as session:
            await self._mark(session, acked)

    async def publish_pending(self, older_than_s: float = 0.0) -> int:
        """Publish one batch of unpublished rows (only those older than `older_than_s`, if given);
        returns how many were acknowledged."""
        if not self.connected:
            return 0
        async with self.sessions() as session:
            query = self._unpublished(older_than_s)
            store = store_of(session)
            if not store.single_writer:
                # Several replicas relay at once: each claims rows the others have not locked,
                # and holds the lock until its rows are marked.
                rows = [dict(r._mapping) for r in (await session.execute(store.claim(query))).all()]
                acked = await self._publish(rows)
                await self._mark(session, acked)
                await session.commit()
                return self._report(rows, acked)
            # SQLite: one relay per database; hold no connection while waiting for PubAcks.
            rows = [dict(r._mapping) for r in (await session.execute(query)).all()]
        acked = await self._publish(rows)
        if acked:
            await self.mark(acked)
        return self._report(rows, acked)

    def _unpublished(self, older_than_s: float):
        t = self.table
        query = (
            select(t.c.id, t.c.event_id, t.c.subject, t.c.payload, t.c.correlation_id)
            .where(t.c.published_at.is_(None))
            .order_by(t.c.id)
            .limit(self.batch_size)
        )
        if older_than_s > 0:
            query = query.where(t.c.created_at < datetime.now(timezone.utc) - timedelta(seconds=older_than_s))
        return query

    async def _mark(self, session, acked: list[str]) -> None:
        if acked:
            await session.execute(mark_published(self.table), [{"marked": event_id} for event_id in acked])

    async def _provision_again_if_refused(self) -> None:
        """Rounds not stored for a while: the stream may be gone (a broker restarted on an empty
        store). Provisioning is idempotent, so do it again, at most every REPROVISION_S."""
        if self.provision is None or self._failing_since is None:
            return
        now = time.monotonic()
        if now - self._failing_since < REPROVISION_S or now - self._provisioned_at < REPROVISION_S:
            return
        self._provisioned_at = now
        try:
            await self.provision()
        except Exception as exc:  # noqa: BLE001 - the broker is unwell: the next round tries again
            log.warning("outbox_provision_failed", error=str(exc) or type(exc).__name__)

    def unacknowledged_for_s(self) -> float:
        """How long every round published while connected, with events waiting, has left rows the
        broker did not store: unanswered within publish_timeout_s (a nats-server whose file store
        had a write error answers nothing), or refused for the broker's state (not_this_message).
        One acknowledgement now and then does not end it: on a full disk a message can get
        through as other files shrink, and the stream is still failing. 0 after a round stored
        whole: a broker that stopped storing (shared/flow.py)."""
        return 0.0 if self._failing_since is None else time.monotonic() - self._failing_since

    def _report(self, rows, acked: list[str]) -> int:
        OUTBOX_PUBLISHED.inc(len(acked))
        if len(acked) < len(rows):
            log.warning("outbox_publish_incomplete", published=len(acked), pending=len(rows) - len(acked))
        return len(acked)

    async def _publish(self, rows: list[dict[str, Any]]) -> list[str]:
        """Publish every row at once, then wait for all their PubAcks; the acknowledged event ids."""
        if not rows:
            return []
        js = self.js
        assert js is not None
        futures = []
        for row in rows:
            headers = {"Nats-Msg-Id": row["event_id"]}
            if row["correlation_id"]:
                headers[CORRELATION_HEADER] = row["correlation_id"]
            futures.append(await js.publish_async(row["subject"], row["payload"], headers=headers))
        await asyncio.wait(futures, timeout=self.publish_timeout_s)
        # A timeout means "unknown": the row stays unpublished and is sent again under the same
        # Nats-Msg-Id; JetStream dedupes within its window, consumers dedupe on event_id after it.
        acked, not_stored = [], 0
        for row, future in zip(rows, futures):
            if not future.done() or future.cancelled():
                future.cancel()
                not_stored += 1
            elif future.exception() is None:
                acked.append(row["event_id"])
            else:
                not_stored += not_this_message(future.exception())
        if not not_stored:
            self._failing_since = None
        elif self._failing_since is None:
            self._failing_since = time.monotonic()
        return acked

    async def _update_backlog_metrics(self) -> None:
        now = time.monotonic()
        if now - self._backlog_measured_at < 1.0:
            return
        self._backlog_measured_at = now
        try:
            unpublished, oldest = await self.backlog()
        except Exception:  # noqa: BLE001 - a metric must never stop the relay
            return
        self.measured = (unpublished, oldest)
        if not unpublished and not self._fresh:
            # Nothing waits: a broker that left a round unacknowledged (an election, a reconnect)
            # is not refusing to store anything now.
            self._failing_since = None
        OUTBOX_UNPUBLISHED.set(unpublished)
        OUTBOX_OLDEST_AGE.set((datetime.now(timezone.utc) - as_utc(oldest)).total_seconds() if oldest else 0)

    async def recent_backlog(self, max_age_s: float = 5.0) -> tuple[int, datetime | None]:
        """The backlog as the relay's loop last read it (each second while it runs), or read now."""
        if self.measured is not None and time.monotonic() - self._backlog_measured_at <= max_age_s:
            return self.measured
        return await self.backlog()

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
