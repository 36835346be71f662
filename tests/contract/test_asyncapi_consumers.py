"""The committed AsyncAPI document names every event type a consumer handles (issue 23).

The document is generated from the consumers' registries (services/asyncapi.py); this test reads
the committed file, so a handler added without `groundswell docs` fails here, and so would a
generator that dropped a handled type."""

import json
from pathlib import Path

from services.asyncapi import CONSUMERS
from shared.consumers import Registry
from contract.events import OrganizerErased, type_filter

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json"


def missing(document: dict, registry: Registry) -> set[str]:
    """The event types `registry` handles that `document` does not show it receiving, each on
    its own subject and with its model among the payloads."""
    schemas = document["components"]["schemas"]
    payload = schemas.get(f"{registry.durable}:Message:Payload", {})
    refs = {option.get("$ref") for option in payload.get("anyOf", [payload])}
    received = {op["channel"]["$ref"].rsplit("/", 1)[1].replace("%2A", "*")
                for op in document["operations"].values() if op["action"] == "receive"}
    return {t for t in registry.types
            if f"{registry.durable}:{type_filter(t)}" not in received
            or f"#/components/schemas/{t}" not in refs or t not in schemas}


def test_every_handled_event_type_is_in_the_committed_document():
    document = json.loads(DOCUMENT.read_text())
    assert {registry.durable for registry in CONSUMERS} == {"counter", "notifier"}
    for registry in CONSUMERS:
        assert len(registry.types) >= 6
        assert missing(document, registry) == set(), f"run `groundswell docs`: {registry.durable}"


def test_a_handler_the_document_lacks_is_found():
    document = json.loads(DOCUMENT.read_text())
    counting = next(r for r in CONSUMERS if r.durable == "counter")
    grown = Registry(counting.durable, counting.about, counting.decode)
    for event_type, model in zip(counting.types, counting.models):
        grown.on(model)(counting.handler(event_type).run)
    grown.on(OrganizerErased)(lambda change, event: None)  # a new handler, the document not regenerated
    assert missing(document, grown) == {"OrganizerErased"}
