"""The count API the public site reads: JSON (cacheable for a few seconds) and a live SSE stream."""

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
from datetime import datetime, timezone
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, Field

from services.counter import queries
from services.counter.live import Full
from contract.counts import Count, count_document
from shared.db import as_utc
from shared.refs import petition_ref

router = APIRouter()
RETRY_FULL_S = 5


def as_count(row) -> Count:
    return count_document(row.petition_id, row.count, row.updated_at)


async def find_count(request: Request, ref: str):
    parsed = petition_ref(ref)
    row = await queries.petition_count(request.app.state.runtime.sessions, *parsed) if parsed else None
    if row is None:
        raise HTTPException(404, f"No petition '{ref}' is known to the counter.")
    return row


@router.get("/petitions/{ref}/count", responses={404: {"description": "Unknown petition"}})
async def get_count(row: Annotated[object, Depends(find_count)], request: Request, response: Response) -> Count:
    """A petition's exact supporter count and its current public goal, by petition id or slug.

    Cacheable for a few seconds (`GROUNDSWELL_COUNT_MAX_AGE_S`), then served stale while a cache
    revalidates, so a crowd of viewers costs one read per interval behind a cache."""
    _cache(request, response)
    return as_count(row)


class CountryCount(BaseModel):
    country: str | None = Field(description="ISO 3166-1 alpha-2 code; null for signers who gave none.")
    count: int


class Bucket(BaseModel):
    start: datetime = Field(description="The hour's or the day's start, UTC.")
    count: int = Field(description="Signatures that counted in it (less those invalidated since).")


class Milestone(BaseModel):
    milestone: int
    reached_at: datetime


class Stats(Count):
    """The count, and the signatures behind it by country and over time: each figure a projection
    of the events (SignatureAdded, less SignatureInvalidated), so the countries and the buckets each
    add up to the count."""

    bucket: Literal["hour", "day"]
    countries: list[CountryCount] = Field(description="Most signatures first.")
    buckets: list[Bucket] = Field(description="Oldest first; hours or days with none are left out.")
    milestones: list[Milestone] = Field(description="Each reached once, lowest first (never again after a dip).")


def _cache(request: Request, response: Response) -> None:
    settings = request.app.state.settings
    response.headers["Cache-Control"] = (
        f"public, max-age={settings.count_max_age_s}, stale-while-revalidate={settings.count_stale_s}"
    )


@router.get("/petitions/{ref}/stats", responses={404: {"description": "Unknown petition"}})
async def get_stats(row: Annotated[object, Depends(find_count)], request: Request, response: Response,
                    bucket: Annotated[Literal["hour", "day"], Query(description="The chart's bucket.")] = "day") -> Stats:
    """A petition's count with its signatures by country and per hour or day (UTC), by petition id
    or slug. Cacheable like the count."""
    found = await queries.figures(request.app.state.runtime.sessions, row.petition_id, 1 if bucket == "hour" else 24)
    _cache(request, response)
    return Stats(
        **as_count(row).model_dump(), bucket=bucket,
        countries=_by_country(found.countries),
        buckets=[Bucket(start=start, count=count) for start, count in found.buckets],
        milestones=[Milestone(milestone=m, reached_at=at) for m, at in found.milestones],
    )


class ThresholdOut(BaseModel):
    threshold: int
    label: str = Field(description="The deployment's name for it (GROUNDSWELL_THRESHOLDS), e.g. Response due.")
    reached_at: datetime
    awaiting_response_days: int | None = Field(description="Whole days since it was reached without a response "
                                                           "to it; null once answered.")


class ResponseOut(BaseModel):
    threshold: int = Field(description="The threshold whose link the decision maker answered.")
    responder: str
    body: str
    published_at: datetime
    days: int = Field(description="Whole days from the threshold to the response.")


class PublicPetition(Count):
    """What anyone may republish about a petition: its count and goal, whether it still takes
    signatures, where its signers are (no one's name or address), the thresholds it reached and
    its decision makers' responses."""

    slug: str | None
    status: Literal["open", "closed", "won"] = Field(description="open: takes signatures; closed or won: takes none.")
    signatures_by_country: list[CountryCount] = Field(description="Most signatures first.")
    thresholds: list[ThresholdOut] = Field(description="Each threshold reached, lowest first, with its time.")
    responses: list[ResponseOut]


def decisions_of(found: queries.Decisions, now: datetime) -> tuple[list[ThresholdOut], list[ResponseOut]]:
    reached = {row.threshold: as_utc(row.reached_at) for row in found.thresholds}
    answered = {row.threshold for row in found.responses}
    responses = [ResponseOut(threshold=row.threshold, responder=row.responder, body=row.body,
                             published_at=as_utc(row.published_at),
                             days=max(0, (as_utc(row.published_at) - reached.get(row.threshold, as_utc(row.published_at))).days))
                 for row in found.responses]
    return [ThresholdOut(threshold=row.threshold, label=row.label, reached_at=reached[row.threshold],
                         awaiting_response_days=None if row.threshold in answered else (now - reached[row.threshold]).days)
            for row in found.thresholds], responses


def _by_country(rows: list[tuple[str | None, int]]) -> list[CountryCount]:
    return [CountryCount(country=country, count=count) for country, count in rows]


@router.get("/petitions/{ref}.json", responses={404: {"description": "Unknown petition"}})
async def get_public_petition(row: Annotated[object, Depends(find_count)], request: Request,
                              response: Response) -> PublicPetition:
    """A petition's public data, by id or slug: count, goal, status and signatures by country.
    Cacheable like the count; for newsrooms, dashboards and anyone who republishes it. A petition
    not public yet (waiting for its organizer's email or a moderator, or rejected) is a 404."""
    _cache(request, response)
    sessions = request.app.state.runtime.sessions
    thresholds, responses = decisions_of(await queries.decisions(sessions, row.petition_id), datetime.now(timezone.utc))
    return PublicPetition(**as_count(row).model_dump(), slug=row.slug, status=row.status,
                          signatures_by_country=_by_country(await queries.countries(sessions, row.petition_id)),
                          thresholds=thresholds, responses=responses)


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
