"""The count API the public site reads: JSON (cacheable for a few seconds) and a live SSE stream."""

import asyncio
from collections.abc import AsyncIterable, AsyncIterator

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent
from sqlalchemy import select

from services.counter.db import petition_counts
from services.counter.live import Full
from shared.counts import Count, count_document
from shared.refs import petition_ref

router = APIRouter()
RETRY_FULL_S = 5


def as_count(row) -> Count:
    return count_document(row.petition_id, row.count, row.updated_at)


async def find_count(request: Request, ref: str):
    row = None
    if (parsed := petition_ref(ref)) is not None:
        kind, value = parsed
        condition = (petition_counts.c.petition_id if kind == "id" else petition_counts.c.slug) == value
        async with request.app.state.runtime.sessions() as session:
            row = (await session.execute(select(petition_counts).where(condition))).first()
    if row is None:
        raise HTTPException(404, f"No petition '{ref}' is known to the counter.")
    return row


@router.get("/petitions/{ref}/count", responses={404: {"description": "Unknown petition"}})
async def get_count(row: Annotated[object, Depends(find_count)], request: Request, response: Response) -> Count:
    """A petition's exact supporter count and its current public goal, by petition id or slug.

    Cacheable for a few seconds (`GROUNDSWELL_COUNT_MAX_AGE_S`), then served stale while a cache
    revalidates, so a crowd of viewers costs one read per interval behind a cache."""
    settings = request.app.state.settings
    response.headers["Cache-Control"] = (
        f"public, max-age={settings.count_max_age_s}, stale-while-revalidate={settings.count_stale_s}"
    )
    return as_count(row)


async def live_slot(request: Request) -> AsyncIterator[None]:
    """A place among this process's live streams, held until the stream closes (FastAPI ends a
    dependency with yield after the response); 503 with Retry-After when there is none."""
    hub = request.app.state.hub
    try:
        with hub.slot():
            yield
    except Full:
        raise HTTPException(
            503, f"This counter holds its maximum of {hub.max_streams} live-count streams; retry shortly, "
            "or poll the count.", headers={"Retry-After": str(RETRY_FULL_S)},
        ) from None


@router.get(
    "/petitions/{ref}/count/events",
    response_class=EventSourceResponse,
    responses={404: {"description": "Unknown petition"},
               503: {"description": "Too many live streams on this process; retry after Retry-After seconds"}},
    dependencies=[Depends(live_slot)],
)
async def count_events(row: Annotated[object, Depends(find_count)], request: Request) -> AsyncIterable[ServerSentEvent]:
    """Server-Sent Events: a `count` event (the same body as the count endpoint) now and at every change,
    and a keep-alive comment when idle (GROUNDSWELL_LIVE_HEARTBEAT_S)."""
    hub = request.app.state.hub
    heartbeat = request.app.state.settings.live_heartbeat_s
    async with hub.watch(row.petition_id) as changes:
        while True:
            try:
                count = await asyncio.wait_for(changes.get(), heartbeat)
            except TimeoutError:
                yield ServerSentEvent(comment="keep-alive")  # proxies and browsers keep an idle stream open
                continue
            yield ServerSentEvent(event="count", data=count.model_dump(mode="json"), retry=3000)
