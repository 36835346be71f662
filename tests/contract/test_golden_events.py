"""Today's code still reads every event version ever published (golden files)."""

import json
from pathlib import Path

import pytest

from shared.events import MilestoneReached, PetitionCreated, SignatureAdded, decode_event, encode_event
from shared.subjects import event_subject

GOLDEN = Path(__file__).parent / "golden"
CURRENT = {"PetitionCreated": PetitionCreated, "SignatureAdded": SignatureAdded, "MilestoneReached": MilestoneReached}


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.json")), ids=lambda p: p.stem)
def test_golden_event_still_decodes_and_round_trips(path):
    raw = json.loads(path.read_text())
    event = decode_event(path.read_bytes())
    assert isinstance(event, CURRENT[raw["type"]])
    assert str(event.event_id) == raw["event_id"] and str(event.petition_id) == raw["petition_id"]
    assert json.loads(encode_event(event)) == raw


def test_every_event_type_has_a_golden_file():
    assert {p.stem.split(".")[0] for p in GOLDEN.glob("*.json")} == set(CURRENT)


def test_signature_added_carries_no_name_or_email():
    raw = json.loads((GOLDEN / "SignatureAdded.v1.json").read_text())
    assert set(raw) == {"event_id", "type", "schema_version", "occurred_at", "petition_id", "correlation_id",
                        "signature_id", "country", "updates"}
    assert set(SignatureAdded.model_fields) == set(raw)


def test_unknown_fields_are_ignored_and_unknown_types_refused():
    raw = json.loads((GOLDEN / "SignatureAdded.v1.json").read_text())
    assert decode_event({**raw, "added_later": 1}) == decode_event(raw)
    with pytest.raises(ValueError):
        decode_event({**raw, "type": "SomethingElse"})
    with pytest.raises(ValueError):
        decode_event(b"[1, 2]")


def test_petition_id_is_a_subject_token():
    assert event_subject("abc", "SignatureAdded") == "petitions.abc.events.SignatureAdded"


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.json")), ids=lambda p: p.stem)
def test_the_counters_view_reads_what_the_contract_reads(path):
    """The counter reads only the fields counting needs (services/counter/projection.py Counted);
    for every golden event it must agree with the whole contract, or refuse what it does not count."""
    from services.counter.projection import counted

    event = decode_event(path.read_bytes())
    if not isinstance(event, (PetitionCreated, SignatureAdded)):
        with pytest.raises(ValueError):
            counted(path.read_bytes())
        return
    view = counted(path.read_bytes())
    assert (view.event_id, view.type, view.petition_id, view.correlation_id) == (
        str(event.event_id), event.type, str(event.petition_id), event.correlation_id)
    assert view.slug == getattr(event, "slug", None)
