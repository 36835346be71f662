"""HTTP edges shared by the services: request ids, body limits, readable 422s, health."""

import itertools
import json
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated
from urllib.parse import urlsplit

import structlog
from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-ID"

# What every page says about itself, from the service or through the front door (deploy/Caddyfile
# sets the same on everything it answers; tests/unit/test_deploy.py keeps the two equal): scripts,
# styles and requests only from this origin and never inline, no framing by other sites.
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                           "form-action 'self'; frame-ancestors 'none'")
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}
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
    await send_json(send, 413, {"detail": too_large_detail(limit)})


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


async def text_form(request: Request) -> dict[str, str]:
    """A submitted form's fields, each as text (the last value of a repeated field). Every form here
    is text: a field sent as a file is a 422 naming it, where `str()` of the upload would otherwise
    have become a petition's title or a signer's name."""
    form = await request.form()
    files = sorted({field for field, value in form.multi_items() if not isinstance(value, str)})
    if files:
        raise RequestValidationError([{"loc": ("body", field), "type": "file_in_form",
                                       "msg": "must be text: this form takes no files"} for field in files])
    return {field: form[field] for field in form}


def error_kind(error) -> str:
    """What is wrong with a field, in one word a page can choose its own message by (in the reader's
    language): missing (absent or empty), too_long, or invalid."""
    kind = error.get("type", "")
    if kind in ("missing", "string_too_short"):
        return "missing"
    if kind == "string_too_long":
        return "too_long"
    return "invalid"


def field_kinds(errors) -> dict[str, str]:
    """{field: error_kind} of each field's first error, keyed as field_errors() keys them."""
    found: dict[str, str] = {}
    for error in errors:
        field = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"
        found.setdefault("body" if error.get("type") == "json_invalid" else field, error_kind(error))
    return found


def invalid_input(errors) -> dict:
    """The 422 body: a summary, one readable message per field, e.g. {"errors": {"email": "..."}}, and
    each field's kind of problem ({"codes": {"email": "invalid"}}: missing, too_long, invalid) for a page
    that words its own message in its reader's language."""
    found = field_errors(errors)
    summary = "; ".join(f"{field}: {message}" for field, message in found.items())
    return {"detail": f"Invalid input. {summary}", "errors": found, "codes": field_kinds(errors)}


async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with one readable message per field."""
    return JSONResponse(invalid_input(exc.errors()), status_code=422)


RETRY_AFTER_S = 5


def unavailable_answer(what: str = "database") -> tuple[dict, list[tuple[bytes, bytes]]]:
    """The 503 for a dependency that is down: a body saying what, and when to try again."""
    body = {"detail": f"The {what} is unavailable right now, so nothing was done. Retry after "
                      f"{RETRY_AFTER_S} seconds.", "unavailable": what}
    return body, [(b"retry-after", str(RETRY_AFTER_S).encode())]


async def database_error(request: Request, exc: Exception) -> JSONResponse:
    """A database that is down or restarting is a 503 with Retry-After, never a 500; any other
    database error is logged as the bug it is."""
    from shared.db import unavailable

    if unavailable(exc):
        structlog.get_logger("http").warning("dependency_unavailable", dependency="database",
                                              error=type(exc).__name__, path=request.url.path)
        body, headers = unavailable_answer("database")
        return JSONResponse(body, status_code=503, headers={k.decode(): v.decode() for k, v in headers})
    structlog.get_logger("http").error("database_error", error=type(exc).__name__, path=request.url.path)
    return JSONResponse({"detail": "Internal Server Error"}, status_code=500)


class Answered(Exception):
    """Raised by a dependency that already holds the whole answer (a page saying why not: sign in,
    not yours, no such petition): the route never runs, and this is the response."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


async def answered(request: Request, exc: Answered) -> Response:
    return exc.response


def add_error_handlers(app: FastAPI) -> None:
    """Readable 422s, 503 (not 500) while the database is away, and the answers of dependencies."""
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    app.add_exception_handler(Answered, answered)
    app.add_exception_handler(RequestValidationError, validation_error)
    for error in (DBAPIError, PoolTimeout, OSError, TimeoutError):
        app.add_exception_handler(error, database_error)


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


def allowed_origins(origins: str) -> list[str]:
    """GROUNDSWELL_CORS_ORIGINS as a list (comma-separated; `*` for any)."""
    return [origin.strip().rstrip("/") for origin in origins.split(",") if origin.strip()]


def origin_of(url: str) -> str:
    """scheme://host[:port] of a URL, lower-case; "" when it has none."""
    parts = urlsplit(url.strip())
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else ""


