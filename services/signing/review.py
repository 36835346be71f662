"""Moderators review petitions started at /start (GROUNDSWELL_MODERATE_PETITIONS): approve, and
the petition goes live; reject, with a note for its organizer. Either way the notifier tells the
organizer (PetitionApproved, PetitionRejected).

Two ways in, both with the admin token: the API (`GET /admin/petitions?status=in_review`,
`POST /admin/petitions/{ref}/review`) and a plain page, `/admin/review`, that a browser opens with
HTTP Basic authentication (any user name, the admin token as the password). Its forms are POSTs:
shared/http.py's CrossSiteGuard refuses them from another site.
"""

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import RedirectResponse, Response
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from services.signing.api import require_admin
from services.signing.pages import render
from services.signing.schemas import printable_text
from services.signing.service import PetitionNotFound, StatusConflict
from shared.db import as_utc
from shared.http import Answered, check_token, request_id, text_form

api = APIRouter(tags=["admin"], dependencies=[Depends(require_admin)])
page = APIRouter(include_in_schema=False)
basic = HTTPBasic(auto_error=False, realm="Groundswell moderators")


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject"]
    note: Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000), AfterValidator(printable_text)] | None = None


class InReview(BaseModel):
    id: str
    slug: str
    title: str
    target: str
    story: str
    status: str
    created_at: datetime
    decision_maker_email: str | None = Field(None, description="Who receives the petition at each threshold, to "
                                                                "check before approving (never public).")


def _in_review(row) -> InReview:
    return InReview(id=row.id, slug=row.slug, title=row.title, target=row.target, story=row.story, status=row.status,
                    created_at=as_utc(row.created_at), decision_maker_email=row.decision_maker_email)


@api.get("/admin/petitions")
async def petitions_in_review(request: Request,
                              state: Annotated[Literal["in_review"], Query(alias="status")] = "in_review") -> list[InReview]:
    """Petitions waiting for a moderator, oldest first."""
    return [_in_review(row) for row in await request.app.state.signing.in_review()]


@api.post("/admin/petitions/{ref}/review", responses={404: {"description": "Unknown petition"},
                                                       409: {"description": "Not waiting for review"}})
async def review(ref: str, body: ReviewIn, request: Request) -> InReview:
    """Approve (the petition goes live) or reject (with a note the organizer is told)."""
    try:
        petition = await request.app.state.signing.review(ref, body.decision == "approve", body.note,
                                                          request_id(request))
    except PetitionNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No petition '{ref}'.") from None
    except StatusConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return _in_review(petition)


async def moderator(request: Request, credentials: Annotated[HTTPBasicCredentials | None, Depends(basic)]) -> None:
    """Nothing for a moderator; else Answered with the request for the password. The browser's
    first request, before it asks for the password, is not a failed attempt."""
    if credentials is None or not check_token(request, credentials.password,
                                              request.app.state.settings.admin_token):
        raise Answered(_ask_for_password())


def _ask_for_password() -> Response:
    return Response("Moderators only: the password is GROUNDSWELL_ADMIN_TOKEN.", status_code=401,
                    headers={"WWW-Authenticate": 'Basic realm="Groundswell moderators"'}, media_type="text/plain")


@page.get("/admin/review")
async def review_page(request: Request, _: Annotated[None, Depends(moderator)]) -> Response:
    petitions = await request.app.state.signing.in_review()
    return render(request, "review.html.j2", {"petitions": petitions, "done": request.query_params.get("done")})


@page.post("/admin/review/{petition_id}")
async def review_from_page(petition_id: str, request: Request, _: Annotated[None, Depends(moderator)]) -> Response:
    form = await text_form(request)
    decision = str(form.get("decision", ""))
    if decision not in ("approve", "reject"):
        return Response("Choose approve or reject.", status_code=422, media_type="text/plain")
    try:
        note = ReviewIn(decision=decision, note=str(form.get("note", "")).strip() or None).note
    except ValueError:
        return Response("The note must be printable text of at most 1,000 characters.", status_code=422,
                        media_type="text/plain")
    try:
        await request.app.state.signing.review(petition_id, decision == "approve", note, request_id(request))
    except PetitionNotFound:
        return Response("No such petition.", status_code=404, media_type="text/plain")
    except StatusConflict as exc:
        return Response(str(exc), status_code=409, media_type="text/plain")
    return RedirectResponse(f"/admin/review?done={decision}", status_code=303)



