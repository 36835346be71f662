"""One write path: a unit of work owns a transaction, collects the events of what it changed, writes
their outbox rows in that same transaction, and hands them to the relay once it committed.

    async with write() as work:          # one request's transaction
        ...work.session.execute(...)...
        work.add(PetitionClosed(...))
    # committed: the event is on its way (shared/outbox.py OutboxRelay)

    outcome = await write.grouped(writer, unit)   # the hot path: many requests, one transaction

Two commit strategies, one rule. `write()` is a transaction of its own (an async session).
`grouped` hands the unit to the group committer (below), whose writer returns the
events of each unit; the committer writes their outbox rows beside the batch and hands them to the
relay after the commit. Either way nothing is published before it is committed, and nothing
committed is left unpublished: the relay's sweep takes whatever a crash left behind.

The relay marks what JetStream acknowledged through the group committer too (`OutboxMarks`), so
marking costs no transaction of its own.

Group commit, the hot path's strategy:

A request hands a unit of work to the committer and awaits its result. One task takes whatever
is queued (up to `max_batch`) and hands the batch to the committer's own thread, which has each
kind's writer write its units' rows, inserts all their events into the outbox, and commits; only
then is each unit answered. An answer still means "stored", but a burst of requests shares one
transaction (and, on SQLite, one fsync).

The transaction runs whole in that thread on a blocking driver: the event loop is asked once per
batch, not once per statement (under load every statement's answer would otherwise wait for the
loop to finish an iteration of HTTP work). While a batch commits, the next one gathers: under load
batches grow by themselves, and a lone request is committed at once.

A batch that fails for a reason of its own is tried again one unit at a time, so a bad unit fails
alone; one whose connection died is tried again whole, once. Writers must therefore be idempotent
(signatures are: a repeat is recognised by its unique key).
"""

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import structlog
from sqlalchemy import Connection, Engine, Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contract.events import Event
from shared.db import unavailable
from shared.metrics import COMMIT_BATCH, COMMIT_QUEUE
from shared.outbox import OutboxRelay, mark_published, outbox_row
from shared.store import store_of

log = structlog.get_logger("groupcommit")

U = TypeVar("U")
R = TypeVar("R")


@dataclass(frozen=True)
class Written(Generic[R]):
    """What writing one unit produced: the answer for its request and the events it caused."""

    result: R
    events: Sequence[Event] = field(default_factory=tuple)


class Writer(Protocol[U, R]):
    """How units of one kind are written together, in the batch's transaction (in its thread)."""

    def write(self, conn: Connection, units: Sequence[U]) -> Sequence[Written[R]]:
        """One Written per unit, in order."""


@dataclass
class _Pending:
    writer: Writer
    unit: Any
    future: asyncio.Future


OnCommit = Callable[[list[dict[str, Any]]], None]


