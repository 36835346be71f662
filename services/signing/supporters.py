"""Contacts: the notifier's authenticated recipient list and organizer contact, unsubscribe, erasure.

Contacts never enter the event log. The notifier asks for recipients here, page by page, and for
the organizer's name and address, when it sends a milestone's emails, and keeps no address itself
(see docs/personal-data.md)."""

from datetime import datetime, timezone
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse
from fastapi.security import HTTPBearer
from pydantic import BaseModel, Field
from sqlalchemy import and_, func, select, update

from services.signing import db
from services.signing.api import require_admin
from services.signing.domain import mailbox_key
from services.signing.pages import render
from services.signing.schemas import AnyEmail
from shared.events import OrganizerErased
from shared.http import bearer_token_guard
from shared.outbox import outbox_row
from shared.refs import is_token

router = APIRouter()
bearer = HTTPBearer(auto_error=False, description="GROUNDSWELL_INTERNAL_TOKEN")


require_internal = bearer_token_guard("internal_token", bearer, "The recipient list")


class Recipient(BaseModel):
    signature_id: str
    name: str
    email: str
    unsubscribe_url: str


class Recipients(BaseModel):
    recipients: list[Recipient]
    next: str | None = None  # pass as `after` for the next page; null on the last page


@router.get("/internal/petitions/{petition_id}/recipients", dependencies=[Depends(require_internal)],
            tags=["internal"])
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
    s = db.signatures
    query = (
        select(s.c.id, s.c.name, s.c.email, s.c.unsubscribe_token)
        .where(and_(
            s.c.petition_id == str(petition_id),
            s.c.updates.is_(True),
            s.c.unsubscribed_at.is_(None),
            s.c.erased_at.is_(None),
            s.c.state == db.CONFIRMED,  # pending, held and invalidated signers hear nothing
            # Supporters are those whose signature counted by then (confirmed, or signed before
            # confirmation existed).
            func.coalesce(s.c.confirmed_at, s.c.created_at) <= signed_before,
            s.c.id > after,
        ))
        .order_by(s.c.id)
        .limit(limit)
    )
    async with request.app.state.runtime.sessions() as session:
        rows = (await session.execute(query)).all()
    public_url = request.app.state.settings.public_url.rstrip("/")
    page = [
        Recipient(signature_id=row.id, name=row.name, email=row.email,
                  unsubscribe_url=f"{public_url}/u/{row.unsubscribe_token}")
        for row in rows
    ]
    return Recipients(recipients=page, next=rows[-1].id if len(rows) == limit else None)


class ConfirmationsIn(BaseModel):
    signature_ids: list[UUID] = Field(max_length=1000)


class Confirmation(BaseModel):
    signature_id: str
    petition_id: str
    name: str
    email: str
    confirm_url: str


class Confirmations(BaseModel):
    confirmations: list[Confirmation]  # only signatures still waiting for their link


@router.post("/internal/confirmations", dependencies=[Depends(require_internal)], tags=["internal"])
async def confirmations(body: ConfirmationsIn, request: Request) -> Confirmations:
    """Who to send a confirmation link to, for these signatures: those still pending (not
    confirmed, held, invalidated, expired or erased). For the notifier only."""
    s = db.signatures
    async with request.app.state.runtime.sessions() as session:
        rows = (await session.execute(
            select(s.c.id, s.c.petition_id, s.c.name, s.c.email, s.c.confirm_token)
            .where(s.c.id.in_([str(i) for i in body.signature_ids]), s.c.state == db.PENDING,
                   s.c.erased_at.is_(None))
        )).all()
    public_url = request.app.state.settings.public_url.rstrip("/")
    return Confirmations(confirmations=[
        Confirmation(signature_id=row.id, petition_id=row.petition_id, name=row.name, email=row.email,
                     confirm_url=f"{public_url}/c/{row.confirm_token}")
        for row in rows
    ])


class OrganizerContact(BaseModel):
    name: str
    email: str
    review_note: str | None = None  # a moderator's note on the petition, for the rejection email


@router.get("/internal/petitions/{petition_id}/organizer", dependencies=[Depends(require_internal)],
            tags=["internal"], responses={404: {"description": "No such petition"},
                                          410: {"description": "The organizer's contact was erased"}})
