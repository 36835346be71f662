"""The notifier's one read API, for signing's organizer dashboard: how many of a petition's emails
were sent, refused for good, or are still on their way, by kind. Read from the delivery ledger,
which holds no address (a recipient is "organizer", a signature id or a link id)."""

from uuid import UUID

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPBearer
from pydantic import BaseModel, Field

from services.notifier.delivery import APPROVED, CONFIRMATION, DECISION_MAKER, REJECTED, SIGN_IN, tallies
from services.notifier.fanout import threshold_of
from shared.http import bearer_token_guard

router = APIRouter(tags=["internal"])
bearer = HTTPBearer(auto_error=False, description="GROUNDSWELL_INTERNAL_TOKEN")
require_internal = bearer_token_guard("internal_token", bearer, "The email figures")


class Tally(BaseModel):
    sent: int = 0
    failed: int = 0  # refused by the mail server for good: never retried
    waiting: int = 0  # not sent yet: being sent, or waiting to be retried

    def add(self, sent: int, failed: int, waiting: int) -> None:
        self.sent += sent
        self.failed += failed
        self.waiting += waiting


class UpdateTally(Tally):
    number: int


class EmailFigures(BaseModel):
    confirmations: Tally  # "confirm your signature" links
    organizer: Tally  # milestones and moderators' decisions, to the organizer
    supporters: Tally  # "counting on you" at milestones, to supporters who opted in
    updates: list[UpdateTally]  # the organizer's updates, newest first
    decision_maker: Tally = Field(default_factory=Tally)  # the petition, to its decision maker at each threshold
    responses: Tally = Field(default_factory=Tally)  # decision makers' responses, to supporters who opted in


@router.get("/internal/petitions/{petition_id}/emails", dependencies=[Depends(require_internal)])
async def email_figures(petition_id: UUID, request: Request) -> EmailFigures:
    """Emails of this petition by kind (sign-in links are left out: they are the organizer's own)."""
    rows = await tallies(request.app.state.runtime.sessions, str(petition_id))
    figures = EmailFigures(confirmations=Tally(), organizer=Tally(), supporters=Tally(), updates=[])
    updates: dict[int, UpdateTally] = {}
    for topic, to_organizer, *tally in rows:
        if topic == CONFIRMATION:
            figures.confirmations.add(*tally)
        elif topic == DECISION_MAKER:
            figures.decision_maker.add(*tally)
        elif topic in (APPROVED, REJECTED) or (topic > 0 and to_organizer):
            figures.organizer.add(*tally)
        elif topic > 0 and topic != SIGN_IN:
            figures.supporters.add(*tally)
        elif threshold_of(topic) is not None:
            figures.responses.add(*tally)
        elif topic < 0:
            updates.setdefault(-topic, UpdateTally(number=-topic)).add(*tally)
    figures.updates = [updates[n] for n in sorted(updates, reverse=True)]
    return figures
