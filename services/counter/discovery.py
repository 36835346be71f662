"""The discovery list as open data: GET /petitions.json and /petitions.csv (signing renders the same
list as the page /petitions). One projection (services/counter/listing.py and the counts), the
same parameters everywhere; a rendered answer is kept in memory for GROUNDSWELL_LIST_CACHE_S, so
a crowd reading the front page costs one query per interval."""

import csv
import io
import json
import math
import time
from collections import OrderedDict
from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from contract.counts import next_goal
from services.counter import queries
from services.counter.store import search_words

router = APIRouter()

Order = Literal["signatures", "trending", "newest"]
State = Literal["open", "closed", "won"]
MAX_PAGE = 10_000
CACHED_LISTS = 512
CSV_COLUMNS = ("slug", "title", "language", "state", "count", "goal", "signatures_24h", "created_at", "url")


class ListedPetition(BaseModel):
    slug: str
    title: str = Field(description="In the petition's own language (`language`).")
    language: str
    translated_titles: dict[str, str] = Field(description="The title in the other languages its organizer wrote it in.")
    excerpt: str = Field(description="The story's first words.")
    state: State
    count: int
    goal: int
    signatures_24h: int = Field(description="Signatures in the last 24 hour buckets (UTC), this hour's included.")
    created_at: datetime
    url: str


class PetitionList(BaseModel):
    """One page of published petitions in one state and order, possibly matching search words."""

    petitions: list[ListedPetition]
    total: int = Field(description="Petitions matching, over all pages.")
    page: int
    pages: int
    per_page: int
    order: Order
    state: State
    q: str
    next: str | None = Field(description="The next page's path and query, or null on the last.")
    previous: str | None


class ListCache:
    """Rendered lists by their parameters, each kept `ttl_s`; the oldest go beyond CACHED_LISTS."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._kept: OrderedDict[tuple, tuple[float, bytes]] = OrderedDict()

    def get(self, key: tuple) -> bytes | None:
        kept = self._kept.get(key)
        if kept is None or time.monotonic() >= kept[0]:
            return None
        return kept[1]

    def put(self, key: tuple, body: bytes) -> None:
        self._kept[key] = (time.monotonic() + self.ttl_s, body)
        self._kept.move_to_end(key)
        while len(self._kept) > CACHED_LISTS:
            self._kept.popitem(last=False)


QueryText = Annotated[str, Query(max_length=200, description="Search words: petitions whose title or story has "
                                                             "every one (each also as the start of a word).")]
OrderParam = Annotated[Order, Query(description="signatures: most signed first; trending: most signatures in the "
                                               "last 24 hours; newest: most recently started.")]
StateParam = Annotated[State, Query(description="open: takes signatures; closed; won.")]
PageParam = Annotated[int, Query(ge=1, le=MAX_PAGE, description="From 1.")]


async def petition_list(request: Request, q: str, order: str, state: str, page: int) -> PetitionList:
    settings = request.app.state.settings
    words = search_words(q)
    per_page = settings.list_page_size
    total, rows = await queries.listing(request.app.state.runtime.sessions, state=state, order=order, words=words,
                                        offset=(page - 1) * per_page, limit=per_page)
    pages = max(1, math.ceil(total / per_page))
    public_url = settings.public_url.rstrip("/")

    def link(to_page: int) -> str:
        params = {k: v for k, v in (("q", " ".join(words)), ("order", order), ("state", state)) if v}
        return f"{request.url.path}?{urlencode({**params, 'page': to_page})}"

    return PetitionList(
        petitions=[ListedPetition(slug=r.slug, title=r.title, language=r.language,
                                  translated_titles=json.loads(r.translations), excerpt=r.excerpt, state=r.state,
                                  count=r.count, goal=next_goal(r.count), signatures_24h=r.recent,
                                  created_at=r.created_at, url=f"{public_url}/p/{quote(r.slug)}") for r in rows],
        total=total, page=page, pages=pages, per_page=per_page, order=order, state=state, q=" ".join(words),
        next=link(page + 1) if page < pages else None, previous=link(page - 1) if page > 1 else None)


def _headers(request: Request) -> dict[str, str]:
    return {"Cache-Control": "public, max-age=1, stale-while-revalidate=1"}


async def _cached(request: Request, kind: str, q: str, order: str, state: str, page: int, render) -> bytes:
    cache: ListCache = request.app.state.list_cache
    key = (kind, " ".join(search_words(q)), order, state, page)
    if (body := cache.get(key)) is None:
        body = render(await petition_list(request, q, order, state, page))
        cache.put(key, body)
    return body


@router.get("/petitions.json", response_model=PetitionList)
async def list_json(request: Request, q: QueryText = "", order: OrderParam = "signatures", state: StateParam = "open",
                    page: PageParam = 1) -> Response:
    """Published petitions, a page at a time: most signed, trending or newest; open, closed or won;
    optionally matching search words. Cacheable for a second; the same list as the page /petitions."""
    body = await _cached(request, "json", q, order, state, page, lambda found: found.model_dump_json().encode())
    return Response(body, media_type="application/json", headers=_headers(request))


def _cell(value) -> str:
    """A spreadsheet never runs a cell as a formula."""
    text = value if isinstance(value, str) else (value.isoformat() if isinstance(value, datetime) else str(value))
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv(found: PetitionList) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for petition in found.petitions:
        values = petition.model_dump()
        writer.writerow([_cell(values[column]) for column in CSV_COLUMNS])
    return out.getvalue().encode()


@router.get("/petitions.csv", response_class=Response,
            responses={200: {"content": {"text/csv": {}}, "description": "The same list as /petitions.json, one "
                             "petition a row: " + ", ".join(CSV_COLUMNS) + "."}})
async def list_csv(request: Request, q: QueryText = "", order: OrderParam = "signatures", state: StateParam = "open",
                   page: PageParam = 1) -> Response:
    """The list as CSV (UTF-8, a header row), for spreadsheets; same parameters as /petitions.json."""
    body = await _cached(request, "csv", q, order, state, page, _csv)
    return Response(body, media_type="text/csv; charset=utf-8",
                    headers={**_headers(request), "Content-Disposition": 'inline; filename="petitions.csv"'})