async def organizer(petition_id: UUID, request: Request) -> OrganizerContact:
    """Who to write to about this petition. For the notifier only."""
    p = db.petitions
    async with request.app.state.runtime.sessions() as session:
        row = (await session.execute(
            select(p.c.organizer_name, p.c.organizer_email, p.c.organizer_erased_at, p.c.review_note)
            .where(p.c.id == str(petition_id))
        )).first()
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No petition has the id '{petition_id}'.")
    if row.organizer_erased_at is not None:
        raise HTTPException(status.HTTP_410_GONE, "This petition's organizer asked to be erased.")
    return OrganizerContact(name=row.organizer_name, email=row.organizer_email, review_note=row.review_note)


async def _subscription(request: Request, token: str):
    if not is_token(token):
        return None
    s, p = db.signatures, db.petitions
    async with request.app.state.runtime.sessions() as session:
        return (await session.execute(
            select(s.c.id, s.c.unsubscribed_at, p.c.title, p.c.slug)
            .join(p, p.c.id == s.c.petition_id)
            .where(s.c.unsubscribe_token == token)
        )).first()


@router.get("/u/{token}", include_in_schema=False)
async def unsubscribe_page(token: str, request: Request) -> HTMLResponse:
    """A confirmation button, not an unsubscribe: link scanners follow GETs."""
    found = await _subscription(request, token)
    if found is None:
        return render("unsubscribe.html.j2", {"state": "unknown"}, status_code=404)
    state = "done" if found.unsubscribed_at else "confirm"
    return render("unsubscribe.html.j2", {"state": state, "petition": found, "token": token})


@router.post("/u/{token}", include_in_schema=False)
async def unsubscribe(token: str, request: Request) -> HTMLResponse:
    """One click (RFC 8058 `List-Unsubscribe=One-Click`) or the confirmation button: unsubscribed at once."""
    found = await _subscription(request, token)
    if found is None:
        return render("unsubscribe.html.j2", {"state": "unknown"}, status_code=404)
    async with request.app.state.runtime.sessions.begin() as session:
        await session.execute(
            update(db.signatures)
            .where(and_(db.signatures.c.id == found.id, db.signatures.c.unsubscribed_at.is_(None)))
            .values(unsubscribed_at=datetime.now(timezone.utc))
        )
    return render("unsubscribe.html.j2", {"state": "done", "petition": found})


class ErasureIn(BaseModel):
    email: AnyEmail


class Erased(BaseModel):
    erased: int  # signatures and petitions together
    signatures: int
    petitions: int  # petitions this address organized


@router.post("/admin/erasure", dependencies=[Depends(require_admin)], tags=["admin"])
async def erase(body: ErasureIn, request: Request) -> Erased:
    """Remove a person's contact everywhere it is stored. As a signer: name, email, postcode and
    comment are blanked on every signature made with this address; the signatures still count
    (anonymously), and their mailbox key (a keyed hash) stays, so the same mailbox signing again is
    a repeat. As an organizer: the name and email on their petitions are blanked (the petitions stay
    up, "started by the organizer", and send them no more email). The event log never held a
    contact, and the notifier keeps none."""
    key = mailbox_key(request.app.state.settings.mailbox_secret(), body.email)
    s, p = db.signatures, db.petitions
    now = datetime.now(timezone.utc)
    async with request.app.state.runtime.sessions.begin() as session:
        ids = (await session.execute(
            select(s.c.id).where(and_(s.c.mailbox_key == key, s.c.erased_at.is_(None)))
        )).scalars().all()
        if ids:
            await session.execute(update(s).where(s.c.id.in_(ids)).values(
                name="", email="", postcode=None, comment=None, updates=False, unsubscribe_token=None, client_key=None,
                erased_at=now,
            ))
        organized = (await session.execute(
            select(p.c.id).where(and_(p.c.organizer_mailbox_key == key, p.c.organizer_erased_at.is_(None)))
        )).scalars().all()
        rows = [outbox_row(OrganizerErased(petition_id=petition_id)) for petition_id in organized]
        if rows:
            await session.execute(update(p).where(p.c.id.in_(organized)).values(
                organizer_name="", organizer_email="", organizer_erased_at=now))
            await session.execute(db.outbox.insert(), rows)
    if rows:
        request.app.state.relay.publish_soon(rows)  # every replica renders the pages again
    return Erased(erased=len(ids) + len(organized), signatures=len(ids), petitions=len(organized))
