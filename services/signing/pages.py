"""The petition page people see: server-rendered (works without JavaScript), enhanced by page.js.

`/p/{slug}` shows the petition and its sign form; the form posts back to the same URL and a
thank-you page follows. With JavaScript the form signs through the JSON API in place and the
count updates live (SSE from the counter, polling as a fallback).

The count on a page is the one in memory (services/signing/frontdoor.py follows the counter's
COUNTS bucket); a page viewed here is also written as a file that the front door serves from then
on, rendered again as the count changes."""

from pathlib import Path
from urllib.parse import quote

import jinja2
import pycountry
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from services.signing.schemas import SignatureIn
from services.signing.db import OPEN
from services.signing.service import PetitionNotFound, PetitionNotOpen
from contract.counts import Count as CountDocument, next_goal
from shared.http import PAGE_HEADERS, field_errors, request_id, text_form

WEB = Path(__file__).parent / "web"
templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(WEB / "templates"), autoescape=True, trim_blocks=True, lstrip_blocks=True
)
templates.filters["thousands"] = lambda n: f"{n:,}"
COUNTRIES = sorted(((c.alpha_2, getattr(c, "common_name", c.name)) for c in pycountry.countries), key=lambda c: c[1])
FORM_FIELDS = ("name", "email", "country", "postcode", "comment")

router = APIRouter(include_in_schema=False)


class Count:
    """The one count a page shows: every number on it comes from here."""

    def __init__(self, count: int | None) -> None:
        self.known = count is not None
        self.count = count or 0
        self.goal = next_goal(self.count)
        self.percent = min(100, round(100 * self.count / self.goal)) if self.known else 0

    @classmethod
    def of(cls, document: CountDocument | None) -> "Count":
        return cls(document.count if document is not None else None)


def read_count(request: Request, petition_id: str) -> Count:
    """The count in memory; unknown only until the COUNTS bucket has been read once."""
    return Count.of(request.app.state.frontdoor.count_of(petition_id))


ERASED_ORGANIZER = "The organizer"


def share_links(url: str, title: str) -> dict[str, str]:
    text = f"I just signed “{title}”. Will you sign too?"
    return {
        "email": f"mailto:?subject={quote(title)}&body={quote(text + ' ' + url)}",
        "facebook": f"https://www.facebook.com/sharer/sharer.php?u={quote(url, safe='')}",
        "x": f"https://twitter.com/intent/tweet?text={quote(text)}&url={quote(url, safe='')}",
        "whatsapp": f"https://wa.me/?text={quote(text + ' ' + url)}",
        "linkedin": f"https://www.linkedin.com/sharing/share-offsite/?url={quote(url, safe='')}",
    }


def page_context(public_url: str, petition, count: Count, confirm: bool = False, **extra) -> dict:
    url = f"{public_url.rstrip('/')}/p/{petition.slug}"
    organizer = petition.organizer_name or ERASED_ORGANIZER  # blank once the organizer is erased
    return {
        "petition": petition,
        "paragraphs": [p.strip() for p in petition.story.replace("\r\n", "\n").split("\n\n") if p.strip()],
        "organizer": organizer,
        "first_name": organizer.split()[0] if petition.organizer_name else ERASED_ORGANIZER.lower(),
        "count": count,
        "url": url,
        "share": share_links(url, petition.title),
        "countries": COUNTRIES,
        "confirm": confirm,  # signatures count once their emailed link is followed
        "errors": {},
        "values": {},
        **extra,
    }


