"""The committed API documents: AsyncAPI for the events, OpenAPI for each HTTP service.

`groundswell docs` writes them; tests/unit/test_api_docs.py fails when they are out of date."""

import json
from pathlib import Path
from typing import Any


def api_documents() -> dict[str, dict[str, Any]]:
    """Relative path -> document."""
    from services.cli import settings_classes
    from services.counter.app import create_app as counter_app
    from services.notifier.app import create_app as notifier_app
    from services.signing.app import create_app as signing_app
    from services.asyncapi import asyncapi_document

    apps = {"signing": signing_app, "counter": counter_app, "notifier": notifier_app}
    classes = settings_classes()
    documents = {"asyncapi.json": asyncapi_document()}
    for service, create_app in apps.items():
        settings = classes[service](database_url="sqlite+aiosqlite:///unused.db")  # never connected
        documents[f"openapi/{service}.json"] = create_app(settings).openapi()
    return documents


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def write_api_docs(out: str | Path) -> list[Path]:
    written = []
    for relative, document in api_documents().items():
        path = Path(out) / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(document))
        written.append(path)
    return written
