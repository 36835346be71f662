"""One write path: a unit of work owns a transaction, collects the events of what it changed, writes
their outbox rows in that same transaction, and hands them to the relay once it committed.

    async with write() as work:          # one request's transaction
        ...work.session.execute(...)...
        work.add(PetitionClosed(...))
    # committed: the event is on its way (shared/outbox.py OutboxRelay)

    outcome = await write.grouped(writer, unit)   # the hot path: many requests, one transaction

Two commit strategies, one rule. `write()` is a transaction of its own (an async session).
`grouped` hands the unit to the group committer (shared/groupcommit.py), whose writer returns the
events of each unit; the committer writes their outbox rows beside the batch and hands them to the
relay after the commit. Either way nothing is published before it is committed, and nothing
committed is left unpublished: the relay's sweep takes whatever a crash left behind.

The relay marks what JetStream acknowledged through the group committer too (`OutboxMarks`), so
marking costs no transaction of its own.
"""

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.events import Event
from shared.groupcommit import GroupCommitter, OutboxMarks, Writer
from shared.outbox import OutboxRelay, outbox_row

U = TypeVar("U")
R = TypeVar("R")


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
