"""The signing endpoint's fast path: the one route a viral petition hammers, without FastAPI's
per-request machinery (routing, dependency solving, body re-validation), which costs about as
much as everything else a signature needs (docs/benchmarks.md).

`POST /petitions/{ref}/signatures` with a JSON object body is parsed and validated in one call
(pydantic's `model_validate_json`, the same `SignatureIn` model), signed, and answered exactly as
the FastAPI route answers: 202 `{"status":"accepted"}`, 404, 409 (closed), 413, or 422 with one message per
field; with the request id echoed and the same metrics. Anything else (another route, a body that
is not a JSON object, a browser request when CORS is configured) goes on to the FastAPI app,
which stays the documented route and the reference for every answer.
"""

import json
import re
import time

import structlog
from fastapi import FastAPI
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.signing.schemas import Accepted, SignatureIn
from services.signing.service import PetitionNotFound, PetitionNotOpen, Signing
from shared.db import unavailable
from shared.http import (REQUEST_ID_HEADER, CrossSiteGuard, invalid_input, request_id_of, too_large, too_large_detail,
                         unavailable_answer)
from shared.metrics import HTTP_LATENCY, HTTP_REQUESTS

log = structlog.get_logger("signing")

ROUTE = "/petitions/{ref}/signatures"
_PATH = re.compile(r"^/petitions/([^/]+)/signatures$")
_ACCEPTED = Accepted().model_dump_json().encode()
_LATENCY = HTTP_LATENCY.labels("POST", ROUTE)
_COUNTED = {status: HTTP_REQUESTS.labels("POST", ROUTE, str(status)) for status in (202, 404, 409, 413, 422, 500, 503)}


async def sign_and_answer(signing: Signing, ref: str, signature: SignatureIn, request_id: str,
                          client: str | None) -> tuple[int, dict | None]:
    """Sign, and the answer: (status, JSON body; None for the 202's `{"status":"accepted"}`). The
    one implementation of signing a petition over HTTP: the fast path and the documented route
    (services/signing/api.py `sign_petition`) both answer with it."""
    try:
        await signing.sign(ref, signature, request_id, client)
    except PetitionNotFound:
        return 404, {"detail": f"No petition '{ref}'."}
    except PetitionNotOpen as exc:
        return 409, {"detail": exc.message}
    except Exception as exc:  # noqa: BLE001 - answered as the FastAPI app's handlers answer it
        if unavailable(exc):
            log.warning("dependency_unavailable", dependency="database", error=type(exc).__name__,
                        correlation_id=request_id)
            return 503, unavailable_answer("database")[0]
        log.exception("signing_failed", correlation_id=request_id)
        return 500, {"detail": "Internal Server Error"}
    return 202, None


def answer_headers(status: int) -> list[tuple[bytes, bytes]]:
    """The headers an answer of sign_and_answer carries besides its content type and request id."""
    return unavailable_answer("database")[1] if status == 503 else []


class SignFastPath:
    """ASGI: signatures here, everything else to `app`."""

    def __init__(self, app: ASGIApp, signing: Signing, *, max_body_bytes: int, cors: bool) -> None:
        self.app = app
        self.signing = signing
        self.max_body_bytes = max_body_bytes
        self.cors = cors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not (match := _PATH.match(scope["path"])):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        content_type = headers.get(b"content-type", b"application/json").split(b";", 1)[0].strip().lower()
        if (self.cors and b"origin" in headers) or content_type != b"application/json":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_of(headers)
        body = await self._body(headers, receive)
        if body is None:
            status, answer = 413, {"detail": too_large_detail(self.max_body_bytes)}
        elif not body.lstrip().startswith(b"{"):
            # Not a JSON object: FastAPI says what is wrong with it, as it always has.
            await self.app(scope, _replay(body), send)
            return
        else:
            client = self.signing.clients.of(scope.get("client"), headers.get(b"x-forwarded-for"))
            status, answer = await self._sign(match.group(1), body, request_id, client)
        payload = _ACCEPTED if status == 202 else json.dumps(answer).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                   (REQUEST_ID_HEADER.encode(), request_id.encode())]
        headers += answer_headers(status)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
        _COUNTED[status].inc()
        _LATENCY.observe(time.perf_counter() - started)

    async def _sign(self, ref: str, body: bytes, request_id: str, client: str) -> tuple[int, dict | None]:
        try:
            signature = SignatureIn.model_validate_json(body)
        except ValidationError as exc:
            return 422, invalid_input(exc.errors())
        return await sign_and_answer(self.signing, ref, signature, request_id, client)

    async def _body(self, headers: dict[bytes, bytes], receive: Receive) -> bytes | None:
        """The whole body, or None once it is over the limit (declared or streamed)."""
        if too_large(headers.get(b"content-length"), self.max_body_bytes):
            return None
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    """A receive that hands the app the body already read, then waits as the server would."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


class SigningApp(FastAPI):
    """The signing service's FastAPI app, with the fast path in front of all of FastAPI's own
    layers (error pages, telemetry, body limit), which it does not need. In front of both, the
    cross-site guard."""

    fast_path: ASGIApp | None = None

    def install_fast_path(self, signing: Signing, *, max_body_bytes: int, public_url: str, cors_origins: str) -> None:
        fast = SignFastPath(super().__call__, signing, max_body_bytes=max_body_bytes, cors=bool(cors_origins.strip()))
        self.fast_path = CrossSiteGuard(fast, public_url=public_url, cors_origins=cors_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.fast_path is None:
            await super().__call__(scope, receive, send)
        else:
            await self.fast_path(scope, receive, send)
