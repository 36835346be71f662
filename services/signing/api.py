"""HTTP routes of the signing service: parse, call one use case, answer."""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer

from services.signing.fastpath import answer_headers, sign_and_answer
from services.signing.pages import ERASED_ORGANIZER, client_of
from services.signing.schemas import (Accepted, Closure, OrganizerOut, PetitionChange, PetitionIn, PetitionOut,
                                     SignatureIn)
from services.signing.service import PetitionNotFound, Signing, SlugTaken, StatusConflict
from shared.http import bearer_token_guard, request_id

router = APIRouter()
bearer = HTTPBearer(auto_error=False, description="GROUNDSWELL_ADMIN_TOKEN")


async def signing(request: Request) -> Signing:
    """Async on purpose: a plain `def` dependency runs in the thread pool on every request."""
    return request.app.state.signing


require_admin = bearer_token_guard("admin_token", bearer, "This (creating and changing petitions, erasure)")


SigningDep = Annotated[Signing, Depends(signing)]


@router.post(
    "/petitions",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(require_admin)],
    responses={401: {"description": "Missing or wrong admin token"}, 409: {"description": "Slug taken"}},
)
async def create_petition(body: PetitionIn, request: Request, service: SigningDep) -> PetitionOut:
    """Create a petition (organizers; needs the admin token)."""
    try:
        petition = await service.create_petition(body, request_id(request))
    except SlugTaken as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, f"The slug '{exc}' is taken; choose another.") from None
    return public_petition(petition, request)


@router.get("/petitions/{ref}", responses={404: {"description": "Unknown petition"}})
async def get_petition(ref: str, request: Request, service: SigningDep) -> PetitionOut:
    """A petition's public fields, by id or slug."""
    try:
        petition = await service.get_petition(ref)
    except PetitionNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No petition '{ref}'.") from None
    return public_petition(petition, request)


@router.patch("/petitions/{ref}", dependencies=[Depends(require_admin)],
              responses={401: {"description": "Missing or wrong admin token"}, 404: {"description": "Unknown petition"}})
async def update_petition(ref: str, body: PetitionChange, request: Request, service: SigningDep) -> PetitionOut:
    """Change the petition's story (a PetitionUpdated event; the page shows the new text)."""
    try:
        petition = await service.update_petition(ref, body.story, request_id(request))
    except PetitionNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No petition '{ref}'.") from None
    return public_petition(petition, request)


@router.post("/petitions/{ref}/closure", dependencies=[Depends(require_admin)],
             responses={401: {"description": "Missing or wrong admin token"}, 404: {"description": "Unknown petition"},
                        409: {"description": "The petition has won; it stays won"}})
async def close_petition(ref: str, body: Closure, request: Request, service: SigningDep) -> PetitionOut:
    """Close the petition or declare victory (a PetitionClosed event): signing refuses new
    signatures with a 409 that says so, and the page says so. Repeating it changes nothing."""
    try:
        petition = await service.close_petition(ref, body.outcome, request_id(request))
    except PetitionNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No petition '{ref}'.") from None
    except StatusConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return public_petition(petition, request)


ACCEPTED_BODY = Accepted().model_dump_json().encode()


@router.post(
    "/petitions/{ref}/signatures",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses={404: {"description": "Unknown petition"}, 409: {"description": "The petition is closed or won"},
               413: {"description": "Body too large"}},
)
async def sign_petition(ref: str, body: SignatureIn, request: Request, service: SigningDep) -> Response:
    """Sign a petition. A repeat answers exactly like a first signature and is not counted again.
    The 202 comes once the signature is committed."""
    code, answer = await sign_and_answer(service, ref, body, request_id(request), client_of(request))
    if code == status.HTTP_202_ACCEPTED:
        return Response(ACCEPTED_BODY, status_code=code, media_type="application/json")
    return JSONResponse(answer, status_code=code,
                        headers={name.decode(): value.decode() for name, value in answer_headers(code)})


def public_petition(petition, request: Request) -> PetitionOut:
    public_url = request.app.state.settings.public_url.rstrip("/")
    return PetitionOut(
        id=petition.id,
        slug=petition.slug,
        title=petition.title,
        target=petition.target,
        story=petition.story,
        organizer=OrganizerOut(name=petition.organizer_name or ERASED_ORGANIZER),
        created_at=petition.created_at,
        status=petition.status,
        links={
            "self": f"/petitions/{petition.id}",
            "sign": f"/petitions/{petition.id}/signatures",
            "page": f"{public_url}/p/{petition.slug}",
        },
    )