class GroupCommitter:
    def __init__(self, engine: Engine, outbox: Table, *, max_batch: int = 512,
                 on_commit: OnCommit = lambda rows: None) -> None:
        self.engine = engine
        self.outbox = outbox
        self.max_batch = max_batch
        self.on_commit = on_commit
        self._queue: deque[_Pending] = deque()
        self._ready = asyncio.Event()
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="group-commit")

    @property
    def queued(self) -> int:
        """Writes waiting for the next batch."""
        return len(self._queue)

    async def submit(self, writer: Writer[U, R], unit: U) -> R:
        """Write `unit` in the next batch; returns its result once that batch has committed."""
        pending = _Pending(writer, unit, asyncio.get_running_loop().create_future())
        self._queue.append(pending)
        COMMIT_QUEUE.set(len(self._queue))
        self._ready.set()
        return await pending.future

    async def run(self) -> None:
        """Forever: commit whatever is queued, a batch at a time."""
        while True:
            if not self._queue:
                self._ready.clear()
                await self._ready.wait()
            batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
            COMMIT_QUEUE.set(len(self._queue))
            COMMIT_BATCH.observe(len(batch))
            await self._commit(batch)

    def close(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)
        self.engine.dispose()

    async def _commit(self, batch: list[_Pending], *, retried: bool = False) -> None:
        try:
            written, rows = await asyncio.get_running_loop().run_in_executor(self._thread, self._write, batch)
        except Exception as exc:  # noqa: BLE001 - each unit's request gets the failure, or its own retry
            if unavailable(exc) and not retried:
                # The pool has dropped the dead connection; the commit's outcome is unknown, and
                # writers are idempotent, so the whole batch is tried once more on a fresh one.
                log.warning("batch_connection_lost_retrying", size=len(batch), error=type(exc).__name__)
                await self._commit(batch, retried=True)
                return
            if len(batch) > 1 and not unavailable(exc):
                log.warning("batch_failed_retrying_one_by_one", size=len(batch), error=type(exc).__name__)
                for pending in batch:
                    await self._commit([pending])
                return
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        for pending, outcome in zip(batch, written):
            if not pending.future.done():  # a request that went away still had its unit stored
                pending.future.set_result(outcome.result)
        if rows:
            self.on_commit(rows)

    def _write(self, batch: list[_Pending]) -> tuple[list[Written], list[dict[str, Any]]]:
        """One transaction for the whole batch; runs in the committer's thread."""
        by_writer: dict[int, tuple[Writer, list[int]]] = {}
        for index, pending in enumerate(batch):
            by_writer.setdefault(id(pending.writer), (pending.writer, []))[1].append(index)
        written: list[Written | None] = [None] * len(batch)
        with self.engine.begin() as conn:
            for writer, indexes in by_writer.values():
                outcomes = writer.write(conn, [batch[i].unit for i in indexes])
                for index, outcome in zip(indexes, outcomes, strict=True):
                    written[index] = outcome
            rows = [outbox_row(event) for outcome in written for event in outcome.events]
            if rows:
                store_of(conn).add_rows(conn, self.outbox, rows)
        return written, rows


class OutboxMarks:
    """Units: event ids the outbox relay has seen acknowledged by JetStream. They are marked
    published in the next batch's transaction, so marking costs no commit (no fsync) of its own."""

    def __init__(self, outbox: Table) -> None:
        self.outbox = outbox
        self.statement = mark_published(outbox)

    def write(self, conn: Connection, units: Sequence[list[str]]) -> list[Written[None]]:
        event_ids = [event_id for unit in units for event_id in unit]
        store_of(conn).mark(conn, self.outbox, "event_id", event_ids, "published_at = CURRENT_TIMESTAMP", self.statement)
        return [Written(None) for _ in units]


# The unit of work

class Work:
    """The open transaction (`session`) and the events of what it changed."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.events: list[Event] = []

    def add(self, *events: Event) -> None:
        self.events.extend(events)


class UnitOfWork:
    def __init__(self, sessions: async_sessionmaker, outbox: Table, relay: OutboxRelay,
                 committer: GroupCommitter | None = None) -> None:
        self.sessions = sessions
        self.outbox = outbox
        self.relay = relay
        self.committer = committer
        if committer is not None:
            committer.on_commit = relay.publish_soon  # the group's events, after its commit
            self._marks = OutboxMarks(outbox)
            relay.mark = self._mark_published  # acknowledged events, marked in the next group

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[Work]:
        rows: list[dict[str, Any]] = []
        async with self.sessions.begin() as session:
            work = Work(session)
            yield work
            if work.events:
                rows = [outbox_row(event) for event in work.events]
                await session.execute(self.outbox.insert(), rows)
        if rows:
            self.relay.publish_soon(rows)

    async def grouped(self, writer: Writer[U, R], unit: U) -> R:
        """`unit` written by `writer` in the group committer's next transaction; its result once
        that committed."""
        if self.committer is None:
            raise RuntimeError("this unit of work has no group committer")
        return await self.committer.submit(writer, unit)

    async def _mark_published(self, event_ids: Sequence[str]) -> None:
        await self.committer.submit(self._marks, list(event_ids))
