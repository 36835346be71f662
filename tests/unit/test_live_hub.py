"""Live counts: a viewer who joins a petition that others already watch gets its count at once,
not at the next change (issue 21: with 2,000 streams opened at once, most waited 15-20 s)."""

import asyncio

from services.counter.live import CountHub


async def test_a_viewer_joining_a_watched_petition_gets_the_count_at_once():
    reads = []

    async def read_count(petition_id: str):
        reads.append(petition_id)
        return {"petition_id": petition_id, "count": 7}

    hub = CountHub(read_count, poll_s=3600)  # no poll comes to the rescue within the test
    async with hub.watch("p") as first:
        assert await asyncio.wait_for(first.get(), 5) == {"petition_id": "p", "count": 7}
        async with hub.watch("p") as second:
            assert second.get_nowait() == {"petition_id": "p", "count": 7}  # already there: no wait at all
        assert reads == ["p"]  # the second viewer cost no read
    async with hub.watch("p") as again:  # nobody watched in between: a fresh watcher reads it anew
        assert await asyncio.wait_for(again.get(), 5) == {"petition_id": "p", "count": 7}
    await hub.close()
