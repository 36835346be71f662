"""Putting the projection's counts into the COUNTS bucket (shared/counts.py), where signing and
the front door read them.

Each committed batch's new counts are put at once. Every `interval_s` the counts changed lately
are read back from the database and put again: a crash between a commit and its put, or another
replica's put landing after a newer one, is mended within that interval. At start every count is
put, so an emptied bucket fills again.
"""

import asyncio
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone

import nats.errors
import structlog
from nats.js.kv import KeyValue
from sqlalchemy import select

from services.counter.db import petition_counts
from shared.counts import Count, count_document

log = structlog.get_logger("counter.publish")

CHUNK = 500


class CountPublisher:
    def __init__(self, sessions, interval_s: float = 1.0) -> None:
        self.sessions = sessions
        self.interval_s = interval_s
        self.kv: KeyValue | None = None
        # Reads of the projection and puts are ordered within this process: a put never carries
        # a count read before one already put.
        self._lock = asyncio.Lock()

    def attach(self, kv: KeyValue) -> None:
        self.kv = kv

    async def put(self, counts: Sequence[Count]) -> None:
        """Put these documents (just committed)."""
        async with self._lock:
            await self._put(counts)

    async def run(self) -> None:
        """Every count now, then each interval the ones changed since shortly before the last look."""
        since: datetime | None = None
        while True:
            async with self._lock:
                looked_at = datetime.now(timezone.utc)
                await self._put(await self._changed_since(since))
            # Overlap the next look with this one: commits in flight now, clocks of other replicas.
            since = looked_at - timedelta(seconds=2 * self.interval_s + 1)
            await asyncio.sleep(self.interval_s)

    async def _changed_since(self, since: datetime | None) -> list[Count]:
        query = select(petition_counts.c.petition_id, petition_counts.c.count, petition_counts.c.updated_at)
        if since is not None:
            query = query.where(petition_counts.c.updated_at >= since)
        async with self.sessions() as session:
            rows = (await session.execute(query)).all()
        return [count_document(row.petition_id, row.count, row.updated_at) for row in rows]

    async def _put(self, counts: Iterable[Count]) -> None:
        if self.kv is None:
            return
        counts = list(counts)
        for start in range(0, len(counts), CHUNK):
            chunk = counts[start:start + CHUNK]
            results = await asyncio.gather(
                *(self.kv.put(str(c.petition_id), c.model_dump_json().encode()) for c in chunk),
                return_exceptions=True,
            )
            failed = [r for r in results if isinstance(r, BaseException)]
            if failed:
                # The bucket is a cache: the next look at the projection puts these again.
                log.warning("count_put_failed", failed=len(failed), error=type(failed[0]).__name__)
