"""The committed API documents are what the code generates, and describe the whole contract."""

from pathlib import Path

from services.api_docs import api_documents, render
from contract.events import Event, type_filter

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_committed_documents_are_current():
    for relative, document in api_documents().items():
        path = DOCS / relative
        assert path.exists(), f"{path} is missing: run `groundswell docs`"
        assert path.read_text() == render(document), f"{path} is out of date: run `groundswell docs`"


def test_asyncapi_describes_every_event_on_its_subject():
    document = api_documents()["asyncapi.json"]
    event_types = {cls.model_fields["type"].default for cls in Event.__subclasses__()}
    assert event_types == {"PetitionCreated", "SignatureAdded", "MilestoneReached", "OrganizerErased",
                           "ConfirmationRequested", "SignatureInvalidated", "PetitionUpdated", "PetitionClosed",
                           "SignInRequested", "UpdatePosted", "OrganizerConfirmed", "PetitionApproved",
                           "PetitionRejected", "ThresholdReached", "DecisionMakerNotified", "ResponsePublished"}
    assert event_types <= set(document["components"]["schemas"])
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == {type_filter(t) for t in event_types}
    published = {name.split(":")[1] for name, op in document["operations"].items() if op["action"] == "send"}
    assert published == event_types
    for event_type in event_types:  # nobody's contact in any event (issue 9)
        assert not {"name", "email", "organizer"} & set(document["components"]["schemas"][event_type]["properties"])


def test_openapi_documents_the_public_endpoints():
    documents = api_documents()
    assert "/petitions/{ref}/signatures" in documents["openapi/signing.json"]["paths"]
    assert "/petitions/{ref}/count" in documents["openapi/counter.json"]["paths"]
    counter = documents["openapi/counter.json"]["paths"]
    assert {"/petitions.json", "/petitions.csv"} <= set(counter)  # the discovery list as open data
    assert {p["name"] for p in counter["/petitions.json"]["get"]["parameters"]} == {"q", "order", "state", "page"}
    assert "text/csv" in counter["/petitions.csv"]["get"]["responses"]["200"]["content"]
