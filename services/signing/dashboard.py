"""The organizer's side of a petition: sign in by an emailed link, then a dashboard that works
without JavaScript (server-rendered, the chart drawn here as SVG).

Routes (services/signing/organizers.py says how signing in works):
- GET/POST /p/{slug}/organizer: ask for a sign-in link (it goes to the organizer's address only)
- GET /o/{token}: spend the link, set the session cookie, go to the dashboard
- GET /dashboard/{slug}: count, chart (hour or day buckets), countries, milestones, emails sent,
  and the pending, held and invalidated figures; forms to edit the story and to close or declare victory
- POST /dashboard/{slug}/story, /dashboard/{slug}/updates, /dashboard/{slug}/closure, /dashboard/sign-out
- GET /dashboard/{slug}/signatures.csv: the confirmed signatures, streamed (services/signing/export.py)
- GET /dashboard/{slug}/summary: a printable delivery summary (count, countries, chart by day)

The figures come from their projections: count, countries, buckets and milestones from the
counter (GET /petitions/{id}/stats), the emails sent from the notifier's delivery ledger (GET
/internal/petitions/{id}/emails), the signature states from signing's own table.
"""

import asyncio
from urllib.parse import quote
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

import httpx
from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from services.signing import reads
from services.signing.chart import chart
from services.signing.db import PUBLIC
from services.signing.organizers import COOKIE, Organizers
from services.signing.pages import ERASED_ORGANIZER, client_of, form_errors, language_of, not_found, petition_path, render
from services.signing.schemas import Closure, PetitionChange, PetitionIn, TranslationIn, UpdateIn
from services.signing.service import PetitionNotFound, StatusConflict, TooManyStarts
from shared import i18n
from shared.http import Answered, request_id, text_form
from contract.counts import next_goal

router = APIRouter(include_in_schema=False)


def organizers(request: Request) -> Organizers:
    return request.app.state.organizers


START_FIELDS = ("title", "target", "story", "name", "email", "decision_maker_email")


@router.get("/start")
async def start_page(request: Request) -> Response:
    return render(request, "start.html.j2", {"values": dict.fromkeys(START_FIELDS, ""), "errors": {},
                                    "moderate": request.app.state.settings.moderate_petitions})


@router.post("/start")
async def start(request: Request) -> Response:
    """Start a petition (a form, no JavaScript needed): it waits for its organizer to follow the
    emailed link, then goes live or to the moderators."""
    form = await text_form(request)
    values = {field: str(form.get(field, "")).strip() for field in START_FIELDS}
    settings = request.app.state.settings
    # The petition is written in the language of the page it was started from.
    language = i18n.supported(str(form.get("language", ""))) or language_of(request)
    try:
        data = PetitionIn(title=values["title"], target=values["target"], story=values["story"],
                          organizer={"name": values["name"], "email": values["email"]}, language=language,
                          decision_maker_email=values["decision_maker_email"] or None)
    except ValidationError as exc:
        found = form_errors(language, exc.errors())
        errors = {field: found[field] for field in (*START_FIELDS, *found) if field in found}
        return render(request, "start.html.j2", {"values": values, "errors": errors, "moderate": settings.moderate_petitions},
                      status_code=422)
    try:
        petition = await request.app.state.signing.create_petition(data, request_id(request), started=True,
                                                                   client=client_of(request))
    except TooManyStarts:
        errors = {"form": i18n.translate(language, "Too many petitions were started from here, or for this email "
                                                 "address, lately. Please try again in an hour.")}
        return render(request, "start.html.j2", {"values": values, "errors": errors, "moderate": settings.moderate_petitions},
                      status_code=429, headers={"Retry-After": "3600"})
    await organizers(request).request_link(petition.id, request_id(request), purpose="confirm")
    return render(request, "start.html.j2", {"started": True, "started_email": data.organizer.email,
                                    "moderate": settings.moderate_petitions}, status_code=202)


@router.get("/p/{slug}/organizer")
async def sign_in_page(slug: str, request: Request) -> Response:
    petition = await find_any(request, slug)
    if petition is None:
        return not_found(request, slug)
    return render(request, "organizer_sign_in.html.j2", sign_in_context(petition, "ask"))


@router.post("/p/{slug}/organizer")
async def ask_for_link(slug: str, request: Request) -> Response:
    """Email a sign-in link to the organizer. Answers the same whoever asks: the link only ever
    goes to the address the petition was started with."""
    petition = await find_any(request, slug)
    if petition is None:
        return not_found(request, slug)
    if petition.organizer_erased_at is None:
        await organizers(request).request_link(petition.id, request_id(request))
    return render(request, "organizer_sign_in.html.j2", sign_in_context(petition, "sent"), status_code=202)