def render(name: str, context: dict, status_code: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse(templates.get_template(name).render(**context), status_code=status_code,
                        headers={**PAGE_HEADERS, **headers} if headers else PAGE_HEADERS)


def page_files(public_url: str, home_slug: str | None, confirm: bool):
    """The files the front door serves for a petition: its page and thank-you page (and `/`)."""

    def render_files(petition, document: CountDocument | None) -> dict[str, bytes]:
        context = page_context(public_url, petition, Count.of(document), confirm)
        page = templates.get_template("petition.html.j2").render(**context).encode()
        files = {
            f"pages/{petition.slug}.html": page,
            f"pages/{petition.slug}/thanks.html": templates.get_template("thanks.html.j2").render(**context).encode(),
        }
        if petition.slug == home_slug:
            files["pages/_home.html"] = page
        return files

    return render_files


def client_of(request: Request) -> str:
    """The request's client address, believing X-Forwarded-For only from a trusted proxy."""
    forwarded = request.headers.get("x-forwarded-for", "").encode("latin-1")
    return request.app.state.signing.clients.of(request.scope.get("client"), forwarded)


async def find(request: Request, slug: str):
    try:
        return await request.app.state.signing.get_petition(slug)
    except PetitionNotFound:
        return None


def not_found(slug: str) -> HTMLResponse:
    return render("not_found.html.j2", {"slug": slug}, status_code=404)


@router.get("/")
async def home(request: Request) -> Response:
    slug = request.app.state.settings.home_petition
    if slug is None:
        return render("not_found.html.j2", {"slug": None}, status_code=404)
    return await petition_page(slug, request)


async def page(request: Request, slug: str, template: str, status_code: int = 200, **extra) -> Response:
    """A petition's page with its current count, or the not-found page. A page viewed here is
    served as a file by the front door from now on."""
    petition = await find(request, slug)
    if petition is None:
        return not_found(slug)
    count = read_count(request, petition.id)
    if status_code == 200:
        request.app.state.frontdoor.keep(petition.id)
    settings = request.app.state.settings
    context = page_context(settings.public_url, petition, count, settings.confirm_signatures, **extra)
    return render(template, context, status_code=status_code)


@router.get("/p/{slug}")
async def petition_page(slug: str, request: Request) -> Response:
    return await page(request, slug, "petition.html.j2")


@router.post("/p/{slug}")
async def sign_from_form(slug: str, request: Request) -> Response:
    """The form without JavaScript: sign, then redirect to the thank-you page (or show the errors)."""
    petition = await find(request, slug)
    if petition is None:
        return not_found(slug)
    if petition.status != OPEN:  # the page says it is closed, and shows no form
        return await page(request, slug, "petition.html.j2", status_code=409)
    form = await text_form(request)
    values = {field: str(form.get(field, "")).strip() for field in FORM_FIELDS}
    data = {field: value for field, value in values.items() if value}
    data["updates"] = form.get("updates") == "yes"
    errors: dict[str, str] = {}
    if not values["country"]:
        errors["country"] = "Choose your country."
    try:
        signature = SignatureIn.model_validate(data)
    except ValidationError as exc:
        for field, message in field_errors(exc.errors()).items():
            errors.setdefault(field, f"{FIELD_LABELS.get(field, field)} {message.rstrip('.')}.")
    if errors:
        return await page(request, slug, "petition.html.j2", status_code=422,
                          errors=errors, values={**values, "updates": data["updates"]})
    try:
        await request.app.state.signing.sign(petition.id, signature, request_id(request), client_of(request))
    except PetitionNotOpen:  # closed a moment ago
        return await page(request, slug, "petition.html.j2", status_code=409)
    if request.app.state.settings.confirm_signatures:
        return RedirectResponse(f"/p/{petition.slug}/check-email", status_code=303)
    return RedirectResponse(f"/p/{petition.slug}/thanks", status_code=303)


FIELD_LABELS = {"name": "Name", "email": "Email", "country": "Country", "postcode": "Postcode", "comment": "Comment"}


@router.get("/p/{slug}/thanks")
async def thanks(slug: str, request: Request) -> Response:
    return await page(request, slug, "thanks.html.j2")


@router.get("/p/{slug}/check-email")
async def check_email(slug: str, request: Request) -> Response:
    """After signing with confirmation on: the signature counts once the emailed link is followed."""
    return await page(request, slug, "check_email.html.j2")


@router.get("/c/{token}")
async def confirm(token: str, request: Request) -> Response:
    """The confirmation link. A GET that confirms, idempotently (mail scanners prefetch links):
    the first follow makes the signature count, every follow lands on the thank-you page. A link
    followed after its petition closed counts no more (409, and the page says why)."""
    confirmed = await request.app.state.signing.confirm(token)
    if confirmed is None:
        days = f"{request.app.state.settings.pending_expiry_days:g}"
        return render("confirm_unknown.html.j2", {"days": days}, status_code=404)
    petition = await request.app.state.signing.get_petition(confirmed.petition_id)
    if confirmed.too_late:
        return render("confirm_unknown.html.j2", {"closed": petition}, status_code=409)
    return RedirectResponse(f"/p/{petition.slug}/thanks", status_code=303)


def widget_headers(embed_origins: str) -> dict[str, str]:
    """The widget's page may be framed by the listed origins (and this site), and by no one else."""
    listed = [o.strip().rstrip("/") for o in embed_origins.split(",") if o.strip()]
    ancestors = "*" if "*" in listed else " ".join(["'self'", *listed])
    headers = {k: v for k, v in PAGE_HEADERS.items() if k != "X-Frame-Options"}
    headers["Content-Security-Policy"] = PAGE_HEADERS["Content-Security-Policy"].replace(
        "frame-ancestors 'none'", f"frame-ancestors {ancestors}")
    return headers


@router.get("/w/{slug}")
async def widget(slug: str, request: Request) -> Response:
    """The embeddable widget: the live count and a sign button that opens the petition's page.
    Other sites embed it with `<script src="<site>/static/widget.js" data-petition="<slug>" async>`
    (an iframe of this page), if GROUNDSWELL_EMBED_ORIGINS lists them."""
    petition = await find(request, slug)
    if petition is None:
        return not_found(slug)
    settings = request.app.state.settings
    context = page_context(settings.public_url, petition, read_count(request, petition.id), settings.confirm_signatures)
    html = templates.get_template("widget.html.j2").render(**context)
    return HTMLResponse(html, headers={**widget_headers(settings.embed_origins), "Cache-Control": "public, max-age=5"})
