"""Reads of the counter's projections, for its API and its live streams: SQL lives here, not in
the routes."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Row, exists, func, select

from services.counter.db import (PUBLIC_STATUSES, milestones, petition_counts, petition_countries, petition_hours,
                                 petition_listing, petition_responses, thresholds)
from services.counter.store import counter_store
from shared.db import as_utc

HOUR_S = 3600


@dataclass(frozen=True)
class Figures:
    """A petition's signatures by country and over time, and the milestones it has reached."""

    countries: list[tuple[str | None, int]]  # most first; None for signers who gave no country
    buckets: list[tuple[datetime, int]]  # oldest first; empty buckets left out
    milestones: list[tuple[int, datetime]]  # lowest first


async def petition_count(sessions, kind: str, value: str) -> Row | None:
    """The count row of a public petition named by ("id", uuid) or ("slug", slug), or None: a
    petition waiting for its organizer's email or a moderator, or rejected, is nobody's to read."""
    column = petition_counts.c.petition_id if kind == "id" else petition_counts.c.slug
    async with sessions() as session:
        return (await session.execute(
            select(petition_counts).where(column == value, petition_counts.c.status.in_(PUBLIC_STATUSES))
        )).first()


async def unpublished(sessions) -> list[str]:
    """The ids of petitions that are not public (not yet, or rejected)."""
    async with sessions() as session:
        return list((await session.execute(
            select(petition_counts.c.petition_id).where(petition_counts.c.status.not_in(PUBLIC_STATUSES))
        )).scalars().all())


async def countries(sessions, petition_id: str) -> list[tuple[str | None, int]]:
    """Signatures that count, by country: most first, then by code."""
    async with sessions() as session:
        return await _countries(session, petition_id)


async def figures(sessions, petition_id: str, bucket_hours: int) -> Figures:
    """Countries, buckets of `bucket_hours` hours (UTC) and milestones, read in one session."""
    async with sessions() as session:
        by_country = await _countries(session, petition_id)
        hours = (await session.execute(
            select(petition_hours.c.hour, petition_hours.c.count)
            .where(petition_hours.c.petition_id == petition_id, petition_hours.c.count != 0)
        )).all()
        reached = (await session.execute(
            select(milestones.c.milestone, milestones.c.reached_at)
            .where(milestones.c.petition_id == petition_id).order_by(milestones.c.milestone)
        )).all()
    return Figures(by_country, buckets(hours, bucket_hours), [(m, as_utc(at)) for m, at in reached])


def buckets(hours: list[tuple[int, int]], bucket_hours: int) -> list[tuple[datetime, int]]:
    """(hour since 1970 UTC, count) rows summed into buckets of `bucket_hours`, oldest first."""
    sums: dict[int, int] = defaultdict(int)
    for hour, count in hours:
        sums[hour // bucket_hours] += count
    return [(datetime.fromtimestamp(n * bucket_hours * HOUR_S, timezone.utc), count)
            for n, count in sorted(sums.items()) if count]


async def figures_missing(sessions) -> int:
    """Signatures counted while no hour bucket exists (a database from before counter migration
    0003): how many, or 0 when the figures are there."""
    async with sessions() as session:
        counted = (await session.execute(select(func.coalesce(func.sum(petition_counts.c.count), 0)))).scalar_one()
        bucketed = (await session.execute(select(exists().select_from(petition_hours)))).scalar_one()
    return 0 if bucketed else counted


async def _countries(session, petition_id: str) -> list[tuple[str | None, int]]:
    rows = (await session.execute(
        select(petition_countries.c.country, petition_countries.c.count)
        .where(petition_countries.c.petition_id == petition_id, petition_countries.c.count != 0)
    )).all()
    return [(country or None, count) for country, count in sorted(rows, key=lambda row: (-row[1], row[0]))]


# The discovery list (services/counter/discovery.py): petitions in one state, in one order, a page at a time.

TRENDING_HOURS = 24


@dataclass(frozen=True)
class Listed:
    petition_id: str
    slug: str
    title: str
    language: str
    excerpt: str
    translations: str  # JSON: language -> title
    state: str
    count: int
    recent: int  # signatures in the last TRENDING_HOURS hour buckets (this one included)
    created_at: datetime


def current_hour(now: datetime | None = None) -> int:
    return int((now or datetime.now(timezone.utc)).timestamp()) // HOUR_S


async def listing(sessions, *, state: str, order: str, words: list[str], offset: int, limit: int,
                  now_hour: int | None = None) -> tuple[int, list[Listed]]:
    """(how many petitions match, this page of them). Only public petitions with a slug and a text."""
    since = (current_hour() if now_hour is None else now_hour) - (TRENDING_HOURS - 1)
    recent = (select(petition_hours.c.petition_id, func.sum(petition_hours.c.count).label("recent"))
              .where(petition_hours.c.hour >= since).group_by(petition_hours.c.petition_id).subquery())
    c, l = petition_counts.c, petition_listing.c
    recent_count = func.coalesce(recent.c.recent, 0)
    where = [c.status == state, c.slug.is_not(None)]
    async with sessions() as session:
        if words:
            where.append(c.petition_id.in_(counter_store(session).matching(words)))
        base = (select(c.petition_id, c.slug, c.count, c.status, l.title, l.language, l.excerpt, l.translations,
                       l.created_at, recent_count.label("recent"))
                .join(petition_listing, l.petition_id == c.petition_id)
                .outerjoin(recent, recent.c.petition_id == c.petition_id)
                .where(*where))
        orders = {"signatures": [c.count.desc(), l.created_at.desc()],
                  "trending": [recent_count.desc(), c.count.desc(), l.created_at.desc()],
                  "newest": [l.created_at.desc()]}[order]
        total = (await session.execute(
            select(func.count()).select_from(petition_counts).join(petition_listing, l.petition_id == c.petition_id)
            .where(*where))).scalar_one()
        rows = (await session.execute(base.order_by(*orders, c.petition_id).offset(offset).limit(limit))).all()
    return total, [Listed(petition_id=r.petition_id, slug=r.slug, title=r.title, language=r.language, excerpt=r.excerpt,
                          translations=r.translations, state=r.status, count=r.count, recent=int(r.recent),
                          created_at=as_utc(r.created_at)) for r in rows]


@dataclass(frozen=True)
class Decisions:
    """A petition's thresholds reached and its decision makers' responses."""

    thresholds: list  # rows: threshold, label, reached_at
    responses: list  # rows: threshold, responder, body, published_at


async def decisions(sessions, petition_id: str) -> Decisions:
    async with sessions() as session:
        reached = (await session.execute(
            select(thresholds.c.threshold, thresholds.c.label, thresholds.c.reached_at)
            .where(thresholds.c.petition_id == petition_id).order_by(thresholds.c.threshold))).all()
        answered = (await session.execute(
            select(petition_responses.c.threshold, petition_responses.c.responder, petition_responses.c.body,
                   petition_responses.c.published_at)
            .where(petition_responses.c.petition_id == petition_id).order_by(petition_responses.c.threshold))).all()
    return Decisions(list(reached), list(answered))
