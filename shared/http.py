"""HTTP edges shared by the services: request ids, body limits, readable 422s, health."""

import itertools
import json
import re
import uuid
from collections.abc import Awaitable, Callable

import structlog
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_KEY = REQUEST_ID_HEADER.lower().encode()
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


_PROCESS = uuid.uuid4().hex[:20]
_SEQUENCE = itertools.count(1)


def new_request_id() -> str:
    """32 hex digits like a uuid4's, unique across processes (a random prefix per process)
    without a random draw per request."""
    return f"{_PROCESS}{next(_SEQUENCE):012x}"


def request_id_of(headers: dict[bytes, bytes]) -> str:
    """The caller's X-Request-ID when it is a safe token, else a new one."""
    given = headers.get(_REQUEST_ID_KEY, b"").decode("latin-1")
    return given if _SAFE_REQUEST_ID.match(given) else new_request_id()


class RequestIdMiddleware:
    """Takes X-Request-ID (or makes one), binds it to every log line, echoes it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(dict(scope["headers"]))
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((REQUEST_ID_HEADER.encode(), request_id.encode()))
            await send(message)

        with structlog.contextvars.bound_contextvars(correlation_id=request_id):
            await self.app(scope, receive, send_with_id)


class BodyLimitMiddleware:
    """Answers 413 for a body over the limit, declared or streamed."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if too_large(declared, self.max_body_bytes):
            await _too_large(self.max_body_bytes, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    # Raised inside the route's body read, so FastAPI answers it as a 413.
                    raise HTTPException(413, too_large_detail(self.max_body_bytes))
            return message

        await self.app(scope, limited_receive, send)


def too_large(declared: bytes | None, limit: int) -> bool:
    """A Content-Length that is not a number, or over the limit."""
    return declared is not None and (not declared.isdigit() or int(declared) > limit)


def too_large_detail(limit: int) -> str:
    return f"Request body is larger than {limit} bytes."


async def _too_large(limit: int, send: Send) -> None:
    body = json.dumps({"detail": too_large_detail(limit)}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def field_errors(errors) -> dict[str, str]:
    """Pydantic's errors as one readable message per field (the first), for people to act on."""
    found: dict[str, str] = {}
    for error in errors:
        location = [str(part) for part in error.get("loc", ()) if part != "body"]
        field = ".".join(location) or "body"
        message = error.get("msg", "is invalid")
        if error.get("type") == "json_invalid":
            field, message = "body", "Request body is not valid JSON."
        elif error.get("type") == "missing":
            message = "is required"
        elif error.get("type") == "extra_forbidden":
            message = "is not a known field"
        found.setdefault(field, message.removeprefix("Value error, "))
    return found


def invalid_input(errors) -> dict:
    """The 422 body: a summary and one readable message per field, e.g. {"errors": {"email": "..."}}."""
    found = field_errors(errors)
    summary = "; ".join(f"{field}: {message}" for field, message in found.items())
    return {"detail": f"Invalid input. {summary}", "errors": found}


async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with one readable message per field."""
    return JSONResponse(invalid_input(exc.errors()), status_code=422)


def request_id(request: Request) -> str:
    return request.scope.get("state", {}).get("request_id") or new_request_id()


def add_health_routes(app: FastAPI, readiness: Callable[[], Awaitable[dict[str, bool]]]) -> None:
    """/livez answers while the process runs; /readyz checks the dependencies; /metrics."""
    from shared.metrics import add_metrics

    add_metrics(app)

    @app.get("/livez", include_in_schema=False)
    async def livez() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        checks = await readiness()
        ready = all(checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


def add_cors(app: FastAPI, origins: str) -> None:
    """Let the listed origins (comma-separated, or `*`) call the API from a browser."""
    from starlette.middleware.cors import CORSMiddleware

    allowed = [origin.strip() for origin in origins.split(",") if origin.strip()]
    if allowed:
        app.add_middleware(
            CORSMiddleware, allow_origins=allowed, allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "X-Request-ID"], expose_headers=["X-Request-ID"], max_age=600,
        )
