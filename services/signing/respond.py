"""The decision maker's side (services/signing/decisions.py says how it works):

- GET /r/{token}: the petition, its figures and a form to respond (opening it spends nothing)
- POST /r/{token}: publish the response (once; the link works no more after)
- GET /r/{token}/summary: the delivery summary (count, countries, chart by day), while the link lasts
"""

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from services.signing.dashboard import summary_page
from services.signing.pages import form_errors, language_of, petition_path, read_count, render
from services.signing.schemas import ResponseIn
from shared.http import request_id, text_form

router = APIRouter(include_in_schema=False)
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}  # the token is in the address


async def _link_and_petition(request: Request, token: str):
    link = await request.app.state.decisions.link(token)
    if link is None:
        return None, None
    return link, await request.app.state.signing.petitions.get(link.petition_id)


def _refused(request: Request, link, petition) -> Response | None:
    """The page for a link that is unknown, used or expired; None for one that works."""
    if link is None or petition is None:
        return render(request, "respond.html.j2", {"state": "unknown"}, status_code=404, headers=NO_STORE)
    language = language_of(request, petition.language)
    if link.used:
        return render(request, "respond.html.j2", {"state": "used", "petition": petition,
                                                   "path": petition_path(petition.slug)},
                      status_code=410, headers=NO_STORE, language=language)
    if link.expired:
        return render(request, "respond.html.j2", {"state": "expired", "petition": petition},
                      status_code=410, headers=NO_STORE, language=language)
    return None


def _form(request: Request, link, petition, status_code: int = 200, **extra) -> Response:
    context = {"state": "form", "petition": petition, "link": link, "count": read_count(request, petition.id),
               "token_path": request.url.path.removesuffix("/"), "errors": {}, "values": {}, **extra}
    return render(request, "respond.html.j2", context, status_code=status_code, headers=NO_STORE,
                  language=language_of(request, petition.language))


@router.get("/r/{token}")
async def respond_page(token: str, request: Request) -> Response:
    link, petition = await _link_and_petition(request, token)
    return _refused(request, link, petition) or _form(request, link, petition)


@router.post("/r/{token}")
async def respond(token: str, request: Request) -> Response:
    """Publish the decision maker's response, once."""
    link, petition = await _link_and_petition(request, token)
    if (refused := _refused(request, link, petition)) is not None:
        return refused
    form = await text_form(request)
    values = {field: str(form.get(field, "")).strip() for field in ("responder", "body")}
    try:
        answer = ResponseIn.model_validate(values)
    except ValidationError as exc:
        errors = form_errors(language_of(request, petition.language), exc.errors())
        return _form(request, link, petition, 422, errors=errors, values=values)
    if not await request.app.state.decisions.respond(link, answer.responder, answer.body, request_id(request)):
        link, petition = await _link_and_petition(request, token)  # spent meanwhile
        return _refused(request, link, petition) or _form(request, link, petition, 409)
    request.app.state.frontdoor.petition_changed(petition.id)
    return RedirectResponse(f"{petition_path(petition.slug)}#response-{link.threshold}", status_code=303)


@router.get("/r/{token}/summary")
async def summary(token: str, request: Request) -> Response:
    """The delivery summary, for the decision maker (used links too, until they expire)."""
    link, petition = await _link_and_petition(request, token)
    if link is None or petition is None or link.expired:
        return render(request, "respond.html.j2", {"state": "unknown"}, status_code=404, headers=NO_STORE)
    return await summary_page(request, petition, back=None)
