"""Petition events: one frozen envelope, one model per event type, versioned."""

import json
from datetime import datetime, timezone
from typing import Annotated, Any, Literal, Union
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Event(BaseModel):
    """Envelope shared by every petition event."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: UUID = Field(default_factory=uuid4)
    type: str
    schema_version: int = 1
    occurred_at: datetime = Field(default_factory=utc_now)
    petition_id: UUID
    correlation_id: str | None = None


class Organizer(BaseModel):
    """Who to write to about their own petition (never published on the site)."""

    model_config = ConfigDict(frozen=True)

    name: str
    email: str


class PetitionCreated(Event):
    """An organizer created a petition."""

    type: Literal["PetitionCreated"] = "PetitionCreated"
    title: str
    slug: str
    target: str
    organizer: Organizer


class SignatureAdded(Event):
    """Someone signed a petition for the first time (no name, no email)."""

    type: Literal["SignatureAdded"] = "SignatureAdded"
    signature_id: UUID
    country: str | None = None
    updates: bool = False


class MilestoneReached(Event):
    """A petition's count reached a milestone on the ladder."""

    type: Literal["MilestoneReached"] = "MilestoneReached"
    milestone: int
    count: int
    next_goal: int


AnyEvent = Annotated[
    Union[PetitionCreated, SignatureAdded, MilestoneReached],
    Field(discriminator="type"),
]
_any_event = TypeAdapter(AnyEvent)

# (type, schema_version) -> function turning that version's dict into the next version's.
UPCASTERS: dict[tuple[str, int], Any] = {}


def upcast(data: dict[str, Any]) -> dict[str, Any]:
    """Bring an older event version up to the current one, step by step."""
    while (step := UPCASTERS.get((data.get("type"), data.get("schema_version", 1)))) is not None:
        data = step(data)
    return data


def decode_event(payload: bytes | str | dict[str, Any]) -> PetitionCreated | SignatureAdded | MilestoneReached:
    """Parse an event from its JSON form; raises ValueError (pydantic's included) on bad input."""
    if not UPCASTERS and not isinstance(payload, dict):
        # Every version is current: parse and validate in one pass (pydantic-core, no dict between).
        return _any_event.validate_json(payload)
    data = payload if isinstance(payload, dict) else json.loads(payload)
    if not isinstance(data, dict):
        raise ValueError("an event is a JSON object")
    return _any_event.validate_python(upcast(data))


def encode_event(event: Event) -> bytes:
    return event.model_dump_json().encode()
