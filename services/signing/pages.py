"""The petition page people see: server-rendered (works without JavaScript), enhanced by page.js.

`/p/{slug}` shows the petition and its sign form; the form posts back to the same URL and a
thank-you page follows. With JavaScript the form signs through the JSON API in place and the
count updates live (SSE from the counter, polling as a fallback).

The count on a page is the one in memory (services/signing/frontdoor.py follows the counter's
COUNTS bucket); a page viewed here is also written as a file that the front door serves from then
on, rendered again as the count changes."""

import functools
import json
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from services.signing.schemas import SignatureIn
from services.signing.db import OPEN
from services.signing.service import PetitionNotFound, PetitionNotOpen
from contract.counts import Count as CountDocument, next_goal
from shared import i18n
from shared.db import as_utc
from shared.http import PAGE_HEADERS, error_kind, request_id, text_form

WEB = Path(__file__).parent / "web"
templates = i18n.Environments(jinja2.FileSystemLoader(WEB / "templates"), autoescape=True, trim_blocks=True,
                              lstrip_blocks=True)
FORM_FIELDS = ("name", "email", "country", "postcode", "comment")


def N_(message: str) -> str:
    """A message marked for the catalogs, translated where it is shown."""
    return message


# What a person is told about each field's problem (shared/http.py error_kind), in their language.
FIELD_MESSAGES = {
    "name": {"missing": N_("Enter your full name."),
             "too_long": N_("Your name is too long: use at most 100 characters."),
             "invalid": N_("Enter your name as people write it: no link, and not starting with =, +, - or @.")},
    "email": {"missing": N_("Enter your email address."),
              "too_long": N_("Your email address is too long."),
              "invalid": N_("Enter an email address in the right form, like name@example.com.")},
    "country": {"missing": N_("Choose your country."), "too_long": N_("Choose your country."),
                "invalid": N_("Choose your country.")},
    "postcode": {"missing": N_("Enter a postcode, or leave it empty."),
                 "too_long": N_("Your postcode is too long: use at most 16 characters."),
                 "invalid": N_("A postcode has only letters, digits, spaces and hyphens.")},
    "comment": {"missing": N_("Write a comment, or leave it empty."),
                "too_long": N_("Your comment is too long: use at most 500 characters."),
                "invalid": N_("Your comment contains characters that cannot be shown.")},
    "title": {"missing": N_("Enter a title: what should change, in one sentence."),
              "too_long": N_("The title is too long: use at most 200 characters."),
              "invalid": N_("The title contains characters that cannot be shown.")},
    "target": {"missing": N_("Enter who can make the decision."),
               "too_long": N_("The decision maker is too long: use at most 200 characters."),
               "invalid": N_("The decision maker contains characters that cannot be shown.")},
    "story": {"missing": N_("Tell your story: why it matters."),
              "too_long": N_("The story is too long: use at most 20,000 characters."),
              "invalid": N_("The story contains characters that cannot be shown.")},
    "subject": {"missing": N_("Enter a subject."), "too_long": N_("The subject is too long: use at most 150 characters."),
                "invalid": N_("The subject contains characters that cannot be shown.")},
    "body": {"missing": N_("Write the message."), "too_long": N_("The message is too long: use at most 10,000 characters."),
             "invalid": N_("The message contains characters that cannot be shown.")},
    "decision_maker_email": {
        "missing": N_("Enter the decision maker's email address, or leave it empty."),
        "too_long": N_("The decision maker's email address is too long."),
        "invalid": N_("Enter the decision maker's email address in the right form, like name@example.com, or leave it empty.")},
    "responder": {"missing": N_("Say who is answering, e.g. Office of the Mayor."),
                  "too_long": N_("Who is answering is too long: use at most 200 characters."),
                  "invalid": N_("Who is answering contains characters that cannot be shown.")},
    "language": {"missing": N_("Choose a language."), "too_long": N_("Choose a language."),
                 "invalid": N_("Choose a language.")},
}
FALLBACK_MESSAGE = N_("Check this field.")
SCRIPT_MESSAGES = {
    "signing": N_("Signing…"),
    "submit": N_("Sign this petition"),
    "failed": N_("Something went wrong. Please try again."),
    "offline": N_("We could not reach the server. Check your connection and try again."),
    "busy": N_("Too many signatures are arriving right now. Please try again in a moment."),
    "closed": N_("This petition is closed: it takes no more signatures."),
}


