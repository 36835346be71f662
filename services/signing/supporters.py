"""What supporters and moderators do with people's contacts: unsubscribe (one click) and erasure.
Contacts never enter the event log, so erasing them here is the end of them
(docs/personal-data.md); the notifier reads them through services/signing/internal.py."""

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from services.signing import contacts
from services.signing.api import require_admin
from services.signing.domain import mailbox_key
from services.signing.pages import render, petition_path
from services.signing.schemas import AnyEmail
from shared.refs import is_token

router = APIRouter()


async def _subscription(request: Request, token: str):
    return await contacts.subscription(request.app.state.runtime.sessions, token) if is_token(token) else None


@router.get("/u/{token}", include_in_schema=False)
async def unsubscribe_page(token: str, request: Request) -> HTMLResponse:
    """A confirmation button, not an unsubscribe: link scanners follow GETs."""
    found = await _subscription(request, token)
    if found is None:
        return render(request, "unsubscribe.html.j2", {"state": "unknown"}, status_code=404)
    state = "done" if found.unsubscribed_at else "confirm"
    return render(request, "unsubscribe.html.j2", {"state": state, "petition": found, "token": token,
                                                   "petition_path": petition_path(found.slug)})


@router.post("/u/{token}", include_in_schema=False)
async def unsubscribe(token: str, request: Request) -> HTMLResponse:
    """One click (RFC 8058 `List-Unsubscribe=One-Click`) or the confirmation button: unsubscribed at once."""
    found = await _subscription(request, token)
    if found is None:
        return render(request, "unsubscribe.html.j2", {"state": "unknown"}, status_code=404)
    await contacts.unsubscribe(request.app.state.runtime.sessions, found.id)
    return render(request, "unsubscribe.html.j2", {"state": "done", "petition": found,
                                                   "petition_path": petition_path(found.slug)})


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
    done = await contacts.erase(request.app.state.signing.write, key)
    return Erased(erased=done.signatures + done.petitions, signatures=done.signatures, petitions=done.petitions)