class CrossSiteGuard:
    """Refuses (403) a POST, PUT, PATCH or DELETE that a browser sent from another site: its
    `Origin` (or, without one, its `Referer`) is neither this site (the request's own Host, or
    GROUNDSWELL_PUBLIC_URL) nor an origin in GROUNDSWELL_CORS_ORIGINS. A request with neither
    header is not a browser's cross-site request (curl, servers) and passes."""

    UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})

    def __init__(self, app: ASGIApp, *, public_url: str, cors_origins: str) -> None:
        self.app = app
        listed = allowed_origins(cors_origins)
        self.any = "*" in listed
        self.allowed = {origin.lower() for origin in listed} | {origin_of(public_url)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in self.UNSAFE and not self.any:
            origin = referer = host = None
            for name, value in scope["headers"]:
                if name == b"origin":
                    origin = value
                elif name == b"referer":
                    referer = value
                elif name == b"host":
                    host = value
            claimed = origin if origin is not None else referer
            if claimed is not None and (refusal := self.refusal(claimed.decode("latin-1"), origin is not None,
                                                                 (host or b"").decode("latin-1"))):
                await send_json(send, 403, {"detail": refusal})
                return
        await self.app(scope, receive, send)

    def refusal(self, claimed: str, is_origin: bool, host: str) -> str | None:
        origin = claimed.strip().rstrip("/").lower() if is_origin else origin_of(claimed)
        if origin in self.allowed or (host and origin.split("://", 1)[-1] == host.lower()):
            return None
        header = "Origin" if is_origin else "Referer"
        return (f"Cross-site request refused: its {header} ({claimed[:200]!r}) is neither this site nor an "
                "origin listed in GROUNDSWELL_CORS_ORIGINS. Sign from the petition's own page, or ask the "
                "operator to list your site's origin.")


async def send_json(send: Send, status: int, body: dict, headers: list[tuple[bytes, bytes]] = ()) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()), *headers]})
    await send({"type": "http.response.body", "body": payload})


def add_cors(app: FastAPI, origins: str) -> None:
    """Let the listed origins (comma-separated, or `*`) call the API from a browser."""
    from starlette.middleware.cors import CORSMiddleware

    allowed = allowed_origins(origins)
    if allowed:
        app.add_middleware(
            CORSMiddleware, allow_origins=allowed, allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "X-Request-ID"], expose_headers=["X-Request-ID"], max_age=600,
        )


class TokenFailures:
    """Wrong tokens per client (GROUNDSWELL_TOKEN_FAILURE_LIMIT, in the `limits` notation), counted
    in this process's memory. Over the limit, every attempt from that client is a 429 with
    Retry-After until the window passes, the right token included, so guessing learns nothing."""

    def __init__(self, notation: str) -> None:
        from limits import parse_many
        from limits.storage import MemoryStorage
        from limits.strategies import FixedWindowRateLimiter

        self.items = parse_many(notation) if notation.strip() else []
        self.limiter = FixedWindowRateLimiter(MemoryStorage())

    def refuse_if_over(self, client: str) -> None:
        for item in self.items:
            if not self.limiter.test(item, "token-failures", client):
                import time

                reset_at = self.limiter.get_window_stats(item, "token-failures", client).reset_time
                structlog.get_logger("http").warning("token_failures_over_limit", limit=str(item))
                raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS,
                                    "Too many attempts with a wrong token from here; try again later.",
                                    headers={"Retry-After": str(max(1, int(reset_at - time.time()) + 1))})

    def failed(self, client: str) -> None:
        for item in self.items:
            self.limiter.hit(item, "token-failures", client)


def client_address(request: Request) -> str:
    """The client a request comes from: the service's own rule if it has one (signing believes its
    front door's X-Forwarded-For), else the peer."""
    if (rule := getattr(request.app.state, "client_of", None)) is not None:
        return rule(request)
    return request.client.host if request.client else "unix"


def check_token(request: Request, given: str, expected: str | None) -> bool:
    """Whether `given` is the token (constant time). 429 while this client is over its wrong-token
    limit (the app's `token_failures`); a wrong token counts against it."""
    failures: TokenFailures | None = getattr(request.app.state, "token_failures", None)
    client = client_address(request) if failures is not None else ""
    if failures is not None:
        failures.refuse_if_over(client)
    if expected and secrets.compare_digest(given.encode(), expected.encode()):
        return True
    if failures is not None:
        failures.failed(client)
    return False


def bearer_token_guard(setting: str, scheme: HTTPBearer, needed_for: str):
    """A dependency that answers 401 unless the request carries the token in settings.<setting>
    (429 after too many wrong ones from one client)."""
    variable = f"GROUNDSWELL_{setting.upper()}"

    async def guard(request: Request,
                    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(scheme)]) -> None:
        expected = getattr(request.app.state.settings, setting)
        given = credentials.credentials if credentials else ""
        if not check_token(request, given, expected):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                f"{needed_for} needs 'Authorization: Bearer <{variable}>'.",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return guard