def field_message(language: str, field: str, kind: str) -> str:
    return i18n.translate(language, FIELD_MESSAGES.get(field, {}).get(kind, FALLBACK_MESSAGE))


def form_errors(language: str, errors, rename: dict[str, str] | None = None) -> dict[str, str]:
    """Pydantic's errors as one message per field, in the reader's language."""
    found: dict[str, str] = {}
    for error in errors:
        field = str(error.get("loc", ("",))[-1]) if error.get("loc") else "form"
        field = (rename or {}).get(field, field)
        found.setdefault(field, field_message(language, field, error_kind(error)))
    return found


@functools.cache
def script_messages(language: str) -> str:
    """What page.js says, in the page's language: each sign-form field's messages and its own."""
    messages = {field: {kind: field_message(language, field, kind) for kind in ("missing", "too_long", "invalid")}
                for field in FORM_FIELDS}
    messages.update({key: i18n.translate(language, text) for key, text in SCRIPT_MESSAGES.items()})
    return json.dumps(messages, ensure_ascii=False)


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
# The count's sentence (the page's tally, templates/_count.html.j2, and the share image).
COUNT_SENTENCE = ("%(num)s person has signed. Let’s get to %(goal)s!", "%(num)s have signed. Let’s get to %(goal)s!")


def petition_path(slug: str) -> str:
    """/p/<slug>, percent-encoded (a slug may be in any script)."""
    return f"/p/{quote(slug)}"


def share_links(url: str, title: str, language: str) -> dict[str, str]:
    text = i18n.translate(language, "I just signed “%(title)s”. Will you sign too?", title=title)
    return {
        "email": f"mailto:?subject={quote(title)}&body={quote(text + ' ' + url)}",
        "facebook": f"https://www.facebook.com/sharer/sharer.php?u={quote(url, safe='')}",
        "x": f"https://twitter.com/intent/tweet?text={quote(text)}&url={quote(url, safe='')}",
        "whatsapp": f"https://wa.me/?text={quote(text + ' ' + url)}",
        "linkedin": f"https://www.linkedin.com/sharing/share-offsite/?url={quote(url, safe='')}",
    }


OG_LOCALES = {"en": "en_US", "fr": "fr_FR", "es": "es_ES", "de": "de_DE", "ar": "ar_AR"}


def threshold_lines(petition, configured, now: datetime | None = None) -> list[dict]:
    """Each threshold the deployment sets (GROUNDSWELL_THRESHOLDS) or the petition reached: whether and
    when it was reached, the response to it and the days it took, or the days it has been awaited."""
    now = now or datetime.now(timezone.utc)
    labels = {t.count: t.label for t in configured}
    reached, responses = getattr(petition, "reached", {}), getattr(petition, "responses", {})
    lines = []
    for count in sorted({*labels, *reached}):
        row, response = reached.get(count), responses.get(count)
        at = as_utc(row.reached_at) if row is not None else None
        days = None
        if at is not None:
            days = ((as_utc(response.published_at) if response is not None else now) - at).days
        lines.append({"count": count, "label": row.label if row is not None else labels[count], "reached": row,
                      "response": response, "days": max(0, days or 0),
                      "paragraphs": _paragraphs(response.body) if response is not None else []})
    return lines


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]