@router.get("/o/{token}")
async def follow_link(token: str, request: Request) -> Response:
    signed_in = await organizers(request).sign_in(token)
    if signed_in is None:
        return render(request, "organizer_sign_in.html.j2", {"petition": None, "state": "spent"}, status_code=401)
    petition_id, session_token = signed_in
    settings = request.app.state.settings
    # The first link to a petition started at /start also confirms its organizer's email.
    await request.app.state.signing.confirm_organizer(petition_id, settings.moderate_petitions, request_id(request))
    petition = await request.app.state.signing.get_petition(petition_id, public=False)
    response = RedirectResponse(f"/dashboard/{petition.slug}", status_code=303)
    response.set_cookie(COOKIE, session_token, max_age=int(settings.organizer_session_ttl_s), httponly=True,
                        samesite="lax", secure=settings.public_url.startswith("https://"), path="/")
    return response


def sign_in_context(petition, state: str) -> dict:
    return {"petition": petition, "state": state, "petition_path": petition_path(petition.slug)}


@dataclass(frozen=True)
class Allowed:
    petition: object


async def find_any(request: Request, slug: str):
    """The petition, public or not yet (its organizer sees it while it waits for review)."""
    try:
        return await request.app.state.signing.get_petition(slug, public=False)
    except PetitionNotFound:
        return None


async def organizer_of(slug: str, request: Request) -> Allowed:
    """The petition, if this request's session is for it; else Answered with the page to show
    (404, 401, 403)."""
    petition = await find_any(request, slug)
    if petition is None:
        raise Answered(not_found(request, slug))
    session = await organizers(request).session_of(request)
    if session is None:
        raise Answered(render(request, "organizer_sign_in.html.j2", sign_in_context(petition, "signed_out"),
                              status_code=401))
    if session.petition_id != petition.id:
        raise Answered(render(request, "organizer_sign_in.html.j2", sign_in_context(petition, "other"), status_code=403))
    return Allowed(petition)


@router.get("/dashboard/{slug}")
async def dashboard(slug: str, request: Request, bucket: Literal["hour", "day"] = "day",
                    allowed=Depends(organizer_of)) -> Response:
    return await _dashboard(request, allowed.petition, bucket)


async def _dashboard(request: Request, petition, bucket: str, *, status_code: int = 200, **extra) -> Response:
    sessions = request.app.state.runtime.sessions
    stats, states, emails, updates = await asyncio.gather(
        _stats(request, petition, bucket), reads.states(sessions, petition.id), _emails(request, petition.id),
        reads.updates(sessions, petition.id))
    subjects = {u.number: u.subject for u in updates}
    context = {
        "petition": petition,
        "organizer": petition.organizer_name or ERASED_ORGANIZER,
        "stats": stats,
        "bucket": bucket,
        "chart": chart(stats["buckets"] if stats else [], bucket),
        "states": states,
        "emails": emails,
        "update_subjects": subjects,
        "updates": updates,
        "saved": request.query_params.get("saved"),
        "petition_path": petition_path(petition.slug),
        "language_names": i18n.NAMES,
        "translations": [{"language": code, "title": t.title} for code, t in sorted(petition.translations.items())],
        "translation": {},
        "embed": f'<script src="{request.app.state.settings.public_url.rstrip("/")}/static/widget.js" '
                 f'data-petition="{petition.slug}" async></script>',
        "errors": {},
        **extra,
    }
    return render(request, "dashboard.html.j2", context, status_code=status_code)


async def _stats(request: Request, petition, bucket: str) -> dict | None:
    """The counter's figures; None while it cannot be reached (the page says so). A petition not
    public yet has none to read (the counter keeps them to itself) and no signature yet: zero."""
    if petition.status not in PUBLIC:
        return {"petition_id": petition.id, "count": 0, "goal": next_goal(0), "bucket": bucket,
                "updated_at": petition.created_at.isoformat(), "countries": [], "buckets": [], "milestones": []}
    try:
        response = await request.app.state.counter.get(f"/petitions/{petition.id}/stats", params={"bucket": bucket})
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


async def _emails(request: Request, petition_id: str) -> dict | None:
    """The notifier's figures of emails sent (services/notifier/api.py); None while it cannot be reached."""
    try:
        response = await request.app.state.notifier.get(f"/internal/petitions/{petition_id}/emails")
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


@router.get("/dashboard/{slug}/summary")
async def summary(slug: str, request: Request, allowed=Depends(organizer_of)) -> Response:
    """A page to print and hand over with the petition: how many signed, where from, and when."""
    return await summary_page(request, allowed.petition, back=f"/dashboard/{allowed.petition.slug}")


