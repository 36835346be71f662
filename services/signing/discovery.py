"""The discovery list people see: `/petitions` (and `/`), server-rendered, works without JavaScript.

The list is the counter's projection (services/counter/discovery.py, `/petitions.json`), read over
HTTP and rendered here in the reader's language; each rendered page is kept in memory for
GROUNDSWELL_LIST_CACHE_S, so a crowd on the front page costs one read of the counter per interval
and the page is at most a second behind the counts."""

import json
import time
from collections import OrderedDict
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.signing.pages import N_, language_of, petition_path, render
from shared import i18n

router = APIRouter(include_in_schema=False)

ORDERS = {"signatures": N_("Most signed"), "trending": N_("Trending"), "newest": N_("Newest")}
STATES = {"open": N_("Open"), "closed": N_("Closed"), "won": N_("Won")}
DEFAULT_THRESHOLD_LABELS = (N_("Response due"), N_("Debate"))  # GROUNDSWELL_THRESHOLDS' default labels, translated
MAX_PAGE = 10_000
CACHED_PAGES = 512


class PageCache:
    """Rendered list pages by (path, parameters, language), each kept `ttl_s`; at most CACHED_PAGES."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._kept: OrderedDict[tuple, tuple[float, HTMLResponse]] = OrderedDict()

    def get(self, key: tuple) -> HTMLResponse | None:
        kept = self._kept.get(key)
        return kept[1] if kept is not None and time.monotonic() < kept[0] else None

    def put(self, key: tuple, response: HTMLResponse) -> None:
        self._kept[key] = (time.monotonic() + self.ttl_s, response)
        self._kept.move_to_end(key)
        while len(self._kept) > CACHED_PAGES:
            self._kept.popitem(last=False)


def _choice(request: Request) -> tuple[dict, list[str]]:
    """The list's parameters, and the names of those given wrongly (answered 400)."""
    params = request.query_params
    wrong = []
    q = params.get("q", "").strip()
    if len(q) > 200:
        wrong.append("q")
    order, state = params.get("order", "signatures"), params.get("state", "open")
    if order not in ORDERS:
        wrong.append("order")
    if state not in STATES:
        wrong.append("state")
    page_text = params.get("page", "1")
    page = int(page_text) if page_text.isdigit() and 1 <= int(page_text) <= MAX_PAGE else None
    if page is None:
        wrong.append("page")
    return {"q": q[:200], "order": order if order in ORDERS else "signatures",
            "state": state if state in STATES else "open", "page": page or 1}, wrong


PROBLEMS = {
    "q": N_("Search with at most 200 characters."),
    "order": N_("A list is sorted by most signed, trending or newest."),
    "state": N_("A list shows open, closed or won petitions."),
    "page": N_("A page number is a whole number from 1."),
}


async def _list(request: Request, choice: dict) -> dict | None:
    """The counter's list; None while it cannot be read."""
    try:
        response = await request.app.state.counter.get("/petitions.json", params=choice)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def _entries(found: dict, language: str) -> list[dict]:
    entries = []
    for petition in found["petitions"]:
        title, shown = petition["title"], petition["language"]
        if language != shown and language in petition["translated_titles"]:
            title, shown = petition["translated_titles"][language], language
        entries.append({**petition, "title": title, "shown": shown, "dir": i18n.direction(shown),
                        "path": petition_path(petition["slug"])})
    return entries


def _link(path: str, choice: dict, **change) -> str:
    params = {**choice, **change}
    kept = {k: v for k, v in params.items() if v and not (k, v) in (("order", "signatures"), ("state", "open"), ("page", 1))}
    return f"{path}?{urlencode(kept)}" if kept else path


async def list_page(request: Request) -> Response:
    choice, wrong = _choice(request)
    language = language_of(request)
    cache: PageCache = request.app.state.list_pages
    key = (request.url.path, json.dumps(choice, sort_keys=True), language, tuple(wrong), "lang" in request.query_params)
    if (cached := cache.get(key)) is not None:
        return cached
    found = None if wrong else await _list(request, choice)
    settings = request.app.state.settings
    path = request.url.path
    home = settings.home_petition if path == "/" else None
    context = {
        "choice": choice, "orders": ORDERS, "states": STATES, "problems": [PROBLEMS[name] for name in wrong],
        "found": found, "entries": _entries(found, language) if found else [],
        "previous": _link(path, choice, page=choice["page"] - 1) if found and found["previous"] else None,
        "next": _link(path, choice, page=choice["page"] + 1) if found and found["next"] else None,
        "open_data": {kind: _link(f"/petitions.{kind}", choice) for kind in ("json", "csv")},
        "home": (await request.app.state.signing.petitions.get(home)) if home else None,
        "page_path": path,
    }
    status = 400 if wrong else (503 if found is None else 200)
    response = render(request, "petitions.html.j2", context, status_code=status, language=language,
                      headers={"Cache-Control": "public, max-age=1"} if status == 200 else
                      {"Retry-After": "5", "Cache-Control": "no-store"} if status == 503 else None)
    if status == 200:
        cache.put(key, response)
    return response


@router.get("/petitions")
async def petitions(request: Request) -> Response:
    """Published petitions: most signed, trending or newest; open, closed or won; search words."""
    return await list_page(request)


@router.get("/")
async def home(request: Request) -> Response:
    """The home page is the list (under `make run`, with the seed petition one click away)."""
    return await list_page(request)