def page_context(public_url: str, petition, count: Count, language: str, confirm: bool = False, *,
                 thresholds=(), **extra) -> dict:
    path = petition_path(petition.slug)
    url = f"{public_url.rstrip('/')}{path}"
    written_in = sorted({petition.language, *getattr(petition, "translations", {})})
    if hasattr(petition, "in_language"):  # its translation in the reader's language, if the organizer added one
        petition = petition.in_language(language)
    shown = getattr(petition, "shown_language", petition.language)
    if shown != petition.language:
        note = i18n.translate(language, "Translated by the organizer from %(language)s.",
                              language=i18n.language_name(petition.language, language))
    elif shown != language:
        note = i18n.translate(language, "This petition is written in %(language)s.",
                              language=i18n.language_name(shown, language))
    else:
        note = None
    erased = not petition.organizer_name
    organizer = i18n.translate(language, ERASED_ORGANIZER) if erased else petition.organizer_name
    first_name = i18n.translate(language, "the organizer") if erased else organizer.split()[0]
    summary = i18n.translate(language, "A petition to %(target)s, started by %(organizer)s: %(story)s",
                           target=petition.target, organizer=organizer, story=_excerpt(petition.story))
    return {
        "petition": petition,
        "paragraphs": _paragraphs(petition.story),
        "thresholds": threshold_lines(petition, thresholds),
        "organizer": organizer,
        "first_name": first_name,
        "count": count,
        "url": url,
        "petition_path": path,
        "page_path": path,
        "public_url": public_url.rstrip("/"),
        "summary": summary,
        "og_locale": OG_LOCALES[language],
        "content_lang": shown,
        "content_dir": i18n.direction(shown),
        "translation_note": note,
        # The languages the petition itself is written in, other than the one shown: offered as links.
        "also_in": [(code, i18n.NAMES[code]) for code in written_in if code != shown and code in i18n.NAMES],
        "share": share_links(url, petition.title, language),
        "countries": i18n.countries(language),
        "messages": script_messages(language),
        "confirm": confirm,  # signatures count once their emailed link is followed
        "errors": {},
        "values": {},
        **extra,
    }


