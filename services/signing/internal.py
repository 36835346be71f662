"""Signing's internal API, for the notifier only (GROUNDSWELL_INTERNAL_TOKEN; the front door does
not route /internal/*): the contacts and texts an email needs when it is written, which never
enter the event log. The notifier asks for recipients page by page, and keeps no address itself
(see docs/personal-data.md); the answers' models are the contract in contract/internal_api.py."""

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi import Path as FastPath
from fastapi.security import HTTPBearer

from services.signing import contacts, reads
from shared.db import as_utc
from shared.http import bearer_token_guard
from contract.internal_api import (Confirmation, Confirmations, ConfirmationsIn, DecisionMakerLinks,
                                   DecisionMakerLinksIn, OrganizerContact, PublicText, Recipient, Recipients, Response,
                                   SignInLinks, SignInLinksIn, UpdateText)

internal = APIRouter(tags=["internal"])
bearer = HTTPBearer(auto_error=False, description="GROUNDSWELL_INTERNAL_TOKEN")
require_internal = bearer_token_guard("internal_token", bearer, "The recipient list")


@internal.get("/internal/petitions/{petition_id}/recipients", dependencies=[Depends(require_internal)])
async def recipients(
    petition_id: UUID,
    request: Request,
    signed_before: Annotated[datetime, Query(description="Only signatures that counted at or before this time.")],
    after: Annotated[str, Query(max_length=36, pattern=r"^[0-9a-fA-F-]*$",
                                   description="The `next` of the previous page.")] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> Recipients:
    """Supporters who opted in to updates, are still subscribed and whose signature counted (was
    confirmed) at or before `signed_before`,
    in signature-id order. For the notifier only."""
    rows = await contacts.recipients(request.app.state.runtime.sessions, str(petition_id), signed_before, after, limit)
    public_url = request.app.state.settings.public_url.rstrip("/")
    petition = await request.app.state.signing.petitions.get(str(petition_id)) if rows else None
    fallback = petition.language if petition is not None else "en"
    page = [
        Recipient(signature_id=row.id, name=row.name, email=row.email, language=row.language or fallback,
                  unsubscribe_url=f"{public_url}/u/{row.unsubscribe_token}")
        for row in rows
    ]
    return Recipients(recipients=page, next=rows[-1].id if len(rows) == limit else None)


@internal.post("/internal/confirmations", dependencies=[Depends(require_internal)])
async def confirmations(body: ConfirmationsIn, request: Request) -> Confirmations:
    """Who to send a confirmation link to, for these signatures: those still pending (not
    confirmed, held, invalidated, expired or erased). For the notifier only."""
    rows = await contacts.pending(request.app.state.runtime.sessions, [str(i) for i in body.signature_ids])
    public_url = request.app.state.settings.public_url.rstrip("/")
    return Confirmations(confirmations=[
        Confirmation(signature_id=row.id, petition_id=row.petition_id, name=row.name, email=row.email,
                     confirm_url=f"{public_url}/c/{row.confirm_token}", language=row.language)
        for row in rows
    ])


@internal.get("/internal/petitions/{petition_id}/organizer", dependencies=[Depends(require_internal)],
               responses={404: {"description": "No such petition"},
                          410: {"description": "The organizer's contact was erased"}})
async def organizer(petition_id: UUID, request: Request) -> OrganizerContact:
    """Who to write to about this petition. For the notifier only."""
    row = await contacts.organizer(request.app.state.runtime.sessions, str(petition_id))
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No petition has the id '{petition_id}'.")
    if row.organizer_erased_at is not None:
        raise HTTPException(status.HTTP_410_GONE, "This petition's organizer asked to be erased.")
    return OrganizerContact(name=row.organizer_name, email=row.organizer_email, review_note=row.review_note,
                            language=row.language, milestone_emails=row.milestone_emails)


@internal.get("/internal/petitions/{petition_id}/updates/{number}", dependencies=[Depends(require_internal)],
               responses={404: {"description": "No such update"}})
async def update_text(petition_id: UUID, number: Annotated[int, FastPath(ge=1, le=2**31 - 1)],
                      request: Request) -> UpdateText:
    """For the notifier: an update's text, when it writes the emails."""
    row = await reads.update(request.app.state.runtime.sessions, str(petition_id), number)
    if row is None:
        raise HTTPException(404, f"Petition '{petition_id}' has no update {number}.")
    return UpdateText(number=row.number, subject=row.subject, body=row.body, posted_at=as_utc(row.posted_at))


@internal.post("/internal/sign-in-links", dependencies=[Depends(require_internal)])
async def sign_in_links(body: SignInLinksIn, request: Request) -> SignInLinks:
    """For the notifier: the organizer's contact and the link, for each link still worth sending."""
    return SignInLinks(links=await request.app.state.organizers.links_to_send([str(i) for i in body.link_ids]))


@internal.get("/internal/petitions/{petition_id}/public", dependencies=[Depends(require_internal)],
              responses={404: {"description": "No such petition"}})
async def public_text(petition_id: UUID, request: Request) -> PublicText:
    """For the counter's discovery list and petition JSON: what the petition says publicly (title,
    story, translations, responses), whatever its status (the counter lists only published ones)."""
    petition = await request.app.state.signing.petitions.fresh(str(petition_id))
    if petition is None:
        raise HTTPException(404, f"No petition has the id '{petition_id}'.")
    return await request.app.state.decisions.public_text(petition)


@internal.post("/internal/decision-maker-links", dependencies=[Depends(require_internal)])
async def decision_maker_links(body: DecisionMakerLinksIn, request: Request) -> DecisionMakerLinks:
    """For the notifier: the decision maker's address and links, for each link still worth sending."""
    return DecisionMakerLinks(links=await request.app.state.decisions.links_to_send([str(i) for i in body.link_ids]))


@internal.get("/internal/petitions/{petition_id}/responses/{threshold}", dependencies=[Depends(require_internal)],
              responses={404: {"description": "No such response"}})
async def response_text(petition_id: UUID, threshold: Annotated[int, FastPath(ge=1, le=2**31 - 1)],
                        request: Request) -> Response:
    """For the notifier: a decision maker's response, when it writes the supporters' emails."""
    petition = await request.app.state.signing.petitions.fresh(str(petition_id))
    found = petition.responses.get(threshold) if petition is not None else None
    if found is None:
        raise HTTPException(404, f"Petition '{petition_id}' has no response at {threshold}.")
    return Response(threshold=threshold, responder=found.responder, body=found.body,
                    published_at=as_utc(found.published_at))
