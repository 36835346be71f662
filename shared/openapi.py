"""The OpenAPI documents say what the services really answer.

FastAPI documents a 422 as its own `HTTPValidationError`, while every service answers
`{"detail": "...", "errors": {"field": "message"}}` (shared/http.py invalid_input), and it knows
nothing of the answers that come from middleware and handlers: 400 for a body that cannot be
read, 401 without the token, 403 for a cross-site post, 413 for a body over the limit, and 503
with Retry-After while the database is away. `describe_answers(app)` rewrites the generated
document once, so `/openapi.json`, docs/openapi/ and the schemathesis test
(tests/integration/test_api_schema.py) all see the same truth.
"""

from typing import Any

from fastapi import FastAPI

PROBLEM = {
    "title": "Problem",
    "type": "object",
    "description": "Every error: a message a site developer can act on.",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
INVALID_INPUT = {
    "title": "InvalidInput",
    "type": "object",
    "description": "422: a summary, one readable message per field (dotted path for nested fields), and each "
                   "field's kind of problem, for a page that words its own message in its reader's language.",
    "properties": {
        "detail": {"type": "string", "examples": ["Invalid input. email: value is not a valid email address"]},
        "errors": {"type": "object", "additionalProperties": {"type": "string"},
                   "examples": [{"email": "value is not a valid email address"}]},
        "codes": {"type": "object", "additionalProperties": {"type": "string", "enum": ["missing", "too_long", "invalid"]},
                  "examples": [{"email": "invalid"}]},
    },
    "required": ["detail", "errors"],
}
UNAVAILABLE = {
    "title": "Unavailable",
    "type": "object",
    "description": "503: a dependency is down (`unavailable` names it) or the process is full; nothing was done. "
                   "Retry after the Retry-After header's seconds.",
    "properties": {"detail": {"type": "string"}, "unavailable": {"type": "string", "examples": ["database"]}},
    "required": ["detail"],
}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before trying again.", "schema": {"type": "integer"}}}
UNSAFE = {"post", "put", "patch", "delete"}


def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


def describe_answers(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        schemas.update(Problem=PROBLEM, InvalidInput=INVALID_INPUT, Unavailable=UNAVAILABLE)
        for operations in document.get("paths", {}).values():
            for method, operation in operations.items():
                _answers(method, operation)
        app.openapi_schema = document
        return document

    app.openapi = openapi


def _answers(method: str, operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    if "requestBody" in operation:
        responses.setdefault("400", {"description": "The body could not be read (e.g. a broken form or encoding)."})
        responses.setdefault("413", {"description": "The body is larger than GROUNDSWELL_MAX_BODY_BYTES."})
    if operation.get("security"):
        responses.setdefault("401", {"description": "Missing or wrong bearer token.",
                                     "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}}})
    if method in UNSAFE:
        responses.setdefault("403", {"description": "Sent by a browser from another site: its Origin (or Referer) "
                                                    "is neither this site nor in GROUNDSWELL_CORS_ORIGINS."})
    if "422" in responses or operation.get("parameters") or "requestBody" in operation:
        responses["422"] = {"description": "Invalid input: one message per field.", "content": _json("InvalidInput")}
    busy = responses.get("503", {}).get("description")
    away = "The database is away; nothing was done."
    responses["503"] = {"description": f"{busy}; or: {away}" if busy else away,
                        "headers": RETRY_AFTER, "content": _json("Unavailable")}
    for status, response in responses.items():
        if status[0] in "45" and "content" not in response:
            response["content"] = _json("Problem")