def _excerpt(story: str, limit: int = 160) -> str:
    text = " ".join(story.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


def reader_choice(request: Request) -> str | None:
    """The reader's explicit choice: `?lang=` (remembered in a cookie by render()), else that cookie."""
    return i18n.supported(request.query_params.get("lang")) or i18n.supported(request.cookies.get(i18n.COOKIE))


def language_of(request: Request, default: str | None = None) -> str:
    """The language to answer this reader in (shared/i18n.py negotiate); `default` is the petition's."""
    return i18n.negotiate(reader_choice(request), request.headers.get("accept-language"), default)


VARY = "Accept-Language, Cookie"


def render(request: Request, name: str, context: dict, status_code: int = 200,
           headers: dict[str, str] | None = None, *, language: str | None = None,
           base_headers: dict[str, str] = PAGE_HEADERS) -> HTMLResponse:
    """A page in the reader's language (the petition's own when the reader asks for none we have).
    `?lang=` is remembered in the `lang` cookie."""
    petition = context.get("petition")
    language = language or language_of(request, getattr(petition, "language", None))
    context.setdefault("public_url", request.app.state.settings.public_url.rstrip("/"))
    context.setdefault("page_path", quote(request.url.path) if request.method == "GET" else None)
    html = templates.render(language, name, context)
    response = HTMLResponse(html, status_code=status_code,
                            headers={**base_headers, **(headers or {}), "Content-Language": language, "Vary": VARY})
    if (chosen := i18n.supported(request.query_params.get("lang"))) is not None:
        response.set_cookie(i18n.COOKIE, chosen, max_age=i18n.COOKIE_MAX_AGE, samesite="lax", path="/",
                            secure=request.app.state.settings.public_url.startswith("https://"))
    return response


FILE_KEY_DEFAULT = "default"  # the page file for readers who ask for no language Groundswell has


def file_key(request: Request) -> str:
    """Which of a petition's page files this reader is served (deploy/Caddyfile picks it the same way:
    the cookie's language, else the first shipped language in Accept-Language, else `default`)."""
    if (chosen := i18n.supported(request.cookies.get(i18n.COOKIE))) is not None:
        return chosen
    accepted = i18n.accepted(request.headers.get("accept-language"))
    return accepted[0] if accepted else FILE_KEY_DEFAULT


def page_files(public_url: str, confirm: bool, thresholds=()):
    """The files the front door serves for a petition, one set per language its readers asked for:
    its page and thank-you page, `pages/<slug>.<key>.html`, key a language or `default`."""

    def render_files(petition, document: CountDocument | None, keys) -> dict[str, bytes]:
        files = {}
        for key in keys:
            language = petition.language if key == FILE_KEY_DEFAULT else key
            context = page_context(public_url, petition, Count.of(document), language, confirm, thresholds=thresholds)
            page = templates.render(language, "petition.html.j2", context).encode()
            files[f"pages/{petition.slug}.{key}.html"] = page
            files[f"pages/{petition.slug}/thanks.{key}.html"] = templates.render(
                language, "thanks.html.j2", context).encode()
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


def not_found(request: Request, slug: str | None) -> HTMLResponse:
    return render(request, "not_found.html.j2", {"slug": slug}, status_code=404)


async def page(request: Request, slug: str, template: str, status_code: int = 200, **extra) -> Response:
    """A petition's page with its current count, or the not-found page. A page viewed here is
    served as a file by the front door from now on (the file for this reader's language)."""
    petition = await find(request, slug)
    if petition is None:
        return not_found(request, slug)
    count = read_count(request, petition.id)
    if status_code == 200 and "lang" not in request.query_params:
        request.app.state.frontdoor.keep(petition.id, file_key(request))
    settings = request.app.state.settings
    language = language_of(request, petition.language)
    context = page_context(settings.public_url, petition, count, language, settings.confirm_signatures,
                           thresholds=settings.threshold_list, **extra)
    return render(request, template, context, status_code=status_code, language=language)


@router.get("/p/{slug}")
async def petition_page(slug: str, request: Request) -> Response:
    return await page(request, slug, "petition.html.j2")


@router.post("/p/{slug}")
async def sign_from_form(slug: str, request: Request) -> Response:
    """The form without JavaScript: sign, then redirect to the thank-you page (or show the errors,
    summarised above the form, in the reader's language)."""
    petition = await find(request, slug)
    if petition is None:
        return not_found(request, slug)
    if petition.status != OPEN:  # the page says it is closed, and shows no form
        return await page(request, slug, "petition.html.j2", status_code=409)
    form = await text_form(request)
    values = {field: str(form.get(field, "")).strip() for field in FORM_FIELDS}
    data = {field: value for field, value in values.items() if value}
    data["updates"] = form.get("updates") == "yes"
    language = language_of(request, petition.language)
    data["language"] = i18n.supported(str(form.get("language", ""))) or language
    errors: dict[str, str] = {}
    if not values["country"]:
        errors["country"] = field_message(language, "country", "missing")
    try:
        signature = SignatureIn.model_validate(data)
    except ValidationError as exc:
        for field, message in form_errors(language, exc.errors()).items():
            errors.setdefault(field, message)
    if errors:
        ordered = {field: errors[field] for field in (*FORM_FIELDS, *errors) if field in errors}
        return await page(request, slug, "petition.html.j2", status_code=422,
                          errors=ordered, values={**values, "updates": data["updates"]})
    try:
        await request.app.state.signing.sign(petition.id, signature, request_id(request), client_of(request))
    except PetitionNotOpen:  # closed a moment ago
        return await page(request, slug, "petition.html.j2", status_code=409)
    if request.app.state.settings.confirm_signatures:
        return RedirectResponse(f"{petition_path(petition.slug)}/check-email", status_code=303)
    return RedirectResponse(f"{petition_path(petition.slug)}/thanks", status_code=303)


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
        return render(request, "confirm_unknown.html.j2", {"days": days}, status_code=404)
    petition = await request.app.state.signing.get_petition(confirmed.petition_id)
    if confirmed.too_late:
        return render(request, "confirm_unknown.html.j2",
                      {"closed": petition, "closed_path": petition_path(petition.slug)}, status_code=409,
                      language=language_of(request, petition.language))
    return RedirectResponse(f"{petition_path(petition.slug)}/thanks", status_code=303)


@router.get("/favicon.ico")
async def favicon() -> Response:
    """Browsers ask for /favicon.ico whatever the page says: the same icon as the pages link."""
    return Response((WEB / "static" / "favicon.svg").read_bytes(), media_type="image/svg+xml",
                    headers={"Cache-Control": "public, max-age=86400"})


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
        return not_found(request, slug)
    settings = request.app.state.settings
    language = language_of(request, petition.language)
    context = page_context(settings.public_url, petition, read_count(request, petition.id), language,
                           settings.confirm_signatures)
    return render(request, "widget.html.j2", context, language=language, base_headers=widget_headers(settings.embed_origins),
                  headers={"Cache-Control": "public, max-age=5"})
