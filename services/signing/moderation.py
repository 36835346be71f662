"""Moderation's routes (admin token); what they do is services/signing/moderate.py."""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status

from services.signing import moderate
from services.signing.api import SigningDep, require_admin
from services.signing.moderate import ActionIn, ActionOut, SignaturesOut
from services.signing.service import PetitionNotFound
from shared.http import request_id

router = APIRouter(tags=["admin"], dependencies=[Depends(require_admin)],
                   responses={401: {"description": "Missing or wrong admin token"},
                              404: {"description": "Unknown petition"}})


async def _petition_id(service, ref: str) -> str:
    try:
        return (await service.get_petition(ref)).id
    except PetitionNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No petition '{ref}'.") from None


@router.post("/admin/petitions/{ref}/invalidations")
async def invalidate(ref: str, body: ActionIn, request: Request, service: SigningDep) -> ActionOut:
    """Invalidate the petition's signatures that the filter selects (`dry_run`: only count them).
    Those that counted are subtracted from the count (a SignatureInvalidated each)."""
    return await moderate.invalidate(service.write, await _petition_id(service, ref), body, request_id(request))


@router.post("/admin/petitions/{ref}/releases")
async def release(ref: str, body: ActionIn, request: Request, service: SigningDep) -> ActionOut:
    """Release the petition's held signatures that the filter selects (`dry_run`: only count them):
    each gets its confirmation email (with confirmation off, it counts at once)."""
    return await moderate.release(service.write, await _petition_id(service, ref), body, request_id(request),
                                  confirm=request.app.state.settings.confirm_signatures)


@router.get("/admin/petitions/{ref}/moderation")
async def actions(ref: str, service: SigningDep) -> list[ActionOut]:
    """Every moderation action on this petition, dry runs included, oldest first."""
    return await moderate.actions(service.sessions, await _petition_id(service, ref))


@router.get("/admin/petitions/{ref}/signatures")
async def signatures(
    ref: str, service: SigningDep,
    state: Annotated[Literal["pending", "held", "confirmed", "invalidated"], Query()] = "held",
    after: Annotated[str, Query(max_length=36, pattern=r"^[0-9a-fA-F-]*$",
                                description="The `next` of the previous page.")] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> SignaturesOut:
    """The petition's signatures in one state (held by default), for moderators: why held, the
    address's domain, the country, the client address's keyed hash, when. In id order, by pages."""
    return await moderate.signatures(service.sessions, await _petition_id(service, ref), state, after, limit)
