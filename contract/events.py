"""Petition events: one frozen envelope, one model per event type, versioned."""

import json
from datetime import datetime, timezone
from typing import Annotated, Any, ClassVar, Literal, Union, get_args
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Event(BaseModel):
    """Envelope shared by every petition event."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    published_by: ClassVar[str] = "signing"  # the service whose outbox it leaves from (not in the payload)

    event_id: UUID = Field(default_factory=uuid4)
    type: str
    schema_version: int = 1
    occurred_at: datetime = Field(default_factory=utc_now)
    petition_id: UUID
    correlation_id: str | None = None


class PetitionCreated(Event):
    """An organizer created a petition. Version 2 carries no personal data: the notifier asks
    signing for the organizer's contact when it writes to them (docs/personal-data.md). Version 3
    says whether it is public at once (`open`: created with the admin token) or waits for its
    organizer to confirm their email (`unconfirmed`: started at /start); earlier ones were open."""

    type: Literal["PetitionCreated"] = "PetitionCreated"
    schema_version: int = 3
    title: str
    slug: str
    target: str
    status: Literal["open", "unconfirmed"] = "open"


class SignatureAdded(Event):
    """A signature that counts: confirmed by its emailed link (or stored, when confirmation is
    off). Once per signer and petition; no name, no email."""

    type: Literal["SignatureAdded"] = "SignatureAdded"
    signature_id: UUID
    country: str | None = None
    updates: bool = False


class ConfirmationRequested(Event):
    """Someone signed and must confirm by following an emailed link (or asked for the link again).
    No address: the notifier reads it from signing when it writes the email."""

    type: Literal["ConfirmationRequested"] = "ConfirmationRequested"
    signature_id: UUID
    request: int = 1  # 1 for the first link, then one more for each resend


class SignatureInvalidated(Event):
    """A moderator invalidated a signature that counted: it counts no more. Version 2 says where
    and when it had counted (its SignatureAdded's country and time), so the counter takes it out
    of the same country and hour; version 1 did not (read as unknown)."""

    type: Literal["SignatureInvalidated"] = "SignatureInvalidated"
    schema_version: int = 2
    signature_id: UUID
    moderation_id: UUID  # the moderation action (signing's record says what, which filter, when)
    country: str | None = None
    counted_at: datetime | None = None


class MilestoneReached(Event):
    """A petition's count reached a milestone on the ladder."""

    published_by: ClassVar[str] = "counter"

    type: Literal["MilestoneReached"] = "MilestoneReached"
    milestone: int
    count: int
    next_goal: int


class PetitionUpdated(Event):
    """The organizer changed what the petition says. Names the fields, not their text (a story may
    name people, and the stream cannot be purged): signing, which holds the text, shows the new one."""

    type: Literal["PetitionUpdated"] = "PetitionUpdated"
    schema_version: int = 2
    fields: list[Literal["story", "translation"]]
    language: str | None = None  # the translation's language (a code such as "fr"), for fields ["translation"]


class OrganizerConfirmed(Event):
    """The organizer of a petition started at /start followed their emailed link: the petition is
    live (`live`), or waits for a moderator (GROUNDSWELL_MODERATE_PETITIONS)."""

    type: Literal["OrganizerConfirmed"] = "OrganizerConfirmed"
    live: bool


class PetitionApproved(Event):
    """A moderator approved the petition: it is live. The notifier tells the organizer."""

    type: Literal["PetitionApproved"] = "PetitionApproved"


class PetitionRejected(Event):
    """A moderator rejected the petition: it never goes live. The notifier tells the organizer
    (the moderator's note stays in signing)."""

    type: Literal["PetitionRejected"] = "PetitionRejected"


class PetitionClosed(Event):
    """The petition takes no more signatures: closed, or won (the organizer declared victory)."""

    type: Literal["PetitionClosed"] = "PetitionClosed"
    outcome: Literal["closed", "won"]


class SignInRequested(Event):
    """Someone asked for a sign-in link to this petition's dashboard: the notifier emails it to the
    organizer's address, which it reads from signing with the link (neither is in the event)."""

    type: Literal["SignInRequested"] = "SignInRequested"
    link_id: UUID
    purpose: Literal["sign_in", "confirm"] = "sign_in"  # confirm: a petition just started at /start


class UpdatePosted(Event):
    """The organizer posted update number `number` to the supporters who opted in. The text stays
    in signing; the notifier reads it when it writes the emails."""

    type: Literal["UpdatePosted"] = "UpdatePosted"
    number: int = Field(ge=1)


class OrganizerErased(Event):
    """The organizer of this petition was erased in signing; the event holds only the petition id.
    Signing replicas render the petition's pages again."""

    type: Literal["OrganizerErased"] = "OrganizerErased"


class ThresholdReached(Event):
    """A petition's count reached one of the deployment's thresholds (GROUNDSWELL_THRESHOLDS), once:
    a count pushed back under it and up again does not reach it twice."""

    published_by: ClassVar[str] = "counter"

    type: Literal["ThresholdReached"] = "ThresholdReached"
    threshold: int = Field(ge=1)
    label: str  # the deployment's name for it ("Response due"), as configured when it was reached
    count: int


class DecisionMakerNotified(Event):
    """Signing issued the decision maker a single-use link to respond, at a threshold: the notifier
    emails them the petition once (it reads the address and the link from signing; neither is here)."""

    type: Literal["DecisionMakerNotified"] = "DecisionMakerNotified"
    threshold: int = Field(ge=1)
    link_id: UUID


class ResponsePublished(Event):
    """The decision maker published a response (to the threshold their link was for). The text stays
    in signing; the page and the petition's JSON show it, and the supporters who opted in get it."""

    type: Literal["ResponsePublished"] = "ResponsePublished"
    threshold: int = Field(ge=1)


AnyEvent = Annotated[
    Union[PetitionCreated, SignatureAdded, ConfirmationRequested, SignatureInvalidated, MilestoneReached,
          OrganizerErased, PetitionUpdated, PetitionClosed, SignInRequested, UpdatePosted, OrganizerConfirmed,
          PetitionApproved, PetitionRejected, ThresholdReached, DecisionMakerNotified, ResponsePublished],
    Field(discriminator="type"),
]
_any_event = TypeAdapter(AnyEvent)
EVENT_MODELS: tuple[type[Event], ...] = get_args(get_args(AnyEvent)[0])  # every event type on the stream

CURRENT_VERSIONS = {"PetitionCreated": 3, "SignatureInvalidated": 2, "PetitionUpdated": 2}  # types not named here are at version 1


def _petition_created_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 carried the organizer's contact; reading it drops that field."""
    data = {key: value for key, value in data.items() if key != "organizer"}
    return {**data, "schema_version": 2}


def _petition_created_v2(data: dict[str, Any]) -> dict[str, Any]:
    """Version 2 petitions were all public at once."""
    return {**data, "schema_version": 3, "status": "open"}


def _signature_invalidated_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 did not say where and when the signature had counted: unknown."""
    return {**data, "schema_version": 2, "country": None, "counted_at": None}


def _petition_updated_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 changed only the story, in the petition's own language."""
    return {**data, "schema_version": 2, "language": None}


# (type, schema_version) -> function turning that version's dict into the next version's.
UPCASTERS: dict[tuple[str, int], Any] = {("PetitionCreated", 1): _petition_created_v1,
                                         ("PetitionCreated", 2): _petition_created_v2,
                                         ("SignatureInvalidated", 1): _signature_invalidated_v1,
                                         ("PetitionUpdated", 1): _petition_updated_v1}


def upcast(data: dict[str, Any]) -> dict[str, Any]:
    """Bring an older event version up to the current one, step by step."""
    while (step := UPCASTERS.get((data.get("type"), data.get("schema_version", 1)))) is not None:
        data = step(data)
    return data


AnyEventType = (PetitionCreated | SignatureAdded | ConfirmationRequested | SignatureInvalidated | MilestoneReached
                | OrganizerErased | PetitionUpdated | PetitionClosed | SignInRequested | UpdatePosted
                | OrganizerConfirmed | PetitionApproved | PetitionRejected | ThresholdReached | DecisionMakerNotified
                | ResponsePublished)


def decode_event(payload: bytes | str | dict[str, Any]) -> AnyEventType:
    """Parse an event from its JSON form; raises ValueError (pydantic's included) on bad input."""
    if not isinstance(payload, dict):
        # Parse and validate in one pass (pydantic-core, no dict between); only an older version
        # (fields it had are ignored on the way in) goes round again through its upcasters.
        event = _any_event.validate_json(payload)
        if event.schema_version >= CURRENT_VERSIONS.get(event.type, 1):
            return event
    data = payload if isinstance(payload, dict) else json.loads(payload)
    if not isinstance(data, dict):
        raise ValueError("an event is a JSON object")
    return _any_event.validate_python(upcast(data))


def encode_event(event: Event) -> bytes:
    return event.model_dump_json().encode()


# Where events go: the stream, its subjects, and the consumers' names.

STREAM = "PETITIONS"
SUBJECT_PREFIX = "petitions"
STREAM_SUBJECTS = [f"{SUBJECT_PREFIX}.*.events.*"]

# Events that change what a petition shows (signing caches petitions and forgets them on these).
PETITION_EVENT_TYPES = ("PetitionCreated", "OrganizerErased", "PetitionUpdated", "PetitionClosed", "OrganizerConfirmed",
                        "PetitionApproved", "PetitionRejected", "DecisionMakerNotified", "ResponsePublished")

COUNTER_DURABLE = "counter"
LISTING_DURABLE = "listing"  # the counter's discovery projection (texts read from signing)
SIGNING_DURABLE = "signing"  # signing's reactions (a threshold reached: the decision maker's link)
NOTIFIER_DURABLE = "notifier"


def event_subject(petition_id: UUID | str, event_type: str) -> str:
    """`petitions.<petition id>.events.<type>`: the petition id is a subject token."""
    return f"{SUBJECT_PREFIX}.{petition_id}.events.{event_type}"


def petition_of(subject: str) -> str:
    """The petition id token of an event subject."""
    return subject.split(".")[1]


def type_filter(event_type: str) -> str:
    """Every petition's events of one type."""
    return f"{SUBJECT_PREFIX}.*.events.{event_type}"
