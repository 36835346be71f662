"""Putting the projection's counts into the COUNTS bucket (shared/count_bucket.py), where signing and
the front door read them.

Each committed batch's new counts are queued and put at once if nothing was put in the last
`put_interval_s`, else at the end of it: a hot petition's document changes at most ten times a
second however many batches commit, and each put carries the newest count. Every `interval_s` the
counts this process changed lately are read back from the database (by primary key) and queued
too: if another replica's put of an older count landed after this one's, it is mended within that
interval (a stale put only ever hits a petition its replica changed, and that replica reads it
back). At start every count is put, so an emptied bucket fills again, and a crash between a
commit and its put is mended by the restart.

No index on the counts' update time: a petition's row is updated many times a second, and an
indexed column would make each of those a non-HOT update in PostgreSQL (a new index entry and a
dead version per batch, which the next upserts wade through until a vacuum).
"""

import asyncio
import time
from collections.abc import Iterable, Sequence

import structlog
import nats.errors
from nats.js.errors import KeyNotFoundError, NoStreamResponseError
from nats.js.kv import KeyValue
from sqlalchemy import select

from services.counter import queries
from services.counter.db import PUBLIC_STATUSES, petition_counts
from contract.counts import Count, count_document

log = structlog.get_logger("counter.publish")

CHUNK = 500


class CountPublisher:
    def __init__(self, sessions, interval_s: float = 1.0, put_interval_s: float = 0.1) -> None:
        self.sessions = sessions
        self.interval_s = interval_s
        self.put_interval_s = put_interval_s
        self.kv: KeyValue | None = None
        self._queued: dict[str, Count] = {}
        self._changed_at: dict[str, float] = {}  # petition id -> when this process last changed it
        self._wake = asyncio.Event()
        self._reopen = None
        self._last_put_at = 0.0
        # Queueing is ordered within this process: a count read from the database before a
        # newer one was queued never replaces it.
        self._lock = asyncio.Lock()

    def attach(self, kv: KeyValue, reopen=None) -> None:
        """Put into this bucket; `reopen()` makes it again if it is gone (a broker on an empty store)."""
        self.kv = kv
        self._reopen = reopen

    async def put(self, counts: Sequence[Count]) -> None:
        """Queue these documents (just committed) for the next put."""
        now = time.monotonic()
        async with self._lock:
            self._queue(counts)
            for count in counts:
                self._changed_at[str(count.petition_id)] = now

    async def run(self) -> None:
        await asyncio.gather(self._put_forever(), self._look_forever())

    async def _look_forever(self) -> None:
        """Every count now, then each interval the ones this process changed lately."""
        async with self._lock:
            self._queue(await self._read(None))
        await self._forget_unpublished()
        while True:
            await asyncio.sleep(self.interval_s)
            # Lately: since shortly before the previous look (puts in flight, other replicas' acks).
            recent_after = time.monotonic() - (2 * self.interval_s + 1)
            self._changed_at = {p: at for p, at in self._changed_at.items() if at >= recent_after}
            if self._changed_at:
                async with self._lock:
                    self._queue(await self._read(list(self._changed_at)))

    async def _put_forever(self) -> None:
        while True:
            await self._wake.wait()
            wait_s = self._last_put_at + self.put_interval_s - time.monotonic()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            self._wake.clear()
            self._last_put_at = time.monotonic()
            queued, self._queued = self._queued, {}
            await self._put(queued.values())

    def _queue(self, counts: Iterable[Count]) -> None:
        for count in counts:
            self._queued[str(count.petition_id)] = count
        if self._queued:
            self._wake.set()

    async def _forget_unpublished(self) -> None:
        """Take out of the bucket any petition that is not public (a bucket written before
        unpublished petitions were kept out of it); signing then removes its files."""
        if self.kv is None:
            return
        for petition_id in await queries.unpublished(self.sessions):
            try:
                await self.kv.get(petition_id)
            except KeyNotFoundError:  # KeyDeletedError included: nothing there, write no marker
                continue
            await self.kv.delete(petition_id)
            log.info("count_unpublished_removed", petition_id=petition_id)

    async def _read(self, petition_ids: list[str] | None) -> list[Count]:
        """These petitions' counts from the projection (every public petition's for None)."""
        query = (select(petition_counts.c.petition_id, petition_counts.c.count, petition_counts.c.updated_at)
                 .where(petition_counts.c.status.in_(PUBLIC_STATUSES)))
        if petition_ids is not None:
            query = query.where(petition_counts.c.petition_id.in_(petition_ids))
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
                if any(isinstance(r, NoStreamResponseError) for r in failed) and self._reopen is not None:
                    try:
                        self.kv = await self._reopen()  # its stream is gone: make the bucket again
                    except (TimeoutError, nats.errors.Error) as exc:
                        log.warning("count_bucket_reopen_failed", error=str(exc) or type(exc).__name__)
                    else:
                        async with self._lock:  # and put every count again
                            self._queue(await self._read(None))
