"""Live counts for Server-Sent Events: one watcher per petition per process, however many viewers.

The consumer wakes the hub after each committed batch (instant on this replica); a short poll of
the projection covers batches applied by other counter replicas. Viewers only ever read memory.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import structlog

from shared.aio import wait_event
from shared.metrics import LIVE_STREAMS, LIVE_WATCHED

log = structlog.get_logger("live")

Reader = Callable[[str], Any]  # petition id -> awaitable of the count, or None


class Full(Exception):
    """This process holds as many live streams as it may."""


class CountHub:
    def __init__(self, read_count: Reader, poll_s: float = 1.0, max_streams: int = 2000) -> None:
        self.read_count = read_count
        self.poll_s = poll_s
        self.max_streams = max_streams
        self.streams = 0
        self._viewers: dict[str, set[asyncio.Queue]] = {}
        self._watchers: dict[str, asyncio.Task] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._latest: dict[str, Any] = {}  # petition id -> the count its watcher last handed out

    def wake(self, petition_ids: set[str]) -> None:
        """Counts of these petitions changed here: look now instead of at the next poll."""
        for petition_id in petition_ids:
            if (event := self._wake.get(petition_id)) is not None:
                event.set()

    @contextlib.contextmanager
    def slot(self):
        """One live stream's place, held until the stream closes; Full beyond max_streams."""
        if self.streams >= self.max_streams:
            raise Full
        self.streams += 1
        LIVE_STREAMS.set(self.streams)
        try:
            yield
        finally:
            self.streams -= 1
            LIVE_STREAMS.set(self.streams)

    @contextlib.asynccontextmanager
    async def watch(self, petition_id: str) -> AsyncIterator[asyncio.Queue]:
        queue: asyncio.Queue = asyncio.Queue(maxsize=1)
        if (latest := self._latest.get(petition_id)) is not None:
            queue.put_nowait(latest)  # a viewer joining a watched petition has its count at once
        viewers = self._viewers.setdefault(petition_id, set())
        viewers.add(queue)
        if petition_id not in self._watchers:
            self._wake[petition_id] = asyncio.Event()
            self._watchers[petition_id] = asyncio.create_task(self._watch(petition_id), name=f"live-{petition_id}")
            LIVE_WATCHED.set(len(self._watchers))
        try:
            yield queue
        finally:
            viewers.discard(queue)
            if not viewers:
                self._viewers.pop(petition_id, None)
                self._wake.pop(petition_id, None)
                self._latest.pop(petition_id, None)
                if (task := self._watchers.pop(petition_id, None)) is not None:
                    task.cancel()
                LIVE_WATCHED.set(len(self._watchers))

    async def _watch(self, petition_id: str) -> None:
        last = None
        while True:
            try:
                current = await self.read_count(petition_id)
            except Exception:  # noqa: BLE001 - a database hiccup: viewers keep the last count
                log.warning("live_count_read_failed", petition_id=petition_id)
                current = last
            if current is not None and current != last:
                last = self._latest[petition_id] = current
                for queue in list(self._viewers.get(petition_id, ())):
                    if queue.full():  # a slow viewer only needs the newest count
                        queue.get_nowait()
                    queue.put_nowait(current)
            wake = self._wake.get(petition_id)
            if wake is None:
                return
            await wait_event(wake, self.poll_s)
            wake.clear()

    async def close(self) -> None:
        for task in self._watchers.values():
            task.cancel()
        self._watchers.clear()
