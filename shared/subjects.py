"""Stream, subject and consumer names: the addressing half of the contract."""

from uuid import UUID

STREAM = "PETITIONS"
SUBJECT_PREFIX = "petitions"
STREAM_SUBJECTS = [f"{SUBJECT_PREFIX}.*.events.*"]

# Events that change what a petition shows (signing caches petitions and forgets them on these).
PETITION_EVENT_TYPES = ("PetitionCreated", "OrganizerErased", "PetitionUpdated", "PetitionClosed", "OrganizerConfirmed",
                        "PetitionApproved", "PetitionRejected")

COUNTER_DURABLE = "counter"
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
