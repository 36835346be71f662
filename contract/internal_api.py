"""The internal HTTP contract: what signing answers the notifier when it writes an email (the
people's contacts, which never enter the event log), behind GROUNDSWELL_INTERNAL_TOKEN. One
definition for the side that answers and the side that reads."""

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, Field


class Recipient(BaseModel):
    """A supporter who opted in to updates."""

    signature_id: str
    name: str
    email: str
    unsubscribe_url: str
    language: str = "en"  # what their emails speak: theirs, else the petition's


class Recipients(BaseModel):
    """One page of GET /internal/petitions/{id}/recipients."""

    recipients: list[Recipient]
    next: str | None = None  # pass as `after` for the next page; null on the last page


class ConfirmationsIn(BaseModel):
    signature_ids: list[UUID] = Field(max_length=1000)


class Confirmation(BaseModel):
    signature_id: str
    petition_id: str
    name: str
    email: str
    confirm_url: str
    language: str = "en"


class Confirmations(BaseModel):
    confirmations: list[Confirmation]  # only signatures still waiting for their link


class OrganizerContact(BaseModel):
    name: str
    email: str
    review_note: str | None = None  # a moderator's note on the petition, for the rejection email
    language: str = "en"  # the petition's language: every email to its organizer speaks it
    milestone_emails: bool = True  # False: the organizer turned milestone emails off


class SignInLinksIn(BaseModel):
    link_ids: Annotated[list[UUID], Field(max_length=500)]


class SignInLink(BaseModel):
    link_id: str
    petition_id: str
    name: str
    email: str
    sign_in_url: str
    language: str = "en"


class SignInLinks(BaseModel):
    links: list[SignInLink]  # only links still unused, unexpired, to an organizer not erased


class UpdateText(BaseModel):
    """An organizer's update to supporters, as the emails carry it."""

    number: int
    subject: str
    body: str
    posted_at: datetime


class Translation(BaseModel):
    language: str
    title: str
    story: str


class Response(BaseModel):
    """A decision maker's published response."""

    threshold: int
    responder: str  # who answered, as they signed it ("Office of the Mayor"): public
    body: str
    published_at: datetime


class PublicText(BaseModel):
    """GET /internal/petitions/{id}/public: what a petition says publicly, for the counter's
    discovery list and petition JSON (the decision maker's address is not in it)."""

    petition_id: str
    title: str
    story: str
    language: str
    created_at: datetime
    translations: list[Translation] = []
    responses: list[Response] = []


class DecisionMakerLinksIn(BaseModel):
    link_ids: Annotated[list[UUID], Field(max_length=500)]


class DecisionMakerLink(BaseModel):
    """Where and how to write to a petition's decision maker at a threshold."""

    link_id: str
    petition_id: str
    threshold: int
    label: str  # the threshold's name, as the deployment set it when it was reached
    email: str
    language: str  # the petition's
    respond_url: str  # single use, until expires_at
    summary_url: str  # the delivery summary (count, countries, chart), readable with the same link
    expires_at: datetime


class DecisionMakerLinks(BaseModel):
    links: list[DecisionMakerLink]  # only links still unused and unexpired, to a decision maker still named
