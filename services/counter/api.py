"""The count API the public site reads: JSON (cacheable for a few seconds) and a live SSE stream."""

from collections.abc import AsyncIterable
from uuid import UUID

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent
from sqlalchemy import select

from services.counter.db import petition_counts
from shared.counts import Count, count_document

router = APIRouter()


def as_count(row) -> Count:
    return count_document(row.petition_id, row.count, row.updated_at)


async def find_count(request: Request, ref: str):
    try:
        condition = petition_counts.c.petition_id == str(UUID(ref))
    except ValueError:
        condition = petition_counts.c.slug == ref.lower()
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


@router.get(
    "/petitions/{ref}/count/events",
    response_class=EventSourceResponse,
    responses={404: {"description": "Unknown petition"}},
)
async def count_events(row: Annotated[object, Depends(find_count)], request: Request) -> AsyncIterable[ServerSentEvent]:
    """Server-Sent Events: a `count` event (the same body as the count endpoint) now and at every change."""
    hub = request.app.state.hub
    async with hub.watch(row.petition_id) as changes:
        while True:
            count = await changes.get()
            yield ServerSentEvent(event="count", data=count.model_dump(mode="json"), retry=3000)