async def summary_page(request: Request, petition, back: str | None) -> Response:
    """The delivery summary (the organizer's, `back` to their dashboard; the decision maker's, none)."""
    language = language_of(request, petition.language)
    stats = await _stats(request, petition, "day")
    buckets = stats["buckets"] if stats else []
    context = {
        "petition": petition,
        "organizer": petition.organizer_name or ERASED_ORGANIZER,
        "stats": stats,
        "chart": chart(buckets, "day"),
        "first_day": i18n.date(_day(buckets[0]["start"]), language) if buckets else None,
        "last_day": i18n.date(_day(buckets[-1]["start"]), language) if buckets else None,
        "printed_at": i18n.moment(datetime.now(timezone.utc), language),
        "back": back,
    }
    return render(request, "summary.html.j2", context, language=language,
                  headers=None if back else {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


def _day(iso: str) -> datetime:
    return datetime.fromisoformat(iso[:10])


@router.post("/dashboard/{slug}/story")
async def edit_story(slug: str, request: Request, allowed=Depends(organizer_of)) -> Response:
    form = await text_form(request)
    try:
        change = PetitionChange(story=str(form.get("story", "")))
    except ValidationError as exc:
        errors = form_errors(language_of(request, allowed.petition.language), exc.errors())
        return await _dashboard(request, allowed.petition, "day", status_code=422,
                                errors={"story": errors.get("story", "")}, story=form.get("story", ""))
    await request.app.state.signing.update_petition(allowed.petition.id, change.story, request_id(request))
    return RedirectResponse(f"/dashboard/{slug}?saved=story", status_code=303)


@router.post("/dashboard/{slug}/updates")
async def post_update(slug: str, request: Request, allowed=Depends(organizer_of)) -> Response:
    """Email an update to every supporter who opted in (once each; the unsubscribed are left out)."""
    form = await text_form(request)
    values = {"subject": str(form.get("subject", "")), "body": str(form.get("body", ""))}
    try:
        update = UpdateIn(**values)
    except ValidationError as exc:
        errors = form_errors(language_of(request, allowed.petition.language), exc.errors())
        return await _dashboard(request, allowed.petition, "day", status_code=422, errors=errors, update=values)
    await request.app.state.signing.post_update(allowed.petition.id, update.subject, update.body, request_id(request))
    return RedirectResponse(f"/dashboard/{slug}?saved=update", status_code=303)


@router.post("/dashboard/{slug}/closure")
async def close(slug: str, request: Request, allowed=Depends(organizer_of)) -> Response:
    form = await text_form(request)
    try:
        closure = Closure(outcome=str(form.get("outcome", "")))
    except ValidationError:
        message = i18n.translate(language_of(request, allowed.petition.language),
                               "Choose to close the petition or to declare victory.")
        return await _dashboard(request, allowed.petition, "day", status_code=422, errors={"closure": message})
    try:
        await request.app.state.signing.close_petition(allowed.petition.id, closure.outcome, request_id(request))
    except StatusConflict as exc:
        message = i18n.translate(language_of(request, allowed.petition.language), "This petition has won; it stays won.")
        return await _dashboard(request, allowed.petition, "day", status_code=409, errors={"closure": message})
    return RedirectResponse(f"/dashboard/{quote(slug)}?saved=closure", status_code=303)


@router.post("/dashboard/{slug}/translations")
async def translate(slug: str, request: Request, allowed=Depends(organizer_of)) -> Response:
    """Add or replace the petition's title and story in another language (a PetitionUpdated each)."""
    form = await text_form(request)
    petition = allowed.petition
    reader = language_of(request, petition.language)
    values = {"language": str(form.get("language", "")).strip(), "title": str(form.get("title", "")).strip(),
              "story": str(form.get("story", "")).strip()}
    errors: dict[str, str] = {}
    language = i18n.supported(values["language"]) if len(values["language"]) <= 8 else None
    if language is None or language == petition.language:
        errors["translation_language"] = i18n.translate(reader, "Choose a language.")
    try:
        TranslationIn(title=values["title"], story=values["story"])
    except ValidationError as exc:
        errors.update({f"translation_{field}": message for field, message in form_errors(reader, exc.errors()).items()})
    if errors:
        return await _dashboard(request, petition, "day", status_code=422, errors=errors, translation=values)
    await request.app.state.signing.translate_petition(petition.id, language, values["title"], values["story"],
                                                       request_id(request))
    return RedirectResponse(f"/dashboard/{quote(slug)}?saved=translation", status_code=303)


@router.post("/dashboard/{slug}/milestone-emails")
async def milestone_emails(slug: str, request: Request, allowed=Depends(organizer_of)) -> Response:
    """The organizer turns their milestone emails off (or on again)."""
    form = await text_form(request)
    await request.app.state.signing.set_milestone_emails(allowed.petition.id, form.get("milestone_emails") != "off")
    return RedirectResponse(f"/dashboard/{quote(slug)}?saved=milestone_emails", status_code=303)


@router.post("/dashboard/sign-out")
async def sign_out(request: Request) -> Response:
    await organizers(request).sign_out(request)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


